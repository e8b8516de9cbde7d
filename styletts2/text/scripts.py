"""Letters of other scripts in English text. An English espeak-ng voice reads a few scripts as words,
switching to their language (Devanagari, Tamil, Hangul, Georgian...), and Greek letters by their names,
which is what a symbol means in English text (π, Ω, Δ). The letters of any other script it spells out
('你好' -> "Chinese letter" twice, 'Привет' -> six letter names, Khmer as code points) or drops, so the
model says something other than the text, with no error. Synthesis warns once per text
(`text_to_token_pieces`), corpus phonemization once per corpus (`readers.phonemize_texts`).
"""
from __future__ import annotations

import unicodedata
import warnings
from collections import Counter

from .tokenizer import preview_text

# The first word of a letter's Unicode name for Latin, modifier letters (ʼ, ˈ), Greek (read as symbols'
# names) and the scripts espeak-ng 1.52's English voices read as words; tests/test_text.py checks a word
# of each of those scripts, and of 14 spelled-out ones, against espeak-ng.
READ_AS_WORDS = frozenset({"LATIN", "MODIFIER", "GREEK", "DEVANAGARI", "GURMUKHI", "GUJARATI", "BENGALI", "TAMIL",
                           "KANNADA", "MALAYALAM", "SINHALA", "HANGUL", "ARMENIAN", "GEORGIAN"})


class ForeignScriptWarning(UserWarning):
    """Text for an English voice holds letters of a script that espeak-ng spells out or drops."""


def _script(char: str) -> str | None:
    """The script of a letter that English voices do not read as words ('CJK', 'Cyrillic'), else None."""
    for form in unicodedata.normalize("NFKC", char):  # half-width kana, ligatures, ℓ: their usual letters
        if not unicodedata.category(form).startswith("L"):
            continue
        script = unicodedata.name(form, "").split(" ", 1)[0].split("-", 1)[0]  # KATAKANA-HIRAGANA: kana
        if script and script not in READ_AS_WORDS:
            return script if script == "CJK" else script.title()
    return None


def english_voice(language: str | None) -> bool:
    """Whether `language` is an English espeak-ng voice, the ones READ_AS_WORDS describes."""
    return bool(language) and language.startswith("en")


def foreign_scripts(text: str) -> Counter:
    """Script name -> how many of `text`'s letters an English voice would not read as words."""
    if text.isascii():
        return Counter()
    return Counter(script for script in map(_script, text) if script is not None)


def describe(scripts: Counter) -> str:
    """'Cyrillic x6, CJK x2'."""
    return ", ".join(f"{script} x{n}" for script, n in scripts.most_common())


def warn_foreign_scripts(text: str, language: str | None) -> None:
    """A ForeignScriptWarning when `language` is an English voice and `text` has such letters."""
    scripts = foreign_scripts(text) if english_voice(language) else Counter()
    if scripts:
        warnings.warn(f"text {preview_text(text)} has letters an English voice does not read as words "
                      f"({describe(scripts)}): espeak-ng spells them out or drops them", ForeignScriptWarning,
                      stacklevel=3)
