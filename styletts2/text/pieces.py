"""Text -> token pieces: what one synthesis call (torch or onnxruntime) renders at a time.

Long text is split into sentences (each synthesized on its own, so audio can stream) and a sentence
too long for PL-BERT's positions into windows cut at word boundaries. Pieces are token ids without
the leading pad token, which the synthesizer adds (inference framing `[0] + ids`).
"""
from __future__ import annotations

from collections.abc import Callable

from .sentences import split_sentences, split_token_windows
from .tokenizer import Tokenizer


def text_to_token_pieces(text: str, phonemize: Callable[[str], str], tokenizer: Tokenizer,
                         max_positions: int) -> list[list[int]]:
    """Pieces of `text`, each at most `max_positions - 1` ids long. Straight double quotes are
    dropped before phonemizing, as the torch synthesizer does, so both see the same tokens.
    Raises ValueError for text with nothing to say."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    pieces = []
    for sentence in split_sentences(text):
        ids = tokenizer.encode(phonemize(sentence.replace('"', "")), add_bos=False, add_eos=False)
        pieces.extend(split_token_windows(ids, max_positions, n_special=1))
    return pieces
