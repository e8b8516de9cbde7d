"""The normalizer of every language without one of its own: a documented pass-through.

Words, digits and punctuation reach espeak-ng as written (espeak-ng reads numbers in most of its
languages itself); only what no language reads aloud goes: HTML and markdown markup and terminal
escape codes (setting `markup`), emoji and other characters espeak-ng cannot speak (dropped with
an `UnspeakableCharacterWarning` naming them), and runs of whitespace.

A language gets its own normalizer with one more file in this package: a module with NAME,
VERSION, LANGUAGES (espeak-ng codes or their prefix, e.g. ("de",)), DEFAULTS (its settings) and
`normalize(text, language, settings)`; see english.py.
"""
from __future__ import annotations

from ._cleanup import collapse_spaces, drop_unspeakable, strip_markup

NAME = "passthrough"
VERSION = "1"
LANGUAGES = ()  # the fallback: chosen for any language no other module claims
DEFAULTS = {"markup": True}


def normalize(text: str, language: str, settings: dict) -> str:
    if settings["markup"]:
        text = strip_markup(text)
    return collapse_spaces(drop_unspeakable(text))
