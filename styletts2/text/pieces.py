"""Text -> token pieces: what one synthesis call (torch or onnxruntime) renders at a time.

Text is first normalized (`styletts2.text.normalize`: numbers, dates, abbreviations... as words),
when the caller gives a normalizer. Long text is then split into sentences (each synthesized on its
own, so audio can stream) and a sentence too long for PL-BERT's positions into windows cut at word
boundaries. Pieces are token ids without the leading pad token, which the synthesizer adds
(inference framing `[0] + ids`).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable

from .phonemizer import NoPhonemesError
from .scripts import warn_foreign_scripts
from .sentences import remove_control_characters, split_sentences, split_token_windows
from .symbols import PUNCTUATION, SPACE_ID, SYMBOL_TO_ID
from .tokenizer import NoKnownSymbolError, Tokenizer, preview_text

# Ids of punctuation and the space: a piece of these alone has no phoneme to speak (a thousand '?'
# made 76 s of babble), so it is dropped.
_UNSPOKEN_IDS = frozenset(SYMBOL_TO_ID[c] for c in PUNCTUATION)
# Runs of them inside a sentence are bounded too: each id is said for about 50 ms whatever it is,
# so sixty '!' made 6 s of babble and two hundred '(' (dropped, their spaces left) 21 s. Ordinary
# text stays within both bounds and keeps upstream's tokens: its longest runs are about 12 ids
# (' ... ... ...'; ' ... ? ! ”' 10) and 3 spaces (a dropped bracket between two: ') (').
_MAX_UNSPOKEN_RUN = 16  # ids: at most about 0.8 s
_MAX_SPACES = 3  # more in a row become one


def _bound_unspoken_runs(ids: list[int]) -> list[int]:
    """`ids` with more than `_MAX_SPACES` spaces in a row made one, and each run of punctuation and
    spaces longer than `_MAX_UNSPOKEN_RUN` cut to it: its spaces single, then its first ids and its
    last (the space before the next word, or the sentence's final mark)."""
    out = []
    for unspoken, group in itertools.groupby(ids, _UNSPOKEN_IDS.__contains__):
        run = list(group)
        if unspoken:
            run = _squeeze_spaces(run, _MAX_SPACES)
            if len(run) > _MAX_UNSPOKEN_RUN:
                run = _squeeze_spaces(run, 1)
            if len(run) > _MAX_UNSPOKEN_RUN:
                run = _squeeze_spaces(run[:_MAX_UNSPOKEN_RUN - 1] + run[-1:], 1)
        out += run
    return out


def _squeeze_spaces(ids: list[int], most: int) -> list[int]:
    """`ids` with each row of more than `most` spaces made one space."""
    out = []
    for is_space, group in itertools.groupby(ids, SPACE_ID.__eq__):
        row = list(group)
        out += row[:1] if is_space and len(row) > most else row
    return out


def _sentence_ids(sentence: str, phonemize: Callable[[str], str], tokenizer: Tokenizer) -> list[int]:
    """Token ids of one sentence, its runs bounded; none for a sentence with nothing to say ('___'
    read as written), which is dropped as normalization would drop it."""
    try:
        ids = tokenizer.encode(phonemize(sentence.replace('"', "")), add_bos=False, add_eos=False)
    except (NoPhonemesError, NoKnownSymbolError):
        return []
    return _bound_unspoken_runs(ids)


def text_to_token_pieces(text: str, phonemize: Callable[[str], str], tokenizer: Tokenizer,
                         max_positions: int, normalize: Callable[[str], str] | None = None) -> list[list[int]]:
    """Pieces of `text`, each at most `max_positions - 1` ids long. `normalize` (None: none)
    rewrites the whole text first, so an abbreviation's period never ends a sentence. Straight
    double quotes are dropped before phonemizing, as the torch synthesizer does, so both see the
    same tokens; control characters become spaces first (a NUL would end the text for espeak-ng).
    Pieces of punctuation alone and sentences with no phoneme are dropped, and long runs of
    punctuation and spaces shortened. Letters an English `phonemize` (one with that `language`)
    would spell out give one ForeignScriptWarning (`scripts.py`). Raises ValueError for text with
    nothing to say."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = remove_control_characters(text)
    if normalize is not None:
        normalized = normalize(text)
        if text.strip() and not normalized.strip():
            raise ValueError(f"nothing to say in {preview_text(text)} once normalized")
        text = normalized
    warn_foreign_scripts(text, getattr(phonemize, "language", None))  # once for the text, not per sentence
    pieces = []
    for sentence in split_sentences(text):
        ids = _sentence_ids(sentence, phonemize, tokenizer)
        pieces.extend(split_token_windows(ids, max_positions, n_special=1) if ids else [])
    pieces = [piece for piece in pieces if not _UNSPOKEN_IDS.issuperset(piece)]
    if not pieces:
        raise ValueError(f"nothing to say in {preview_text(text)}: it phonemizes to punctuation alone or nothing")
    return pieces
