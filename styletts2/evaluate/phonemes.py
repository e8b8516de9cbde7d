"""espeak-ng phoneme strings -> the phoneme recogniser's symbols, so the two can be compared.

The recogniser (`hama`'s phoneme ASR, see `intelligibility.py`) writes English with one token per
phoneme: affricates tied (`t͡ʃ`, `d͡ʒ`), the diphthongs `aɪ aʊ eɪ oʊ ɔɪ` as single tokens, the
rhotic vowel as `ɝ`, and no stress or length marks. espeak-ng (through `styletts2.text.phonemizer`)
writes `tʃ dʒ`, `ɚ` and `ɜː`, flaps and glottal stops, syllabic consonants, `ɐ ᵻ` for reduced
vowels and `ɡ` (U+0261) for g.

Choices, all visible in the tables below:
- Stress (`ˈ ˌ`) and length (`ː ˑ`) marks are dropped: the recogniser never emits them.
- Word boundaries and punctuation are dropped: PER is computed on phonemes only, since the
  recogniser's word splitting is unreliable (it often runs words together or splits them).
- `FOLD` merges symbols the recogniser itself writes two ways (`ɡ`/`g`, `ɚ`/`ɝ`); it is applied to
  both sides of every comparison, including recogniser-vs-recogniser.
- `ESPEAK_TO_RECOGNISER` rewrites espeak-ng units that the recogniser writes differently: the flap
  `ɾ` and the glottal stop `ʔ` are allophones of /t/ in American English (`wˈɔːɾɚ`, `bˈʌʔn̩`), a
  syllabic consonant is schwa + consonant, `ɐ` is schwa, `ᵻ` is `ɪ`.
- Any other symbol must be one the recogniser can emit (identity); anything else raises
  `UnknownPhonemeError` naming it, rather than being dropped silently.
"""
from __future__ import annotations

import functools
import unicodedata

STRESS_AND_LENGTH = frozenset("ˈˌːˑ")
# Punctuation that the project's phonemizer keeps (see styletts2.text.phonemizer), plus word spaces.
SEPARATORS = frozenset(" .,;:!?¡¿—…\"'“”‘’«»()[]{}<>-")

# Symbols the recogniser emits in two spellings, merged on both sides of a comparison.
FOLD: dict[str, str] = {
    "ɡ": "g",   # U+0261 script g -> ASCII g (the recogniser emits both for the same sound)
    "ɚ": "ɝ",   # the recogniser writes every r-coloured vowel as ɝ
}

# espeak-ng unit -> recogniser tokens. Units longer than one character are matched first.
ESPEAK_TO_RECOGNISER: dict[str, tuple[str, ...]] = {
    "tʃ": ("t͡ʃ",),
    "dʒ": ("d͡ʒ",),
    "aɪ": ("aɪ",),
    "aʊ": ("aʊ",),
    "eɪ": ("eɪ",),
    "oʊ": ("oʊ",),
    "ɔɪ": ("ɔɪ",),
    "ɜɹ": ("ɝ",),       # en-us NURSE written with an r: one rhotic vowel
    "ɜ": ("ɝ",),        # en-us NURSE (ɜː with the length mark dropped)
    "ɚ": ("ɝ",),
    "ɐ": ("ə",),
    "ᵻ": ("ɪ",),
    "ɾ": ("t",),        # flap: an allophone of /t/ (or /d/); the recogniser mostly hears t
    "ʔ": ("t",),        # glottal stop before a syllabic n: /t/ as in "button"
    "n̩": ("ə", "n"),   # syllabic consonants: schwa + consonant
    "l̩": ("ə", "l"),
    "m̩": ("ə", "m"),
    "ɡ": ("g",),
    "r": ("ɹ",),        # espeak-ng writes a trilled/tapped r in some loan words
}


class UnknownPhonemeError(ValueError):
    """An espeak-ng symbol that neither the table nor the recogniser's inventory knows."""


@functools.cache
def recogniser_inventory() -> frozenset[str]:
    """The tokens the recogniser can emit (its decoder vocabulary, less the special tokens)."""
    from hama import Vocabulary

    return frozenset(t for t in Vocabulary.load().decoder if not (t.startswith("<") and t.endswith(">")))


def fold(tokens: list[str]) -> list[str]:
    """Recogniser tokens with `FOLD` applied and boundary/stress tokens removed."""
    out = []
    for token in tokens:
        token = "".join(c for c in token if c not in STRESS_AND_LENGTH).strip()
        if token and token not in SEPARATORS:
            out.append(FOLD.get(token, token))
    return out


def espeak_to_recogniser(phonemes: str, inventory: frozenset[str] | None = None) -> list[str]:
    """An espeak-ng phoneme string (`ðə kwˈɪk bɹˈaʊn fˈɑːks .`) as recogniser tokens
    (`ð ə k w ɪ k b ɹ aʊ n f ɑ k s`). Raises UnknownPhonemeError for a symbol with no mapping."""
    inventory = recogniser_inventory() if inventory is None else inventory
    text = "".join(c for c in phonemes if c not in STRESS_AND_LENGTH)
    longest = max(len(unit) for unit in ESPEAK_TO_RECOGNISER)
    tokens: list[str] = []
    i = 0
    while i < len(text):
        if text[i] in SEPARATORS or text[i].isspace():
            i += 1
            continue
        for size in range(min(longest, len(text) - i), 0, -1):
            unit = text[i:i + size]
            if unit in ESPEAK_TO_RECOGNISER:
                tokens += ESPEAK_TO_RECOGNISER[unit]
                break
        else:
            unit = text[i]
            # a lone diacritic (combining mark) would become a token of its own: refuse it too
            if unit not in inventory or unicodedata.category(unit) == "Mn":
                raise UnknownPhonemeError(f"espeak-ng phoneme {unit!r} (U+{ord(unit):04X}) in {phonemes!r} "
                                          "has no recogniser symbol: add it to ESPEAK_TO_RECOGNISER")
            tokens.append(unit)
        i += len(unit)
    return fold(tokens)


def text_to_recogniser(text: str, language: str = "en-us") -> list[str]:
    """Text -> espeak-ng phonemes (the project's phonemizer) -> recogniser tokens."""
    from ..text.phonemizer import phonemize

    return espeak_to_recogniser(phonemize(text, language))
