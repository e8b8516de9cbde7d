"""Letters of other scripts in English text. An English espeak-ng voice reads most of them as letter
names ('你好' -> "Chinese letter, Chinese letter", 'Привет' -> six letter names), so the model says
something other than the text, with no error; synthesis and corpus phonemization warn once per text.
Some scripts it reads as words in their own language (Devanagari, Hangul): those pass silently.
"""
from __future__ import annotations

import unicodedata
import warnings
from collections import Counter

from .tokenizer import preview_text

_LETTER_CATEGORIES = ("Lu", "Ll", "Lt", "Lo")
# Scripts (the first word of a letter's Unicode name) that espeak-ng 1.52's English voices spell out
# letter by letter; tests/test_text.py checks each against espeak-ng.
SPELLED_SCRIPTS = frozenset({"ARABIC", "CJK", "CYRILLIC", "GREEK", "HEBREW", "HIRAGANA", "KATAKANA", "THAI"})


class ForeignScriptWarning(UserWarning):
    """Text for an English voice holds letters of another script, which espeak-ng reads as letter names."""


def _script(char: str) -> str | None:
    """The script of a letter that English voices spell out ('CJK', 'Cyrillic'; SPELLED_SCRIPTS), else None."""
    if unicodedata.category(char) not in _LETTER_CATEGORIES:
        return None
    script = unicodedata.name(char, "").split(" ", 1)[0]
    if script not in SPELLED_SCRIPTS:
        return None
    return script if script == "CJK" else script.title()


def foreign_scripts(text: str) -> Counter:
    """Script name -> how many of `text`'s letters an English voice would spell out."""
    return Counter(script for script in map(_script, text) if script is not None)


def warn_foreign_scripts(text: str, language: str) -> None:
    """A ForeignScriptWarning when `language` is an English voice and `text` has letters of another script."""
    if text.isascii() or not language.startswith("en"):
        return
    scripts = foreign_scripts(text)
    if scripts:
        listing = ", ".join(f"{script} x{n}" for script, n in scripts.most_common())
        warnings.warn(f"text {preview_text(text)} has letters an English voice does not read as words ({listing}): "
                      "espeak-ng says their letter names", ForeignScriptWarning, stacklevel=3)
