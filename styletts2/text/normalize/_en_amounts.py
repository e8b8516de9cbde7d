"""English: amounts -> words (money, percents, units, decades, ordinals, ranges, fractions, and
the plain numbers left at the end: versions, years, decimals, negatives, cardinals)."""
from __future__ import annotations

import re

from ._en_numbers import ONES, cardinal, digits, number, ordinal, plural_word, year
from ._en_numeric import MONTHS, NUM

_FREE = r"(?<![\w.,])"  # not glued to a word or to another number
_MINUS = r"([-−]?)"

# Money ------------------------------------------------------------------------------------------------

CURRENCIES = {  # symbol: (one, many, one hundredth, many hundredths)
    "$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", None, None),
    "₹": ("rupee", "rupees", "paisa", "paise"),
}
_SCALES = {"k": "thousand", "thousand": "thousand", "m": "million", "mn": "million", "million": "million",
           "b": "billion", "bn": "billion", "billion": "billion", "trillion": "trillion"}
MONEY = re.compile(rf"{_FREE}{_MINUS}([$€£¥₹])\s?({NUM})(?:\s?(thousand|million|billion|trillion|[kKmMbB]n?)\b)?")
MONEY_AFTER = re.compile(rf"{_FREE}{_MINUS}({NUM})\s?([$€£])(?![\w$€£])")
CENTS = re.compile(rf"{_FREE}(\d{{1,9}})\s?¢")


def _amount(value: str, symbol: str, scale: str | None) -> str:
    one, many, hundredth, hundredths = CURRENCIES[symbol]
    if scale:
        return f"{number(value)} {_SCALES[scale.lower()]} {many}"
    whole, _, fraction = value.replace(",", "").partition(".")
    if len(fraction) > 2 or (fraction and hundredth is None) or len(whole) > 15:
        return f"{number(value)} {many}"
    units, cents = int(whole or 0), int(fraction.ljust(2, "0")) if fraction else 0
    parts = [f"{cardinal(units)} {one if units == 1 else many}"] if units or not cents else []
    if cents:
        parts.append(f"{cardinal(cents)} {hundredth if cents == 1 else hundredths}")
    return " and ".join(parts)


def money(m: re.Match, british: bool) -> str:
    """$5.30 'five dollars and thirty cents', €2.5bn 'two point five billion euros', 5€ 'five euros'."""
    if m.re is MONEY_AFTER:
        sign, value, symbol, scale = m.group(1), m.group(2), m.group(3), None
    else:
        sign, symbol, value, scale = m.groups()
    return ("minus " if sign else "") + _amount(value, symbol, scale)


def cents(m: re.Match, british: bool) -> str:
    return f"{cardinal(int(m.group(1)))} cent{'s' * (m.group(1) != '1')}"


# Percents and units ---------------------------------------------------------------------------------

PERCENT = re.compile(rf"{_FREE}{_MINUS}({NUM})\s?(%|‰)")
_UNITS = {
    "km": "kilometer", "m": "meter", "cm": "centimeter", "mm": "millimeter", "µm": "micrometer",
    "nm": "nanometer", "mi": "mile", "ft": "foot", "yd": "yard", "kg": "kilogram", "g": "gram",
    "mg": "milligram", "lb": "pound", "lbs": "pound", "oz": "ounce", "t": "tonne", "L": "liter",
    "ml": "milliliter", "mL": "milliliter", "mph": "mile per hour", "km/h": "kilometer per hour",
    "kph": "kilometer per hour", "m/s": "meter per second", "°C": "degree Celsius", "°F": "degree Fahrenheit",
    "ºC": "degree Celsius", "ºF": "degree Fahrenheit", "°": "degree", "Hz": "hertz",
    "kHz": "kilohertz", "MHz": "megahertz", "GHz": "gigahertz", "W": "watt", "kW": "kilowatt",
    "MW": "megawatt", "kWh": "kilowatt hour", "V": "volt", "mAh": "milliamp hour", "KB": "kilobyte",
    "kB": "kilobyte", "MB": "megabyte", "GB": "gigabyte", "TB": "terabyte", "ms": "millisecond",
    "sec": "second", "secs": "second", "min": "minute", "mins": "minute", "hr": "hour", "hrs": "hour",
    "h": "hour", "dB": "decibel", "px": "pixel", "m²": "square meter", "km²": "square kilometer",
    "cm²": "square centimeter", "ft²": "square foot", "sq ft": "square foot", "m³": "cubic meter",
}
_PLURALS = {"foot": "feet", "hertz": "hertz", "kilohertz": "kilohertz", "megahertz": "megahertz",
            "gigahertz": "gigahertz", "kilowatt hour": "kilowatt hours", "milliamp hour": "milliamp hours"}
