"""Intelligibility: phoneme error rate (PER) from an offline phoneme recogniser.

The recogniser is `hama`'s waveform phoneme ASR (a CTC model whose weights ship inside the `hama`
wheel, run by its own bundled engine: no network, no onnxruntime). It takes 16 kHz mono audio;
clips are resampled here with soxr first (hama's own fallback resampler is linear interpolation).

PER = Levenshtein distance (substitutions + insertions + deletions, all cost 1) between the
recognised phonemes and the reference phonemes, divided by the reference length. It can exceed 1
when the recogniser inserts many phonemes; an empty hypothesis scores exactly 1.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..audio.io import resample
from .phonemes import fold

RECOGNISER_RATE = 16000


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance between two sequences (unit costs), in O(len(hypothesis)) memory."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, start=1):
        current = [i]
        for j, hyp in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1,                  # deletion
                               current[j - 1] + 1,               # insertion
                               previous[j - 1] + (ref != hyp)))  # substitution or match
        previous = current
    return previous[-1]


def phoneme_error_rate(reference: Sequence[str], hypothesis: Sequence[str]) -> float:
    """edit_distance / len(reference). Raises ValueError for an empty reference (undefined)."""
    if len(reference) == 0:
        raise ValueError("phoneme error rate is undefined for an empty reference")
    return edit_distance(reference, hypothesis) / len(reference)


class PhonemeRecogniser:
    """`hama.ASRModel` behind a small interface; the model is loaded on first use."""

    def __init__(self):
        self._model = None

    @property
    def model(self):
        if self._model is None:
            try:
                import hama
            except ImportError as err:
                raise RuntimeError("the phoneme error rate needs the `hama` package (pip install hama==1.7.0)") from err
            self._model = hama.ASRModel()
        return self._model

    def transcribe(self, wave: np.ndarray, sample_rate: int) -> list[str]:
        """Recognised phonemes of a mono clip, folded (see `phonemes.fold`), word boundaries dropped."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"expected a mono waveform [samples], got shape {wave.shape}")
        if wave.size == 0:
            return []
        wave = resample(wave, sample_rate, RECOGNISER_RATE).astype(np.float32, copy=False)
        return fold(self.model.transcribe_waveform(wave, RECOGNISER_RATE).phonemes)
