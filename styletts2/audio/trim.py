"""Leading and trailing silence trimming, numpy only: what `librosa.effects.trim` computes (frame
RMS with centred zero padding, in dB below the loudest frame), without librosa, so that the runtime
installs without it (the synthesizer trims reference clips with it, over every executor)."""
from __future__ import annotations

import numpy as np


def trim_silence(wave: np.ndarray, top_db: float = 60.0, frame_length: int = 2048,
                 hop_length: int = 512) -> tuple[np.ndarray, tuple[int, int]]:
    """Mono `wave` without its leading and trailing frames quieter than `top_db` below the loudest
    frame's RMS; returns (trimmed, (start, end)) with trimmed = wave[start:end]. A signal with no
    frame above the threshold trims to nothing."""
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"trim_silence takes mono samples [samples], got shape {wave.shape}")
    padded = np.pad(wave, frame_length // 2)
    if len(padded) < frame_length:
        return wave[:0], (0, 0)
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length]
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float32), axis=-1))
    power = np.square(rms)  # librosa's amplitude_to_db squares the RMS back
    amin = 1e-10
    db = 10.0 * np.log10(np.maximum(amin, power)) - 10.0 * np.log10(np.maximum(amin, power.max()))
    loud = np.flatnonzero(db > -top_db)
    if loud.size == 0:
        return wave[:0], (0, 0)
    start, end = int(loud[0]) * hop_length, min(len(wave), (int(loud[-1]) + 1) * hop_length)
    return wave[start:end], (start, end)
