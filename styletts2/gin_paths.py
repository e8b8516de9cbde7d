"""Let gin find `include 'gin/...'` files from any working directory."""
import logging
from pathlib import Path

import gin

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
