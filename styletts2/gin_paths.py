"""Let gin find `include 'gin/...'` files from any working directory."""
import logging
import tokenize
from pathlib import Path

import gin
from gin import config_parser

REPO_ROOT = Path(__file__).resolve().parent.parent
_added = False


def _not_gin_path_probe(record: logging.LogRecord) -> bool:
    """Outside the repository root gin first looks for `gin/model/x.gin` as a resource of a Python
    package named `gin.model`, and logs 'ERROR:root:Path not found' when there is none, before it
    finds the file under REPO_ROOT. A file found nowhere still raises an IOError naming it."""
    return not (record.name == "root" and record.msg == "Path not found: %s"
                and record.pathname.endswith(("gin/resource_reader.py", "gin\\resource_reader.py")))


def add_search_paths() -> None:
    global _added
    if not _added:
        gin.add_config_file_search_path(str(REPO_ROOT))
        logging.getLogger().addFilter(_not_gin_path_probe)
        _added = True


def check_binding_syntax(binding: str) -> None:
    """A ValueError quoting `binding` when gin cannot parse it (gin's own SyntaxError does not quote
    it, and escapes the command lines' one-line errors). Only parsed: nothing is bound or looked up."""
    try:
        for _ in config_parser.ConfigParser(binding, gin.config.ParserDelegate(skip_unknown=True)):
            pass
    except (SyntaxError, tokenize.TokenError) as err:
        reason = err.msg if isinstance(err, SyntaxError) else err.args[0]
        raise ValueError(f"gin binding {binding!r} cannot be parsed: {reason}") from None
