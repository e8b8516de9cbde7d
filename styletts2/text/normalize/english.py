"""English text normalization: written text -> the words a careful reader says.

The rules run in a fixed order, each one a regular expression and a function of its match
(_en_numeric.py, _en_amounts.py, _en_words.py); the order matters:
  markup out, unspeakable characters dropped -> web addresses -> dates -> phone numbers -> times
  -> abbreviations and titles -> money, percents, units -> decades, ordinals, ranges, fractions
  -> Roman numerals after names -> letters glued to digits split -> acronyms -> symbols -> the
  numbers left (versions, years, decimals, negatives, cardinals) -> whitespace.
A rule only rewrites what it can read and gives anything else back unchanged, so an odd token is
left for espeak-ng rather than guessed at. Plain prose comes out unchanged.

American English ('en-us') reads 1/2/2023 month first and numbers without "and"; any other
English voice ('en-gb', 'en') day first, and with "and" ("one hundred and five").

Letters read one by one are joined with hyphens ('A-M', 'F-B-I'): espeak-ng reads a lone 'A' as
the article, and says 'NASA's' without its 's'. Settings:
  markup    remove HTML tags and entities, markdown markup and terminal escape codes (True)
  acronyms  spell capitalised words that espeak-ng would read as a word ('IDE', 'VIP') letter by
            letter, except words said as words ('NASA') and shouted text (True)
"""
from __future__ import annotations

import re

from . import _en_amounts as amounts
from . import _en_numeric as numeric
from . import _en_words as words
from ._cleanup import collapse_spaces, drop_unspeakable, strip_markup, tidy_punctuation

NAME = "english"
VERSION = "1"
LANGUAGES = ("en",)  # every espeak-ng English voice: en, en-us, en-gb, en-gb-scotland, ...
DEFAULTS = {"markup": True, "acronyms": True}

_RULES = (
    (words.EMAIL, words.web_address), (words.URL, words.web_address),
    (numeric.NUMERIC_DATE, numeric.numeric_date), (numeric.ISO_DATE, numeric.iso_date),
    (numeric.MONTH_DAY, numeric.written_date), (numeric.DAY_MONTH, numeric.written_date),
    (numeric.PHONE, numeric.phone), (numeric.CLOCK, numeric.clock), (numeric.HOUR, numeric.hour),
    (words.TITLE, words.title), (words.STREET, words.street), (words.ABBREVIATION, words.abbreviation),
    (words.BEFORE_NUMBER, words.before_number), (words.WITH, lambda m, _: " without" if m.group(1) else " with"),
    (words.INITIALISM, words.initialism), (words.INITIAL, words.initial),
    (amounts.MONEY, amounts.money), (amounts.MONEY_AFTER, amounts.money), (amounts.CENTS, amounts.cents),
    (amounts.PERCENT, amounts.percent), (amounts.UNIT, amounts.unit),
    (amounts.DECADE, amounts.decade), (amounts.ORDINAL, amounts.ordinal_number),
    (amounts.RANGE, amounts.number_range), (amounts.FRACTION, amounts.fraction),
    (amounts.DIMENSIONS, amounts.dimensions), (words.ROMAN, words.roman),
)
_VULGAR = re.compile("[" + "".join(amounts.VULGAR) + "]")
_APOSTROPHE = re.compile(r"(?<=[A-Za-z])’(?=[A-Za-z])")
_LETTERS_DIGITS = re.compile(r"\b([A-Za-z]+)-?(?=\d)|(?<=\d)([A-Za-z]+)")

# Acronyms --------------------------------------------------------------------------------------------

ACRONYM = re.compile(r"\b([A-Z]{2,5})(s|['’]s)?\b")
# Said as words, not spelled (espeak-ng says most of them right as written).
PRONOUNCED = set("""NASA NATO UNESCO UNICEF NAFTA OPEC FIFA UEFA COVID SCUBA LASER RADAR AIDS SWAT POTUS SCOTUS
    FLOTUS GIF JPEG PIN RAM ROM SIM IKEA ISIS NOAA FEMA DARPA INTERPOL ASCII CAPTCHA WASP YOLO FOMO OLED
    LAN WAN NIMBY PAC SARS MERS ZIP TESOL NAND""".split())
# Everyday words written in capitals for emphasis or in headings ('I said NO'): left as they are.
EMPHASIS = set("""A I AN AM AS AT BE BY DO GO HE IF IN IS IT ME MY NO OF OH OK ON OR SO TO UP US WE YES YOU
    THE AND BUT NOT ALL ANY ARE CAN DID FOR GET GOT HAD HAS HER HIM HIS HOW ITS LET MAY NEW NOW OLD ONE OUR
    OUT OWN SAY SEE SHE TOO TWO WAS WAY WHO WHY YET BIG BAD HOT END TOP FREE SALE STOP HELP NEVER EVER VERY
    MUCH MORE MOST ONLY JUST THIS THAT WHAT WHEN THEN THEY THEM WILL WITH FROM HAVE BEEN WERE YOUR LOVE HATE
    MUST NEED WANT LIKE GOOD BEST LAST NEXT HERE THERE WHERE OVER DONE GONE COME BACK EACH EVEN MANY SOME
    SUCH SURE TRUE REAL HUGE NOTE WARN ALERT ALWAYS AGAIN WOW HEY YEAH NOPE OKAY SORRY PLEASE THANK THANKS
    NOTHING ABOUT AFTER GREAT WORLD WHICH THEIR WOULD COULD SHOULD RIGHT WRONG FIRST NEWS LIVE OPEN CLOSED
    EXIT ENTER DANGER FIRE WAIT READ EASY FAST SLOW HARD DEAD""".split())
