"""The mode for files written under a temporary name and then renamed into place (mkstemp and
NamedTemporaryFile make them 0600): checkpoints, caches and reports get the mode an ordinary new
file would, so the other users of a shared run folder or corpus can read them."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path


def _umask() -> int:
    """The process's umask: from /proc where Linux has it (reading it there changes nothing, so other
    threads creating files meanwhile are safe), else by setting it and putting it straight back."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """0666 less the umask. Read at each call, not once: a program may change its umask as it runs."""
    return 0o666 & ~_umask()


def give_ordinary_mode(path: str | os.PathLike) -> None:
    """chmod `path` to `file_mode()`, where the filesystem allows: one that stores no modes (vfat)
    refuses, and the file is then kept as it is rather than lost."""
    with contextlib.suppress(OSError):
        os.chmod(path, file_mode())
