"""Language-neutral clean-up shared by every normalizer: markup and terminal escape codes out,
characters espeak-ng cannot speak dropped (with a warning naming them), whitespace collapsed."""
from __future__ import annotations

import html
import re
import unicodedata
import warnings

from ..tokenizer import describe_char


class UnspeakableCharacterWarning(UserWarning):
    """Characters espeak-ng cannot speak (emoji, pictographs, control codes) were dropped."""


# Terminal escape codes: CSI sequences (colours, cursor moves), OSC sequences (titles, links),
# and the two-character escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_HTML_DROPPED = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.S | re.I)
_HTML_BLOCK = re.compile(r"</?(?:p|div|br|li|ul|ol|tr|td|th|table|h[1-6]|blockquote|section|article|"
                         r"header|footer|hr)\b[^<>]*>", re.I)
_HTML_TAG = re.compile(r"</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>")
_HTML_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# Markdown: images, links, emphasis, code, headings, bullets, quotes, rules.
_MD_IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\s]*\)")
_MD_LINK = re.compile(r"\[([^\]\n]+)\]\([^)\s]*\)")
_MD_STRONG = re.compile(r"(\*\*|__|~~)(?=\S)(.+?)(?<=\S)\1")
_MD_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"
                          r"|(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")  # _x_ but not snake_case
_MD_CODE = re.compile(r"`+([^`\n]*)`+")
_MD_LINE_START = re.compile(r"^[ \t]*(?:#{1,6}[ \t]+|[-*+][ \t]+|>[ \t]?|\d+\.[ \t]+(?=\D))", re.M)
_MD_RULE = re.compile(r"^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$", re.M)
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_MARK = re.compile(r" (?=[,.;:!?](?:\s|$))")
# Emoji glue (zero-width joiner, variation selectors, tag characters): dropped along with the
# emoji they belong to, and not named on their own.
_EMOJI_GLUE = re.compile("[\u200d\ufe00-\ufe0f\U000e0000-\U000e007f]")
# Control, format, private-use, unassigned characters; and the symbols of the emoji and pictograph
# blocks (espeak-ng reads some emoji by their long names, others not at all). Other symbols
# (°, ©, §) stay: espeak-ng reads them in each language.
_INVISIBLE = {"Cc", "Cf", "Co", "Cn", "Cs"}
_PICTOGRAPHS = ((0x2300, 0x23FF), (0x2500, 0x27BF), (0x2B00, 0x2BFF), (0x1F000, 0x1FAFF))


def strip_markup(text: str) -> str:
    """HTML (tags, comments, scripts, entities), markdown markup and terminal escape codes removed;
    what they marked up stays."""
    text = _ANSI.sub("", text)
    if "<" in text:
        text = _HTML_COMMENT.sub(" ", text)
        text = _HTML_DROPPED.sub(" ", text)
        text = _HTML_BLOCK.sub("\n", text)
        text = _HTML_TAG.sub("", text)
    if "&" in text:
        text = _HTML_ENTITY.sub(lambda m: html.unescape(m.group()), text)
    text = _MD_IMAGE.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_STRONG.sub(r"\2", text)
    text = _MD_EMPHASIS.sub(lambda m: m.group(1) or m.group(2), text)
    text = _MD_CODE.sub(r"\1", text)
    text = _MD_RULE.sub("", text)
    return _MD_LINE_START.sub("", text)


def _speakable(char: str) -> bool:
    if char.isspace() or char.isascii() and char.isprintable():
        return True
    category = unicodedata.category(char)
    if category in _INVISIBLE:
        return False
    return not (category[0] == "S" and any(low <= ord(char) <= high for low, high in _PICTOGRAPHS))


def drop_unspeakable(text: str) -> str:
    """`text` without emoji, pictographs, control and private-use characters (each replaced by a
    space); one `UnspeakableCharacterWarning` names every character dropped."""
    if not text.isascii():
        text = _EMOJI_GLUE.sub("", text)
    dropped = sorted(c for c in set(text) if not _speakable(c))
    if not dropped:
        return text
    warnings.warn("dropped characters espeak-ng cannot speak: " + ", ".join(describe_char(c) for c in dropped),
                  UnspeakableCharacterWarning, stacklevel=4)
    return text.translate({ord(c): " " for c in dropped})


def collapse_spaces(text: str) -> str:
    """Runs of whitespace (newlines included) as one space."""
    return _SPACES.sub(" ", text).strip()


def tidy_punctuation(text: str) -> str:
    """No space before a , . ; : ! or ? that ends a word (rules that replace a word with words
    leave one)."""
    return _SPACE_BEFORE_MARK.sub("", text)