# one-letter units only written close ("5m", "12V"): "5 m" may be five million, "5 V" a name
_SPACED = {"m", "t", "L", "V", "W", "h"}
_UNIT_NAMES = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))  # longest first: km/h, km
UNIT = re.compile(rf"{_FREE}{_MINUS}({NUM})(\s?)({_UNIT_NAMES})(?![\w°²³/])")


def _unit_plural(name: str) -> str:
    """'kilometer per hour' -> 'kilometers per hour', 'degree Celsius' -> 'degrees Celsius'."""
    if name in _PLURALS:
        return _PLURALS[name]
    words = name.split()
    head = 1 if words[0] in ("square", "cubic") else 0
    words[head] = _PLURALS.get(words[head], words[head] + "s")
    return " ".join(words)


def percent(m: re.Match, british: bool) -> str:
    sign, value, mark = m.groups()
    return ("minus " if sign else "") + number(value, british) + (" percent" if mark == "%" else " per mille")


def unit(m: re.Match, british: bool) -> str:
    """5 km 'five kilometers', 1 kg 'one kilogram', -5°C 'minus five degrees Celsius'."""
    sign, value, space, symbol = m.groups()
    if space and symbol in _SPACED:
        return m.group()
    name = _UNITS[symbol]
    return ("minus " if sign else "") + f"{number(value, british)} {name if value == '1' else _unit_plural(name)}"


# Decades, ordinals, ranges, fractions ----------------------------------------------------------------

DECADE = re.compile(r"(?<![\w.,'’])(\d{2}|1\d{3}|20\d{2})s\b|['’](\d0)s\b")
ORDINAL = re.compile(rf"{_FREE}(\d{{1,3}}(?:,\d{{3}}){{1,5}}|\d{{1,18}})(st|nd|rd|th|ST|ND|RD|TH)\b")
RANGE = re.compile(r"(?<![\w.,/-])(\d+(?:\.\d+)?)(?:-|\s?[–—]\s?)(\d+(?:\.\d+)?)(?![\w/-]|[.,]\d)")
FRACTION = re.compile(r"(?<![\w./-])(?:(\d{1,9})\s)?(\d{1,9})/(\d{1,9})(?![\w/]|\.\d)")
VULGAR = {"½": "1/2", "⅓": "1/3", "⅔": "2/3", "¼": "1/4", "¾": "3/4", "⅛": "1/8", "⅜": "3/8", "⅝": "5/8", "⅞": "7/8"}
_PARTS = {2: "half", 3: "third", 4: "quarter", 8: "eighth", 16: "sixteenth"}
_SET_PHRASES = {"24/7": "twenty-four seven", "9/11": "nine eleven", "50/50": "fifty fifty"}


def decade(m: re.Match, british: bool) -> str:
    """1990s 'nineteen nineties', '80s and 80s 'eighties'."""
    text = m.group(1) or m.group(2)
    value = int(text)
    if value % 10 or (len(text) == 2 and value == 0):
        return m.group()
    return plural_word(year(value, british) if len(text) == 4 else cardinal(value))


def ordinal_number(m: re.Match, british: bool) -> str:
    return ordinal(int(m.group(1).replace(",", "")), british)


def _range_end(text: str, first: str, british: bool) -> str:
    if len(first) == 4 and len(text) == 2 and 1000 <= int(first) < 2100:  # 1990-95
        return cardinal(int(text)) if int(text) >= 10 else "oh " + ONES[int(text)]
    return year(int(text), british) if _is_year(text) else number(text, british)


def _is_year(text: str) -> bool:
    return len(text) == 4 and text.isdigit() and 1000 <= int(text) < 2100


def number_range(m: re.Match, british: bool) -> str:
    """1990-1995 'nineteen ninety to nineteen ninety-five', 10–20 'ten to twenty'."""
    first, last = m.group(1), m.group(2)
    start = year(int(first), british) if _is_year(first) else number(first, british)
    return f"{start} to {_range_end(last, first, british)}"


