"""One-line errors for the command lines (torch-free: the runtime CLI uses it too).

A user error (a missing file, a bad option, a corpus or checkpoint that can not be used) is printed
as `prog: error: <what, where, how to fix>` and the command exits 2; a traceback appears only for
bugs, or for every error with `--debug`.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path


class UserError(Exception):
    """Something the user can fix; mixed into the project's error classes that are not ValueErrors
    (e.g. CheckpointError) so the command lines report them on one line."""


# ValueError: bad options, corpora, configs, audio; OSError: files that are missing or unreadable.
USER_ERRORS = (UserError, ValueError, OSError)
USER_ERROR_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 130  # the shell's code for a process stopped by Ctrl-C (128 + SIGINT)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def folder_problem(folder: str | os.PathLike) -> str | None:
    """Why files cannot be written in `folder`, made where missing (None when they can): the nearest
    existing folder on its path is a file, or not writable. Command lines ask before any work."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK):
        return f"{existing} is not writable"
    return None


def describe(err: BaseException) -> str:
    """The error as one readable line (OSErrors name their file). gin appends "In call to
    configurable 'X'" lines to errors raised inside a configurable: the message already says where."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.strerror}: {err.filename}"
    lines = [line for line in str(err).strip().splitlines()
             if not line.strip().startswith("In call to configurable ")]
    return "\n".join(lines).strip() or type(err).__name__


def run_guarded(prog: str, body: Callable[[], int], debug: bool = False,
                exit_code: int = USER_ERROR_EXIT_CODE) -> int:
    """Run a command's body; a user error becomes one line on stderr and `exit_code`, and each
    warning one line (`prog: warning: ...`, without the source line Python prints under it)."""
    previous_format = warnings.formatwarning
    if not debug:
        warnings.formatwarning = lambda message, *_, **__: f"{prog}: warning: {message}\n"
    try:
        return body()
    except USER_ERRORS as err:
        if debug:
            raise
        print(f"{prog}: error: {describe(err)}", file=sys.stderr)
        return exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    finally:
        warnings.formatwarning = previous_format
