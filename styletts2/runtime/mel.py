"""The normalised log-mel spectrogram of `styletts2.audio.mel`, in numpy (no torch).

Reference clips go through this before `style_encoder.onnx`, so it must give what the torch front-end
gives (and so what upstream's torchaudio front-end gave the pretrained style encoders):
- centred STFT: reflect padding of n_fft // 2 on both sides, periodic Hann window of `win_length`
  zero-padded to `n_fft` in the middle (as `torch.stft` does), power 2 taken as |X| squared;
- HTK-scale triangular filters without area normalisation, laid out for `filterbank_sample_rate`
  (16 kHz) although the audio is 24 kHz, built in float32 like torchaudio;
- `(log(log_offset + mel) - mean) / std`.
Window and filterbank are float32 as torch makes them; the FFT runs in float64 and the result is
rounded to float32. What is left is the torch front-end's own float32 FFT rounding: within 1e-5 on
speech-like audio (a noise floor in every bin). On a pure synthetic tone the near-empty mel bins are
dominated by that rounding and differ by up to ~5e-5, as torch float32 differs from torch float64.
"""
from __future__ import annotations

import numpy as np

from ..audio.mel_params import (FILTERBANK_SAMPLE_RATE, HOP_LENGTH, LOG_OFFSET, MEL_MEAN,  # noqa: F401
                                MEL_STD, N_FFT, N_MELS, WIN_LENGTH)


def _hz_to_mel(freq: float) -> float:
    return 2595.0 * float(np.log10(1.0 + freq / 700.0))


def _linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """`torch.linspace` in float32: the first half counts up from `start`, the second half down from
    `end` (numpy's linspace rounds differently, which moves mel edges by up to 1e-4)."""
    f32 = np.float32
    step = f32((end - start) / (steps - 1))
    i = np.arange(steps, dtype=f32)
    up = f32(start) + step * i
    down = f32(end) - step * (f32(steps - 1) - i)
    return np.where(np.arange(steps) < steps // 2, up, down).astype(f32)


def mel_filterbank(n_freqs: int = N_FFT // 2 + 1, n_mels: int = N_MELS,
                   sample_rate: int = FILTERBANK_SAMPLE_RATE, f_min: float = 0.0,
                   f_max: float | None = None) -> np.ndarray:
    """HTK mel filterbank [n_freqs, n_mels], float32, no normalisation, in torchaudio's float32
    arithmetic (10 ** x is taken in float64 and rounded, which is within one ulp of torch's)."""
    f_max = float(sample_rate // 2) if f_max is None else float(f_max)
    if not 0.0 <= f_min < f_max:
        raise ValueError(f"need 0 <= f_min < f_max, got f_min={f_min}, f_max={f_max}")
    f32 = np.float32
    bin_freqs = _linspace_f32(0.0, float(sample_rate // 2), n_freqs)
    mels = _linspace_f32(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2)
    powers = (10.0 ** (mels / f32(2595.0)).astype(np.float64)).astype(f32)
    edges = f32(700.0) * (powers - f32(1.0))
    widths = edges[1:] - edges[:-1]
    offsets = edges[None, :] - bin_freqs[:, None]  # [n_freqs, n_mels + 2]
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return np.maximum(f32(0.0), np.minimum(rising, falling)).astype(f32)


def n_mel_frames(n_samples: int, hop_length: int = HOP_LENGTH) -> int:
    """Frames produced for a clip of `n_samples` (centred framing)."""
    return n_samples // hop_length + 1


class LogMel:
    """Waveform [samples] or [B, samples] -> normalised log-mel [n_mels, frames] or [B, n_mels, frames].

    Arguments as model.json's "mel" entry (defaults reproduce upstream); `htk` must be True (the only
    mel scale the models were trained with).
    """

    def __init__(self, n_mels: int = N_MELS, n_fft: int = N_FFT, win_length: int = WIN_LENGTH,
                 hop_length: int = HOP_LENGTH, filterbank_sample_rate: int = FILTERBANK_SAMPLE_RATE,
                 f_min: float = 0.0, f_max: float | None = None, mean: float = MEL_MEAN,
                 std: float = MEL_STD, htk: bool = True, log_offset: float = LOG_OFFSET):
        if not htk:
            raise ValueError("only the HTK mel scale is implemented (mel.htk must be true)")
        if win_length > n_fft:
            raise ValueError(f"win_length {win_length} exceeds n_fft {n_fft}")
        self.n_fft, self.hop_length = n_fft, hop_length
        self.mean, self.std, self.log_offset = mean, std, log_offset
        # periodic Hann in float32 as torch.hann_window makes it (float32 angles), centred in an
        # n_fft frame as torch.stft pads a shorter window
        angles = np.arange(win_length, dtype=np.float32) * np.float32(2.0 * np.pi / win_length)
        hann = (np.float32(0.5) - np.float32(0.5) * np.cos(angles.astype(np.float64)).astype(np.float32))
        left = (n_fft - win_length) // 2
        self.window = np.zeros(n_fft)
        self.window[left:left + win_length] = hann
        self.mel_basis = mel_filterbank(n_fft // 2 + 1, n_mels, filterbank_sample_rate, f_min, f_max)

    def power_mel(self, wave: np.ndarray) -> np.ndarray:
        """Mel power spectrogram (before log and normalisation), same shapes as `__call__`."""
        wave = np.asarray(wave)
        if wave.ndim not in (1, 2):
            raise ValueError(f"expected a waveform [samples] or [batch, samples], got shape {wave.shape}")
        if not np.issubdtype(wave.dtype, np.floating):
            raise TypeError(f"expected a floating-point waveform, got {wave.dtype}")
        pad = self.n_fft // 2
        if wave.shape[-1] <= pad:
            raise ValueError(f"waveform of {wave.shape[-1]} samples is too short: reflect padding needs "
                             f"more than n_fft // 2 = {pad} samples")
        # float32 samples as the torch front-end sees them, then float64 arithmetic
        x = wave.astype(np.float32).astype(np.float64)
        widths = [(0, 0)] * (x.ndim - 1) + [(pad, pad)]
        x = np.pad(x, widths, mode="reflect")
        n_frames = (x.shape[-1] - self.n_fft) // self.hop_length + 1
        frames = np.lib.stride_tricks.sliding_window_view(x, self.n_fft, axis=-1)[..., ::self.hop_length, :]
        spectrum = np.fft.rfft(frames[..., :n_frames, :] * self.window, axis=-1)
        power = spectrum.real ** 2 + spectrum.imag ** 2  # [..., frames, freqs]
        return np.swapaxes(power @ self.mel_basis.astype(np.float64), -1, -2).astype(np.float32)

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        mel = self.power_mel(wave).astype(np.float64)
        return ((np.log(self.log_offset + mel) - self.mean) / self.std).astype(np.float32)
