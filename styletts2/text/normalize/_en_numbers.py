"""English number words: cardinals, ordinals, years, digit strings, decimals (own code: what a
library would add here is a dependency, not coverage).

American style by default ("one hundred twenty"); `british=True` adds the "and" that British
readers say ("one hundred and twenty", "two thousand and five").
"""
from __future__ import annotations

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen").split()
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
SCALES = ("", "thousand", "million", "billion", "trillion", "quadrillion")
_IRREGULAR_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                       "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def _below_hundred(n: int) -> str:
    if n < 20:
        return ONES[n]
    tens, ones = divmod(n, 10)
    return TENS[tens] + (f"-{ONES[ones]}" if ones else "")


def _below_thousand(n: int, british: bool) -> str:
    hundreds, rest = divmod(n, 100)
    words = [ONES[hundreds], "hundred"] if hundreds else []
    if rest:
        words += (["and"] if hundreds and british else []) + [_below_hundred(rest)]
    return " ".join(words)


def cardinal(n: int, british: bool = False) -> str:
    """`1234` -> 'one thousand two hundred thirty-four'; past the quadrillions, digit by digit."""
    if n < 0:
        return "minus " + cardinal(-n, british)
    if n == 0:
        return "zero"
    if n >= 1000 ** len(SCALES):
        return digits(str(n))
    groups, scale, rest = [], 0, n
    while rest:
        rest, group = divmod(rest, 1000)
        if group:
            words = _below_thousand(group, british)
            if british and scale == 0 and group < 100 and n >= 1000:
                words = "and " + words  # "two thousand and five"
            groups.append(words + (f" {SCALES[scale]}" if scale else ""))
        scale += 1
    return " ".join(reversed(groups))


def ordinal_word(words: str) -> str:
    """The ordinal of a cardinal's words: 'twenty-one' -> 'twenty-first'."""
    cut = max(words.rfind(" "), words.rfind("-")) + 1
    head, last = words[:cut], words[cut:]
    if last in _IRREGULAR_ORDINALS:
        return head + _IRREGULAR_ORDINALS[last]
    if last.endswith("y"):
        return head + last[:-1] + "ieth"
    return head + last + "th"


def ordinal(n: int, british: bool = False) -> str:
    """`22` -> 'twenty-second'."""
    return ordinal_word(cardinal(n, british))


def year(n: int, british: bool = False) -> str:
    """A year as it is said: 1999 'nineteen ninety-nine', 1905 'nineteen oh five', 1900 'nineteen
    hundred', 2000 'two thousand', 2005 'two thousand five', 2023 'twenty twenty-three'."""
    if n < 1000 or n % 1000 == 0 or 2000 <= n < 2010 or n >= 10000:
        return cardinal(n, british)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{_below_hundred(high)} hundred"
    return f"{_below_hundred(high)} {_below_hundred(low) if low >= 10 else 'oh ' + ONES[low]}"


def digits(text: str) -> str:
    """Each digit on its own: '007' -> 'zero zero seven'."""
    return " ".join(ONES[int(c)] for c in text if c.isdigit())


def plural_word(words: str) -> str:
    """The plural of a number's words, as in decades: 'ninety' -> 'nineties', 'six' -> 'sixes'."""
    if words.endswith("y"):
        return words[:-1] + "ies"
    return words + ("es" if words.endswith(("x", "s")) else "s")


def number(text: str, british: bool = False) -> str:
    """A written number: '1,234.50' -> 'one thousand two hundred thirty-four point five zero';
    '.5' -> 'point five'; a leading zero ('007') is read digit by digit."""
    whole, _, fraction = text.replace(",", "").partition(".")
    if len(whole) > 1 and whole.startswith("0") or len(whole) > 18:  # past the quintillions too
        spoken = digits(whole)
    elif whole:
        spoken = cardinal(int(whole), british)
    else:
        spoken = ""
    if fraction:
        spoken = (spoken + " point " + digits(fraction)).strip()
    return spoken
