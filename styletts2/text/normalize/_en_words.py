"""English: written forms of words -> what is said (web addresses, abbreviations and titles,
initials, Roman numerals after names, acronyms, symbols)."""
from __future__ import annotations

import re

from ._en_numbers import cardinal, digits, ordinal
from ._en_numeric import period_if_sentence_ends

# Web addresses ---------------------------------------------------------------------------------------

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w@])")
# With a scheme or www., or a bare host under a common top-level domain; a final . , ; : ! ? is
# punctuation. A bare host starts where a run of host characters starts (linear time on 'a-a-a...').
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'()\[\]]*[^\s<>\"'()\[\].,;:!?]"
                 r"|(?<![\w.@/-])[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov|io|dev|ai|co\.uk|uk)"
                 r"(?:/[^\s<>\"'()]*[^\s<>\"'().,;:!?])?\b")
_URL_MARKS = {".": "dot", "/": "slash", "-": "dash", "_": "underscore", "?": "question mark", "=": "equals",
              "&": "and", "#": "hash", ":": "colon", "~": "tilde", "+": "plus", "%": "percent", "@": "at"}
_VOWEL = re.compile(r"[aeiouy]", re.I)


def _address_part(part: str, country: bool) -> str:
    if part in _URL_MARKS:
        return _URL_MARKS[part]
    if part.isdigit():
        return cardinal(int(part)) if len(part) <= 4 and not part.startswith("0") else digits(part)
    if part.lower() == "www" or not _VOWEL.search(part) or country:
        return "-".join(part.upper())  # letter by letter: 'bbc' -> 'B-B-C', '.uk' -> 'dot U-K'
    return part


def web_address(m: re.Match, british: bool) -> str:
    """https://www.example.com/docs 'W-W-W dot example dot com slash docs'; a@b.org 'a at b dot org'."""
    text = re.sub(r"^https?://", "", m.group()).rstrip("/")
    parts = re.findall(r"[A-Za-z]+|\d+|[^A-Za-z\d]", text)
    spoken = []
    for i, part in enumerate(parts):  # a two-letter last label of a host is a country code
        country = (len(part) == 2 and part.isalpha() and part.lower() != "co" and i > 0 and parts[i - 1] == "."
                   and (i + 1 == len(parts) or parts[i + 1] == "/"))
        spoken.append(_address_part(part, country))
    return " ".join(spoken)


# Abbreviations and titles ---------------------------------------------------------------------------

_TITLES = {"Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Dr": "Doctor", "Prof": "Professor",
           "Rev": "Reverend", "Hon": "Honorable", "Gen": "General", "Col": "Colonel", "Capt": "Captain",
           "Lt": "Lieutenant", "Sgt": "Sergeant", "Gov": "Governor", "Sen": "Senator", "Rep": "Representative",
           "Pres": "President", "St": "Saint", "Mt": "Mount", "Ft": "Fort", "Fr": "Father"}
_STREETS = {"St": "Street", "Dr": "Drive", "Ave": "Avenue", "Rd": "Road", "Blvd": "Boulevard"}
# Titles: Mr., Mrs., Ms. and Prof. anywhere; the others before a capitalised word, and Mr, Mrs, Ms,
# Dr and St there also without their period (British usage).
TITLE = re.compile(r"(?<![\w.])(?:(Mr|Mrs|Ms|Prof)\.|(?:(Mr|Mrs|Ms|Dr|St)\.?|(" + "|".join(_TITLES)
                   + r")\.)(?=\s+[A-Z]))")
STREET = re.compile(r"(?<=[A-Za-z0-9] )(St|Dr|Ave|Rd|Blvd)\.?(?!\w)")
_ABBREVIATIONS = {  # written -> said; the ones that may end a sentence keep its period there
    "etc": "et cetera", "vs": "versus", "e.g": "for example", "i.e": "that is", "a.k.a": "also known as",
    "Inc": "Incorporated", "Ltd": "Limited", "Corp": "Corporation", "Bros": "Brothers", "Jr": "Junior",
    "Sr": "Senior", "approx": "approximately", "Dept": "Department", "dept": "department", "cf": "compare",
}
_MAY_END_A_SENTENCE = {"etc", "Inc", "Ltd", "Corp", "Bros", "Jr", "Sr", "Dept", "dept"}
ABBREVIATION = re.compile(r"(?<![\w.])(etc|vs|e\.g|i\.e|a\.k\.a|approx|cf|Dept|dept)\.|(?<![\w.])(etc|vs)(?!\w)"
                          r"|(?<=\w )(Inc|Ltd|Corp|Bros|Jr|Sr)(\.?)(?!\w)|(?<=\w, )(Jr|Sr|Inc)(\.?)(?!\w)"
                          r"|(?<=[a-z] )v\.(?= [A-Z])")
BEFORE_NUMBER = re.compile(r"(?<![\w.])(No|no|Nos|Vol|vol|pp|p|Ch|ch|Fig|fig|Eq|eq|Sec|sec)\.\s?(?=\d)")
_BEFORE_NUMBER = {"no": "number", "nos": "numbers", "vol": "volume", "pp": "pages", "p": "page", "ch": "chapter",
                  "fig": "figure", "eq": "equation", "sec": "section"}
