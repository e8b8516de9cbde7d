"""Waveform distances used to state what an export or a reduced precision costs (numpy, 1-D or batched)."""
from __future__ import annotations

import numpy as np


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """10 log10(|reference|^2 / |reference - other|^2); -inf for different shapes, inf if equal."""
    if reference.shape != other.shape:
        return float("-inf")
    noise = float(np.sum((reference.astype(np.float64) - other) ** 2))
    return float("inf") if noise == 0 else float(10 * np.log10(float(np.sum(reference.astype(np.float64) ** 2)) / noise))


def log_mel_distance(reference: np.ndarray, other: np.ndarray, mel) -> float:
    """Mean absolute difference of natural-log mel spectrograms; `mel` is the runtime's LogMel (the
    model's own front-end), whose normalised output is scaled back to ln units."""
    if reference.shape != other.shape:
        return float("inf")
    return float(np.mean(np.abs(mel(reference) - mel(other)))) * mel.std
