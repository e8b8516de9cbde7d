"""The mode for files written under a temporary name and then renamed into place (mkstemp and
NamedTemporaryFile make them 0600): checkpoints, caches and reports get the mode an ordinary new
file would, so the other users of a shared run folder or corpus can read them."""
from __future__ import annotations

import os


def file_mode() -> int:
    """0666 less the umask. Read at each call, not once: a program may change its umask as it runs."""
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return 0o666 & ~mask
