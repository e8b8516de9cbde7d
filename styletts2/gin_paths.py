"""Let gin find `include 'gin/...'` files from any working directory."""
from pathlib import Path

import gin

REPO_ROOT = Path(__file__).resolve().parent.parent
_added = False


def add_search_paths() -> None:
    global _added
    if not _added:
        gin.add_config_file_search_path(str(REPO_ROOT))
        _added = True