def _fraction_words(numerator: int, denominator: int) -> str:
    part = _PARTS[denominator]
    return f"{cardinal(numerator)} {part if numerator == 1 else plural_word(part).replace('halfs', 'halves')}"


def fraction(m: re.Match, british: bool) -> str:
    """1/2 'one half', 1 1/2 'one and a half', 3/4 'three quarters', 8/10 'eight out of ten'."""
    whole, numerator, denominator = m.group(1), int(m.group(2)), int(m.group(3))
    written = f"{m.group(2)}/{m.group(3)}"
    if written in _SET_PHRASES and not whole:
        return _SET_PHRASES[written]
    if denominator in _PARTS and 0 < numerator < denominator:
        words = _fraction_words(numerator, denominator)
        if whole:
            words = f"{cardinal(int(whole))} and {'a ' + _PARTS[denominator] if numerator == 1 else words}"
        return words
    head = f"{cardinal(int(whole))} " if whole else ""
    if denominator == 0:
        return m.group()
    joiner = "out of" if numerator <= denominator else "over"
    return f"{head}{cardinal(numerator)} {joiner} {cardinal(denominator)}"


# Plain numbers -----------------------------------------------------------------------------------------

DOTTED_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+){2,}(?![\d])")
DIMENSIONS = re.compile(r"(?<=\d)\s?([x×])\s?(?=\d)|(?<=\d)(x)(?!\w)")
NUMBER = re.compile(r"(?<![\w.,])([-−](?=\.?\d))?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?!\d)")
_YEAR_CUES = {"in", "since", "from", "by", "until", "till", "year", "circa", "during", "before", "after",
              "early", "late", "mid", "summer", "winter", "spring", "autumn", "fall", "to", "and",
              *(month.lower() for month in MONTHS)}
_COUNT_CUES = {"about", "approximately", "over", "under", "than", "nearly", "almost", "exactly", "roughly",
               "some", "total", "only", "just"}
_NOT_PLURAL = {"was", "is", "has", "this", "as", "us", "its", "his", "always", "perhaps", "thus", "yes"}
_DIALLED = re.compile(r"\b(?:[Cc]all|[Dd]ial|[Rr]ing)\s+$")
_COUNTED = {"people", "men", "women", "children", "feet", "teeth", "mice", "sheep", "fish", "staff", "times"}


def dotted_number(m: re.Match, british: bool) -> str:
    """Versions 2.0.1 'two point zero point one'; addresses 192.168.0.1 'one nine two dot ...'."""
    parts = m.group().split(".")
    if len(parts) == 4 and all(len(p) <= 3 and int(p) < 256 for p in parts):
        return " dot ".join(digits(p) for p in parts)
    return " point ".join(number(p, british) for p in parts)


def dimensions(m: re.Match, british: bool) -> str:
    """3x4 'three by four', 10x 'ten times'."""
    if m.group(2):
        return " times"
    return " by " if m.group(1) == "x" else " times "


def _looks_like_year(text: str, start: int, end: int) -> bool:
    """A 4-digit number from 1000 to 2099 is a year unless a count is being given: a plural noun
    follows ('1500 miles') or a word such as 'about' or 'than' comes before."""
    before = re.search(r"([A-Za-z]+)\W*$", text[max(0, start - 24):start])
    after = re.match(r"\s*([A-Za-z]+)", text[end:end + 24])
    if before and before.group(1).lower() in _YEAR_CUES:
        return True
    if before and before.group(1).lower() in _COUNT_CUES:
        return False
    word = after.group(1) if after else ""
    plural = word.endswith("s") and not word.endswith(("ss", "us", "is")) and word.lower() not in _NOT_PLURAL
    return not (word.islower() and (plural or word in _COUNTED))


def plain_number(m: re.Match, british: bool) -> str:
    """-5 'minus five', 3.14 'three point one four', 1,000,000 'one million', 1999 'nineteen
    ninety-nine' (as a year, see `_looks_like_year`)."""
    sign, text = m.group(1), m.group(2)
    if not sign and _is_year(text) and _looks_like_year(m.string, m.start(), m.end()):
        return year(int(text), british)
    if not sign and text.isdigit() and _DIALLED.search(m.string, max(0, m.start() - 8), m.start()):
        return digits(text)  # 'call 911'
    return ("minus " if sign else "") + number(text, british)
