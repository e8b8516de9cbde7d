"""The word vocabulary of PL-BERT's second objective: which word does each phoneme belong to?

Upstream (PL-BERT's preprocess.ipynb) maps TransfoXL token ids of Wikipedia's words, lower-cased, to
84,827 classes. Here the classes come from the training text itself: words are lower-cased and
counted; the most frequent ones get their own id, in order of frequency (ties alphabetically, so
the same text always gives the same ids), the rest share the unknown-word id.

    0  SEPARATOR  the space between two words (upstream's `word_separator`)
    1  UNKNOWN    a word seen fewer than `min_count` times, or beyond `max_words`
    2. the words

The vocabulary travels with the checkpoint (`state_dict`): a resumed run keeps the ids its word
head was trained on even if the text or the bindings changed since.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

SEPARATOR, UNKNOWN = "<sep>", "<unk>"
SEPARATOR_ID, UNKNOWN_ID = 0, 1


class WordVocab:
    """Word -> class id (see the module docstring); `language` is the espeak-ng language its
    words were phonemized in (None when they came as phonemes)."""

    def __init__(self, words: Iterable[str], language: str | None = None):
        self.words = [SEPARATOR, UNKNOWN, *words]
        self.language = language
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("word vocabulary has repeated entries")

    @classmethod
    def build(cls, words: Iterable[str], min_count: int = 1, max_words: int | None = None,
              language: str | None = None) -> WordVocab:
        """From every occurrence of every word (already lower-cased by the caller)."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_words is not None and max_words < 3:
            raise ValueError(f"max_words counts the separator and unknown ids too: >= 3, got {max_words}")
        counts = Counter(words)
        ranked = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        if max_words is not None:
            ranked = ranked[:max_words - 2]
        return cls(ranked, language)

    def __len__(self) -> int:
        return len(self.words)

    def __eq__(self, other) -> bool:
        return isinstance(other, WordVocab) and (self.words, self.language) == (other.words, other.language)

    def id(self, word: str) -> int:
        return self.index.get(word, UNKNOWN_ID)

    def ids(self, words: Iterable[str]) -> list[int]:
        return [self.index.get(w, UNKNOWN_ID) for w in words]

    def state_dict(self) -> dict:
        return {"words": self.words[2:], "language": self.language,
                "separator": SEPARATOR, "unknown": UNKNOWN}

    @classmethod
    def from_state_dict(cls, state: dict) -> WordVocab:
        if (state.get("separator"), state.get("unknown")) != (SEPARATOR, UNKNOWN):
            raise ValueError("saved word vocabulary has other special entries than this code's")
        return cls(state["words"], state.get("language"))
