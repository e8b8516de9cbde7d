"""Text -> phoneme string, the way the released StyleTTS2 models were trained.

Upstream phonemizes with espeak-ng (phonemizer's EspeakBackend, 'en-us', punctuation preserved,
stress marks on) and then runs nltk's `word_tokenize` over the phonemes and joins the pieces with
single spaces, so punctuation stands apart from words: `həlˈoʊ, wˈɜːld.` -> `həlˈoʊ , wˈɜːld .`.
The training lists were made the same way. nltk is not a dependency here; `split_words`
reproduces what `word_tokenize` (nltk 3.8, the release upstream used) does to phonemizer output:

- `, : ; ? !` become tokens of their own (`,`/`:` not before a digit, as in nltk);
- a run of two or more periods is one token (`...`);
- a single period that ends a sentence is split off: one followed by the end of the text, by
  whitespace, or by closing `"')]}` and then whitespace. A period inside a word (`pˈiː.ˈɛm`), before
  other punctuation (`kˈoʊ.,`), before a curly closing quote in mid-text (`wˈɜːd.” nˈɛkst`), or
  after a one-letter word followed by a lowercase word or a punctuation mark (punkt's initials
  rule) stays attached;
- quotes `“ ” ‘ ’ „ « »`, brackets `( ) [ ] { } < >` and `--` stand apart; a straight `"` becomes a
  `"` token (nltk writes `` `` `` / `''`, which upstream's long-form demo maps back to `"`);
- `— … ¡ ¿` are left where espeak put them (nltk 3.8 does not split them).
nltk rules that never fire on phonemizer output (apostrophes and contractions, `@#$%&*`, and
punkt's learned English abbreviations, which no IPA word matches) are not reproduced.
"""
import re

from .espeak import LANGUAGE, espeak_backend, espeak_phonemize, espeak_version
from .sentences import remove_control_characters
from .tokenizer import preview_text

_PERIOD_RUN = re.compile(r"\.{2,}")
_SINGLE_PERIOD = re.compile(r"(?<!\.)\.(?!\.)")
_CLOSERS = "\"')]}>»”’"
_BOUNDARY_CLOSERS = set("\"')]}")  # closers after which punkt still sees a sentence boundary
# a one-letter word right before the period, as punkt's word splitter delimits words
_INITIAL = re.compile(r"""(?:^|\s|[()"';}\]*:@{\[?!]|\.\.)[^\W\d]$""")
_NON_SPACE = re.compile(r"\S")
_OPENING_QUOTES = re.compile(r"[«“‘„]")
# nltk's comma/colon rule: each match consumes the following character, so in ",," only the first
# comma is split off; reproduced as is
_COMMA_COLON = re.compile(r"([:,])([^\d])")
_FINAL_COMMA_COLON = re.compile(r"([:,])$")
_PADDED = re.compile(r"""[;?!”’»()\[\]{}<>"]|--""")


class NoPhonemesError(ValueError):
    """Text espeak-ng turns into no phoneme at all ('___')."""


def _period_ends_sentence(text: str, start: int) -> bool:
    """Whether the single period at `text[start]` ends a sentence in nltk's eyes. Looks no further
    than the closers and whitespace after it, so splitting stays linear in the text's length."""
    end = start + 1
    while end < len(text) and text[end] in _CLOSERS:  # each run of closers follows one period only
        end += 1
    next_char = _NON_SPACE.search(text, end)
    if next_char is None:
        return True  # end of the text: nltk's final-period rule
    if next_char.start() == end:
        return False  # inside a word or before other punctuation
    if end > start + 1:
        return set(text[start + 1:end]) <= _BOUNDARY_CLOSERS
    # punkt's orthographic heuristic: an initial followed by a lowercase word or a punctuation
    # mark is an abbreviation, not a sentence end
    following = next_char.group()
    return not ((following.islower() or following in ";:,.!?") and _is_initial(text, start))


def _is_initial(text: str, start: int) -> bool:
    """Whether a one-letter word ends right before `text[start]`. The pattern reads at most 4
    characters back ('..' or a delimiter, the letter, a final newline `$` allows); searching the
    whole text before it made splitting quadratic (22 s for 80,000 characters)."""
    return _INITIAL.search(text, max(0, start - 4), start) is not None


def split_words(phonemes: str) -> list[str]:
    """Phonemizer output split into words and punctuation tokens as nltk's word_tokenize does."""
    pieces, last = [], 0
    for match in _SINGLE_PERIOD.finditer(phonemes):
        if _period_ends_sentence(phonemes, match.start()):
            pieces += [phonemes[last:match.start()], " . "]
            last = match.end()
    text = "".join(pieces) + phonemes[last:]
    text = _OPENING_QUOTES.sub(r" \g<0> ", text)
    text = _COMMA_COLON.sub(r" \1 \2", text)
    text = _FINAL_COMMA_COLON.sub(r" \1 ", text)
    text = _PERIOD_RUN.sub(r" \g<0> ", text)
    text = _PADDED.sub(r" \g<0> ", text)
    return text.split()


def phonemize(text: str, language: str = LANGUAGE) -> str:
    """Phoneme string of `text` as the released models expect it (words joined by single spaces).

    Raises ValueError for empty text, NoPhonemesError (a ValueError) for text espeak-ng turns into nothing.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = remove_control_characters(text).strip()  # a NUL would end the text for espeak-ng
    if not text:
        raise ValueError("cannot phonemize empty or whitespace-only text")
    raw = espeak_phonemize(text, language)
    words = split_words(raw)
    if not words:
        raise NoPhonemesError(f"espeak-ng produced no phonemes for {preview_text(text)}")
    return " ".join(words)


class EspeakPhonemizer:
    """Callable text -> phoneme string for one language; `version` is the espeak-ng version to
    record with a model."""

    def __init__(self, language: str = LANGUAGE):
        self.language = language
        espeak_backend(language)  # fail early on a bad language or a broken espeak-ng install
        self.version = espeak_version()

    def __call__(self, text: str) -> str:
        return phonemize(text, self.language)