_CAPITAL_BEFORE = re.compile(r"\b([A-Z]{2,})\s+$")
_CAPITAL_AFTER = re.compile(r"\s+([A-Z]{2,})\b")


def _acronym(m: re.Match, shouting: bool) -> str:
    """'IDE' 'I-D-E', 'CPUs' 'C-P-U's', 'NASA's' 'Nasa's'."""
    word, ending = m.group(1), m.group(2) or ""
    if word in PRONOUNCED:
        return word.capitalize() + ending if ending else word  # espeak-ng drops the 's of NASA's
    if shouting or word in EMPHASIS or _shouted(_CAPITAL_AFTER.match(m.string, m.end())) \
            or _shouted(_CAPITAL_BEFORE.search(m.string[max(0, m.start() - 12):m.start()])):
        return m.group()
    return "-".join(word) + ("'s" if ending else "")


def _shouted(neighbour: re.Match | None) -> bool:
    """A capitalised neighbour that is no acronym ('PLEASE', 'STOP') means shouting."""
    return neighbour is not None and (neighbour.group(1) in EMPHASIS or len(neighbour.group(1)) > 5)


def _shouting(text: str) -> bool:
    """Mostly capitals: the text is shouted, its capitalised words are words."""
    letters = sum(map(str.isalpha, text))
    return letters >= 12 and sum(map(str.isupper, text)) > 0.6 * letters


# Symbols ---------------------------------------------------------------------------------------------

_SYMBOL_WORDS = {
    "&": "and", "+": "plus", "=": "equals", "@": "at", "%": "percent", "‰": "per mille", "×": "times",
    "÷": "divided by", "±": "plus or minus", "≈": "approximately", "≠": "is not equal to",
    "≤": "less than or equal to", "≥": "greater than or equal to", "<": "less than", ">": "greater than",
    "°": "degrees", "º": "degrees", "§": "section", "¶": "paragraph", "©": "copyright", "$": "dollars", "€": "euros",
    "£": "pounds", "¥": "yen", "¢": "cents", "\\": "backslash", "/": "slash", "^": "to the power of",
    "→": "to", "#": "hash", "∞": "infinity",
    "~": "", "*": "", "_": "", "|": "", "`": "",  # markup debris, not read
}
_SYMBOL = re.compile("[" + re.escape("".join(_SYMBOL_WORDS)) + "]")
_SYMBOL_CONTEXTS = (
    (re.compile(r"\b([A-Ga-g])#(?!\w)"), r"\1 sharp"),      # C#, F#
    (re.compile(r"#(?=\d)"), "number "),                     # #1
    (re.compile(r"#(?=[A-Za-z])"), "hashtag "),              # #TTS
    (re.compile(r"~(?=\s?\d)"), "about "),                   # ~5
    (re.compile(r"(?<=[A-Za-z])/(?=[A-Za-z])"), " "),        # and/or, TCP/IP
    (re.compile(r"(?<=\d):(?=\d)"), " to "),                 # a 16:9 ratio
)


def _symbols(text: str) -> str:
    for pattern, replacement in _SYMBOL_CONTEXTS:
        text = pattern.sub(replacement, text)
    return _SYMBOL.sub(lambda m: f" {_SYMBOL_WORDS[m.group()]} ", text)


# The pipeline ----------------------------------------------------------------------------------------

def _split_letters_and_digits(m: re.Match) -> str:
    """'MP3' 'MP 3', 'COVID-19' 'COVID 19'; a single letter keeps a hyphen ('A4' 'A-4') so that
    espeak-ng says the letter's name."""
    letters = m.group(1) or m.group(2)
    joint = "-" if len(letters) == 1 else " "
    return letters + joint if m.group(1) else joint + letters


def normalize(text: str, language: str, settings: dict) -> str:
    """`text` as words (see the module docstring); `settings` as in DEFAULTS."""
    british = not language.startswith("en-us")
    if settings["markup"]:
        text = strip_markup(text)
    text = _VULGAR.sub(lambda m: " " + amounts.VULGAR[m.group()], text)
    text = _APOSTROPHE.sub("'", text.replace("−", "-"))
    for pattern, rule in _RULES:
        text = pattern.sub(lambda m: rule(m, british), text)
    text = _LETTERS_DIGITS.sub(_split_letters_and_digits, text)
    if settings["acronyms"]:
        shouting = _shouting(text)
        text = ACRONYM.sub(lambda m: _acronym(m, shouting), text)
    text = _symbols(text)
    text = amounts.DOTTED_NUMBER.sub(lambda m: amounts.dotted_number(m, british), text)
    text = amounts.NUMBER.sub(lambda m: amounts.plain_number(m, british), text)
    # last: the rules above read some symbols that it would drop (°, ©)
    return tidy_punctuation(collapse_spaces(drop_unspeakable(text)))
