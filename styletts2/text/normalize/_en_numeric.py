"""English: dates, times and phone numbers -> words (amounts and plain numbers: _en_amounts.py).

Each rule is a compiled pattern and a function of its match; `british` picks day-first dates and
"and" in numbers. A rule that cannot read its match (a 13th month, a 61st minute) gives it back
unchanged for the later rules.
"""
from __future__ import annotations

import re

from ._en_numbers import cardinal, digits, ordinal, year

MONTHS = ("January February March April May June July August September October November "
          "December").split()
_MONTH_ABBREVIATIONS = {"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "Jun": 6, "Jul": 7, "Aug": 8, "Sep": 9,
                        "Sept": 9, "Oct": 10, "Nov": 11, "Dec": 12}
MONTH = "|".join(MONTHS + [rf"{a}\.?" for a in sorted(_MONTH_ABBREVIATIONS, key=len, reverse=True)])
NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"  # 1,234,567.89 or 1234.5
_FREE = r"(?<![\w.,])"  # not glued to a word or to another number
_NEXT_SENTENCE = re.compile(r"\s*(?:$|[\"'”’)\]]*\s+[A-Z])")


def period_if_sentence_ends(text: str, end: int) -> str:
    """'.' when an abbreviation's period (just consumed, ending at `end`) also ends the sentence:
    the text ends there or the next word is capitalised."""
    return "." if _NEXT_SENTENCE.match(text, end) else ""


def month_number(name: str) -> int:
    name = name.rstrip(".")
    return MONTHS.index(name) + 1 if name in MONTHS else _MONTH_ABBREVIATIONS[name]


def _full_year(text: str) -> int:
    value = int(text)
    if len(text) == 2:  # '23 -> 2023, '99 -> 1999
        value += 2000 if value <= 30 else 1900
    return value


def say_date(month: int, day: int, year_value: int | None, day_first: bool, british: bool) -> str:
    """'January fifth, twenty twenty-three', or day first 'the fifth of January twenty twenty-three'."""
    spoken = (f"the {ordinal(day)} of {MONTHS[month - 1]}" if day_first
              else f"{MONTHS[month - 1]} {ordinal(day)}")
    if year_value is not None:
        spoken += (" " if day_first else ", ") + year(year_value, british)
    return spoken


# Dates --------------------------------------------------------------------------------------------

NUMERIC_DATE = re.compile(r"(?<![\w./-])(\d{1,2})([/-])(\d{1,2})\2(\d{4}|\d{2})(?![\w/-]|\.\d)"
                          r"|(?<![\w./-])(\d{1,2})\.(\d{1,2})\.(\d{4})(?![\w/-]|\.\d)")
ISO_DATE = re.compile(r"(?<![\w/.-])(\d{4})-(\d{2})-(\d{2})(?![\w-]|\.\d)")
MONTH_DAY = re.compile(rf"\b({MONTH})\s+(\d{{1,2}})(?:st|nd|rd|th)?(?![\d:]|\.\d|,\d)(?:,?\s+(\d{{4}})(?!\d))?")
DAY_MONTH = re.compile(rf"{_FREE}(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({MONTH})(?!\w)"
                       rf"(?:,?\s+(\d{{4}})(?!\d))?")


def numeric_date(m: re.Match, british: bool) -> str:
    """1/2/2023: month first in American English, day first in British; a part over 12 is the day."""
    first, second, year_text = (m.group(1), m.group(3), m.group(4)) if m.group(1) else m.group(5, 6, 7)
    month, day = (int(second), int(first)) if british else (int(first), int(second))
    if month > 12 and day <= 12:
        month, day = day, month
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group()
    return say_date(month, day, _full_year(year_text), british, british)


def iso_date(m: re.Match, british: bool) -> str:
    month, day = int(m.group(2)), int(m.group(3))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group()
    return say_date(month, day, int(m.group(1)), british, british)


def written_date(m: re.Match, british: bool) -> str:
    """'January 5, 2023', 'Jan. 5th', '5 January 2023', 'the 5th of May': as `say_date` says them,
    in the order written."""
    month_first = m.re is MONTH_DAY
    month_text, day_text = (m.group(1), m.group(2)) if month_first else (m.group(2), m.group(1))
    day = int(day_text)
    if not 1 <= day <= 31:
        return m.group()
    spoken = say_date(month_number(month_text), day, int(m.group(3)) if m.group(3) else None, not month_first,
                      british)
    if not m.group(3) and month_text.endswith("."):
        spoken += period_if_sentence_ends(m.string, m.end())
    return spoken


# Times and phone numbers ----------------------------------------------------------------------------

CLOCK = re.compile(r"(?<![\w.:,])(\d{1,2}):([0-5]\d)(?::([0-5]\d))?(?:\s?([AaPp])\.?\s?[Mm](\.?)(?!\w))?(?![\w:])")
HOUR = re.compile(r"(?<![\w.:,])(\d{1,2})\s?([AaPp])\.?\s?[Mm](\.?)(?!\w)")
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w-]|\.\d)"
                   r"|(?<![\w+])\+\d{1,3}(?:[\s.-]\d{1,4}){2,5}(?![\w-]|\.\d)"
                   r"|(?<![\w.,/+-])\d{3}-\d{4}(?![\w-]|\.\d)")


def _meridiem(letter: str | None, period: str, m: re.Match) -> str:
    if not letter:
        return ""
    return (" A-M" if letter in "Aa" else " P-M") + (period_if_sentence_ends(m.string, m.end()) if period else "")


def clock(m: re.Match, british: bool) -> str:
    """10:45 'ten forty-five', 7:05 p.m. 'seven oh five P-M', 7:00 'seven o'clock', 14:00
    'fourteen hundred'."""
    hour, minute = int(m.group(1)), int(m.group(2))
    suffix = _meridiem(m.group(4), m.group(5), m)
    if hour > 24 or (suffix and not 1 <= hour <= 12):
        return m.group()
    if minute:
        spoken = f"{cardinal(hour)} {cardinal(minute) if minute >= 10 else 'oh ' + cardinal(minute)}"
    elif suffix:
        spoken = cardinal(hour)
    else:
        spoken = f"{cardinal(hour)} o'clock" if 1 <= hour <= 12 else f"{cardinal(hour)} hundred"
    if m.group(3):
        seconds = int(m.group(3))
        spoken += f" and {cardinal(seconds)} second{'s' * (seconds != 1)}"
    return spoken + suffix


def hour(m: re.Match, british: bool) -> str:
    """7am, 7 p.m.: 'seven A-M'."""
    value = int(m.group(1))
    if not 1 <= value <= 12:
        return m.group()
    return cardinal(value) + _meridiem(m.group(2), m.group(3), m)


def phone(m: re.Match, british: bool) -> str:
    """Digit by digit, a pause between groups: 'five five five, one two three, four five six seven'."""
    groups = re.findall(r"\+|\d+", m.group())
    spoken = [("plus" if g == "+" else digits(g)) for g in groups]
    if spoken[0] == "plus":
        spoken[:2] = [f"plus {spoken[1]}"]
    return ", ".join(spoken)
