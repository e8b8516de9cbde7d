"""Type checks of gin-bound settings against their annotations, so `Trainer.epochs = 'one'` is a
one-line error naming the setting (runner.py prints ValueErrors on one line) instead of a TypeError
from deep inside the code that first compares or adds it."""
from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Callable, Mapping

_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "None"}


def _accepts(kind: type, value) -> bool:
    if kind is float:  # an integer is a fine number; a bool is not
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is str:  # paths are annotated str; a Path from Python code is as good
        return isinstance(value, (str, os.PathLike))
    return isinstance(value, kind)


def _simple_kinds(hint) -> tuple[type, ...] | None:
    """The types a hint such as `int`, `float | None` or `str` allows; None for any other hint
    (containers, callables, classes), which is not checked here."""
    kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    return kinds if all(kind in _NAMES for kind in kinds) else None


def check_setting_types(owner: str, function: Callable, values: Mapping[str, object]) -> None:
    """ValueError naming `owner.setting` for the first value in `values` whose type its annotation
    in `function`'s signature does not allow (only scalar annotations are checked)."""
    hints = typing.get_type_hints(inspect.unwrap(function))  # under gin's wrapper
    for name, value in values.items():
        kinds = _simple_kinds(hints[name]) if name in hints else None
        if kinds is None or any(_accepts(kind, value) for kind in kinds):
            continue
        wanted = " or ".join(_NAMES[kind] for kind in kinds)
        raise ValueError(f"{owner}.{name} must be {wanted}, got {value!r} (fix the gin binding "
                         f"`{owner}.{name} = ...` in the config or on the command line)")
