"""Word boundaries: espeak-ng's own timings of a corpus, and the ones an alignment implies.

`make_corpus` writes `word_timings.json` beside the clips: for each clip id, its length in seconds
and, for every word, where espeak-ng started speaking it (its synthesis word events). The aligner
is judged by how far the word starts that its monotonic path gives are from those, in
milliseconds, against a uniform alignment of the same tokens as the baseline.

Tokens map to words through the phoneme string: a word is a maximal run of symbols that are
neither spaces nor punctuation, so the n-th phoneme word is the n-th word espeak-ng spoke. A clip
whose counts differ (espeak-ng may phonemize a word as two) is left out and counted.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from styletts2.audio.mel_params import HOP_LENGTH
from styletts2.text.symbols import PUNCTUATION, SYMBOL_TO_ID

TIMINGS_FILE = "word_timings.json"
# Seconds per alignment frame: 2 mel frames (the aligner halves the mel rate) at the models' 24 kHz.
ALIGN_SECONDS = 2 * HOP_LENGTH / 24000


def load_timings(corpus_dir: str | Path) -> dict[str, dict] | None:
    """{clip id: {'seconds': float, 'words': [[word, start], ...]}}, or None without a timings file."""
    path = Path(corpus_dir) / TIMINGS_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a word-timings file ({err}); remake the corpus") from err


def token_words(phonemes: str) -> list[int]:
    """Word index of each token of `[0] + encode(phonemes) + [0]` (-1 for pads, spaces and
    punctuation). Characters outside the symbol table are skipped, as the tokenizer skips them."""
    words, word, inside = [-1], -1, False
    for char in phonemes:
        if char not in SYMBOL_TO_ID:
            continue
        if char in PUNCTUATION:  # the space is in the punctuation block too
            inside = False
            words.append(-1)
            continue
        if not inside:
            word, inside = word + 1, True
        words.append(word)
    return words + [-1]


def path_word_starts(path: np.ndarray, words: list[int], offset_s: float, from_space: bool = False) -> np.ndarray:
    """Start (seconds) of each word under a hard alignment `path` [T_text, T_align] (0/1): the
    first frame of its first token, less `offset_s` (the silence the dataset added in front).
    from_space: the first frame of the space or punctuation token just before the word instead,
    where there is one (not the leading pad): a trained aligner gives that token the next word's
    onset, since espeak-ng does not pause between words (bench/README.md)."""
    first_frame = path.argmax(axis=1)
    n_words = max(words) + 1
    starts = np.full(n_words, np.nan)
    for token, word in enumerate(words):
        if word >= 0 and np.isnan(starts[word]):
            start_token = token - 1 if from_space and token > 1 and words[token - 1] < 0 else token
            starts[word] = first_frame[start_token] * ALIGN_SECONDS - offset_s
    return starts


def uniform_word_starts(words: list[int], speech_s: float) -> np.ndarray:
    """Word starts if every token took the same share of the clip's `speech_s` seconds."""
    n_words = max(words) + 1
    step = speech_s / len(words)
    return np.array([words.index(w) * step for w in range(n_words)])


@dataclass
class BoundaryErrors:
    """Absolute word-start errors (ms) of an alignment and of the uniform baseline, over clips, and
    the signed errors of the alignment's later words (every word but each clip's first, whose start
    moves with the leading silence it may absorb): their mean is a constant lag or lead, which
    a model trained on the alignment sees as text features shifted against the audio."""

    aligned: list[float]
    uniform: list[float]
    clips: int = 0
    skipped: int = 0  # clips whose phoneme words and espeak-ng words do not pair up
    later_signed: list[float] = field(default_factory=list)

    def add(self, starts: np.ndarray, uniform: np.ndarray, reference: list[float]) -> None:
        if len(starts) != len(reference):
            self.skipped += 1
            return
        error = (starts - np.asarray(reference)) * 1000
        self.aligned.extend(np.abs(error).tolist())
        self.uniform.extend((np.abs(uniform - np.asarray(reference)) * 1000).tolist())
        self.later_signed.extend(error[1:].tolist())
        self.clips += 1

    def summary(self) -> dict[str, float]:
        if not self.aligned:
            return {}
        scores = {"boundary_mae_ms": float(np.mean(self.aligned)), "uniform_mae_ms": float(np.mean(self.uniform))}
        if self.later_signed:  # > 0: the alignment places words late
            scores["boundary_lag_ms"] = float(np.mean(self.later_signed))
        return scores
