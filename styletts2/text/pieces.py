"""Text -> token pieces: what one synthesis call (torch or onnxruntime) renders at a time.

Text is first normalized (`styletts2.text.normalize`: numbers, dates, abbreviations... as words),
when the caller gives a normalizer. Long text is then split into sentences (each synthesized on its
own, so audio can stream) and a sentence too long for PL-BERT's positions into windows cut at word
boundaries. Pieces are token ids without the leading pad token, which the synthesizer adds
(inference framing `[0] + ids`).
"""
from __future__ import annotations

from collections.abc import Callable

from .sentences import remove_control_characters, split_sentences, split_token_windows
from .symbols import PUNCTUATION, SYMBOL_TO_ID
from .tokenizer import Tokenizer, preview_text

# Ids of punctuation and the space: a piece of these alone has no phoneme to speak (a thousand '?'
# made 76 s of babble), so it is dropped.
_UNSPOKEN_IDS = frozenset(SYMBOL_TO_ID[c] for c in PUNCTUATION)


def text_to_token_pieces(text: str, phonemize: Callable[[str], str], tokenizer: Tokenizer,
                         max_positions: int, normalize: Callable[[str], str] | None = None) -> list[list[int]]:
    """Pieces of `text`, each at most `max_positions - 1` ids long. `normalize` (None: none)
    rewrites the whole text first, so an abbreviation's period never ends a sentence. Straight
    double quotes are dropped before phonemizing, as the torch synthesizer does, so both see the
    same tokens; control characters become spaces first (a NUL would end the text for espeak-ng).
    Pieces of punctuation alone are dropped. Raises ValueError for text with nothing to say."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = remove_control_characters(text)
    if normalize is not None:
        normalized = normalize(text)
        if text.strip() and not normalized.strip():
            raise ValueError(f"nothing to say in {preview_text(text)} once normalized")
        text = normalized
    pieces = []
    for sentence in split_sentences(text):
        ids = tokenizer.encode(phonemize(sentence.replace('"', "")), add_bos=False, add_eos=False)
        pieces.extend(split_token_windows(ids, max_positions, n_special=1))
    pieces = [piece for piece in pieces if not _UNSPOKEN_IDS.issuperset(piece)]
    if not pieces:
        raise ValueError(f"nothing to say in {preview_text(text)}: it phonemizes to punctuation alone")
    return pieces
