"""PL-BERT's masked-phoneme dataset: word sentences -> masked phoneme ids, labels and word ids.

An item follows upstream's `dataloader.py` (PL-BERT):
- the input is each word's phonemes followed by a space (the word separator, word id 0), so
  `ðə kˈæt ` for two words; the labels are the unmasked phoneme ids, the word ids the vocabulary id
  of the word every position belongs to;
- every word is picked with probability `word_mask_prob` (0.15); a picked word's phonemes all become
  prediction targets and are replaced, with probability 1 - `replace_prob` (0.8), by the mask token
  (`M`); otherwise, with probability `phoneme_mask_prob` (0.1 overall), by phonemes drawn at random
  from the sentence, else (0.1 overall) left as they are. Separators are never picked;
- an item longer than `max_length` is cut to a random window of that length.
The draws come from a generator seeded by (seed, split, epoch, index): an item is the same whichever
worker loads it and in whatever order, and a resumed run redraws exactly what it would have drawn.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch.utils.data import Dataset

from styletts2.text.symbols import SPACE_ID, SYMBOL_TO_ID

from .plbert_text import WordSentence
from .word_vocab import SEPARATOR_ID, WordVocab


@dataclass
class MaskedItem:
    tokens: torch.Tensor  # (T,) long: the input, masked
    labels: torch.Tensor  # (T,) long: the phoneme ids before masking
    words: torch.Tensor  # (T,) long: word class of every position
    masked: torch.Tensor  # (T,) bool: the positions whose phoneme is predicted


@dataclass
class MaskedBatch:
    """Padded `MaskedItem`s (pad id 0, `masked` False there); lengths (B,)."""

    tokens: torch.Tensor
    labels: torch.Tensor
    words: torch.Tensor
    masked: torch.Tensor
    lengths: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MaskedBatch:
        return MaskedBatch(**{f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                              for f in fields(self)})

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def valid(self) -> torch.Tensor:
        """(B, T) bool: the real positions."""
        return torch.arange(self.tokens.shape[1], device=self.tokens.device)[None] < self.lengths[:, None]


def collate_masked(items: Sequence[MaskedItem]) -> MaskedBatch:
    longest = max(len(item.tokens) for item in items)
    out = {f.name: torch.zeros(len(items), longest, dtype=getattr(items[0], f.name).dtype) for f in fields(MaskedItem)}
    for row, item in enumerate(items):
        for f in fields(MaskedItem):
            value = getattr(item, f.name)
            out[f.name][row, :len(value)] = value
    return MaskedBatch(**out, lengths=torch.tensor([len(item.tokens) for item in items]))


class _Encoded:
    """A sentence's phoneme ids and, per position, the index of its word (-1: separator)."""

    __slots__ = ("ids", "word_of", "keys")

    def __init__(self, sentence: WordSentence):
        ids, word_of = [], []
        for index, phonemes in enumerate(sentence.phonemes):
            ids += [SYMBOL_TO_ID[c] for c in phonemes] + [SPACE_ID]
            word_of += [index] * len(phonemes) + [-1]
        self.ids = np.asarray(ids, dtype=np.int64)
        self.word_of = np.asarray(word_of, dtype=np.int64)
        self.keys = sentence.keys


class MaskedPhonemeDataset(Dataset):
    """Map-style dataset over `WordSentence`s (see the module docstring).

    vocab: word classes; may be replaced (a resumed run brings the checkpoint's).
    split: a number mixed into the seed so that validation draws differ from training's.
    """

    def __init__(self, sentences: Sequence[WordSentence], vocab: WordVocab, max_length: int = 512,
                 word_mask_prob: float = 0.15, phoneme_mask_prob: float = 0.1, replace_prob: float = 0.2,
                 mask_token: str = "M", seed: int = 0, split: int = 0):
        if not 0 <= phoneme_mask_prob <= replace_prob <= 1:
            raise ValueError(f"need 0 <= phoneme_mask_prob ({phoneme_mask_prob}) <= replace_prob ({replace_prob}) <= 1")
        if mask_token not in SYMBOL_TO_ID:
            raise ValueError(f"mask token {mask_token!r} is not in the symbol table")
        self.items = [_Encoded(s) for s in sentences]
        self.vocab = vocab
        self.max_length = max_length
        self.word_mask_prob = word_mask_prob
        self.phoneme_mask_prob = phoneme_mask_prob
        self.replace_prob = replace_prob
        self.mask_id = SYMBOL_TO_ID[mask_token]
        self.seed, self.split, self.epoch = seed, split, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def lengths(self) -> list[int]:
        """Tokens per item after cropping (what the length-bucketed sampler sorts by)."""
        return [min(len(item.ids), self.max_length) for item in self.items]

    def generator(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.split, self.epoch, index])

    def __getitem__(self, index: int) -> MaskedItem:
        item = self.items[index]
        rng = self.generator(index)
        tokens, masked = item.ids.copy(), np.zeros(len(item.ids), dtype=bool)
        phonemes = item.ids[item.word_of >= 0]  # what a random replacement draws from
        for word in range(len(item.keys)):
            if rng.random() >= self.word_mask_prob:
                continue
            where = item.word_of == word
            masked[where] = True
            if rng.random() < self.replace_prob:
                if rng.random() < self.phoneme_mask_prob / self.replace_prob:
                    tokens[where] = rng.choice(phonemes, size=int(where.sum()))
                # else: left unchanged, still predicted
            else:
                tokens[where] = self.mask_id
        word_ids = np.asarray(self.vocab.ids(item.keys) + [SEPARATOR_ID], dtype=np.int64)
        words = word_ids[item.word_of]  # -1 (separator) picks the appended SEPARATOR_ID
        labels = item.ids
        if len(tokens) > self.max_length:
            start = int(rng.integers(0, len(tokens) - self.max_length + 1))
            window = slice(start, start + self.max_length)
            tokens, labels, words, masked = tokens[window], labels[window], words[window], masked[window]
        return MaskedItem(torch.from_numpy(tokens), torch.from_numpy(labels.copy()), torch.from_numpy(words),
                          torch.from_numpy(masked))