WITH = re.compile(r"(?<![\w/])w/(o\b)?")
INITIALISM = re.compile(r"(?<![\w.])(?:[A-Za-z]\.){2,}(?![\w])|\bPh\.D\.?")
INITIAL = re.compile(r"(?<![\w.-])([B-HJ-Z])\.(?=\s+[A-Z])")


def title(m: re.Match, british: bool) -> str:
    return _TITLES[m.group(1) or m.group(2) or m.group(3)]


def street(m: re.Match, british: bool) -> str:
    """'Main St.' 'Main Street': a street word after a name and not before one (a title then)."""
    if re.match(r"\s+[A-Z][a-z]", m.string[m.end():m.end() + 3]):
        return m.group()
    period = period_if_sentence_ends(m.string, m.end()) if m.group().endswith(".") else ""
    return _STREETS[m.group(1)] + period


def abbreviation(m: re.Match, british: bool) -> str:
    if m.group() == "v.":  # Roe v. Wade
        return "versus"
    key = next(g for g in (m.group(1), m.group(2), m.group(3), m.group(5)) if g)
    ends = m.group().endswith(".") and key in _MAY_END_A_SENTENCE
    return _ABBREVIATIONS[key] + (period_if_sentence_ends(m.string, m.end()) if ends else "")


def before_number(m: re.Match, british: bool) -> str:
    return _BEFORE_NUMBER[m.group(1).lower()] + " "


def initialism(m: re.Match, british: bool) -> str:
    """U.S. 'U-S', Ph.D. 'P-H-D': letter by letter, the final period kept where the sentence ends."""
    letters = re.sub(r"[^A-Za-z]", "", m.group()).upper()
    return "-".join(letters) + (period_if_sentence_ends(m.string, m.end()) if m.group().endswith(".") else "")


def initial(m: re.Match, british: bool) -> str:
    """'J. R. R. Tolkien' -> 'J R R Tolkien' (no sentence ends there). 'A.' keeps its period:
    without it espeak-ng reads a lone 'A' as the article."""
    return m.group(1)


# Roman numerals after names ---------------------------------------------------------------------------

ROMAN = re.compile(r"\b([A-Z][a-z]+)(\s+)([IVX]{1,7})\b(?!-)")
_ROMAN_VALID = re.compile(r"^(X{0,3})(IX|IV|V?I{0,3})$")
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10}
_AFTER_FIRST = re.compile(r"\s*(?:[,.;:!?)]|$|of\b|['’]s\b)")
# After these, a numeral is a number ('World War Two'); after a ruler's name, an ordinal ('the Eighth').
_NUMBERED = {"War", "Chapter", "Part", "Volume", "Vol", "Book", "Act", "Scene", "Phase", "Type", "Class",
             "Level", "Stage", "Section", "Article", "Title", "Apollo", "Episode", "Season", "Schedule",
             "Appendix", "Grade", "Category", "Round", "Series", "Mark", "Model", "Gemini", "Psalm", "Track"}
# A one-letter numeral (I, V, X) is only read after these: 'Then I', 'Malcolm X' are not numerals.
_RULERS = {"Henry", "Edward", "George", "William", "Elizabeth", "Charles", "Louis", "Richard", "James", "John",
           "Mary", "Anne", "Pius", "Leo", "Benedict", "Gregory", "Paul", "Innocent", "Clement", "Urban",
           "Boniface", "Alexander", "Nicholas", "Peter", "Frederick", "Philip", "Ferdinand", "Napoleon",
           "Ramesses", "Ptolemy", "Constantine", "Otto", "Carlos", "Felipe", "Gustav", "Christian", "Olaf",
           "Harald", "Wilhelm", "Ludwig", "Franz", "Karl", "Rudolf", "Ivan", "Catherine", "David", "Robert"}


_QUEENS = {"Elizabeth", "Mary", "Anne", "Catherine"}  # 'Elizabeth I ruled': no pronoun follows a queen's name


def _roman_value(numeral: str) -> int:
    values = [_ROMAN_VALUES[c] for c in numeral]
    return sum(-v if i + 1 < len(values) and v < values[i + 1] else v for i, v in enumerate(values))


def roman(m: re.Match, british: bool) -> str:
    """'Henry VIII' 'Henry the Eighth', 'World War II' 'World War Two'."""
    name, space, numeral = m.groups()
    if not _ROMAN_VALID.match(numeral) or (len(numeral) == 1 and name not in _RULERS | _NUMBERED):
        return m.group()
    if numeral == "I" and name in _RULERS - _QUEENS and not _AFTER_FIRST.match(m.string, m.end()):
        return m.group()  # 'John I think': the pronoun
    value = _roman_value(numeral)
    if name in _NUMBERED:
        return f"{name}{space}{cardinal(value).title()}"
    return f"{name}{space}the {ordinal(value).title()}"
