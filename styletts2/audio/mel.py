"""The normalised log-mel spectrogram every StyleTTS2 network sees, exactly as upstream computes it.

Upstream uses torchaudio's `MelSpectrogram(n_mels=80, n_fft=2048, win_length=1200, hop_length=300)`
with everything else at torchaudio's defaults, then `(log(1e-5 + mel) + 4) / 4`:
- power-2 magnitude of `torch.stft` (periodic Hann window of 1200 samples, zero-padded to 2048 in
  the middle; center=True with reflect padding, so a clip of n samples has n // 300 + 1 frames);
- 80 triangular HTK-scale mel filters without area normalisation, laid out for torchaudio's default
  sample rate of 16 kHz (0 to 8 kHz over the 1025 FFT bins) although the audio is 24 kHz: no
  sample rate is passed upstream, so the filters actually cover 0 to 12 kHz of the 24 kHz audio.
  Pretrained style encoders depend on this, so it is kept.
The filterbank is built with torchaudio's float32 arithmetic (the same definition as
`librosa.filters.mel(htk=True, norm=None)`, which computes in float64 and so differs by rounding).
torchaudio itself is not used: it does not load beside this torch.
"""
import functools
import math

import gin
import torch
from torch import nn

from .mel_params import (FILTERBANK_SAMPLE_RATE, HOP_LENGTH, LOG_OFFSET, MEL_MEAN, MEL_STD,  # noqa: F401
                         N_FFT, N_MELS, WIN_LENGTH)


def _hz_to_mel(freq: float) -> float:
    return 2595.0 * math.log10(1.0 + freq / 700.0)


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_freqs: int = N_FFT // 2 + 1,
    n_mels: int = N_MELS,
    sample_rate: int = FILTERBANK_SAMPLE_RATE,
    f_min: float = 0.0,
    f_max: float | None = None,
) -> torch.Tensor:
    """HTK mel filterbank [n_freqs, n_mels] (no normalisation), float32, torchaudio's arithmetic.

    FFT bins sit at linspace(0, sample_rate // 2, n_freqs); filter edges at n_mels + 2 points
    evenly spaced in mel between f_min and f_max (default sample_rate // 2); each filter rises
    linearly from its lower edge to its centre and falls to its upper edge.
    """
    f_max = float(sample_rate // 2) if f_max is None else f_max
    if not 0.0 <= f_min < f_max:
        raise ValueError(f"need 0 <= f_min < f_max, got f_min={f_min}, f_max={f_max}")
    bin_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    edges = _mel_to_hz(torch.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    widths = edges[1:] - edges[:-1]
    offsets = edges.unsqueeze(0) - bin_freqs.unsqueeze(1)  # [n_freqs, n_mels + 2]
    rising = (-1.0 * offsets[:, :-2]) / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return torch.max(torch.zeros(1), torch.min(rising, falling))


def n_mel_frames(n_samples: int, hop_length: int = HOP_LENGTH) -> int:
    """Frames produced for a clip of `n_samples` (center=True framing)."""
    return n_samples // hop_length + 1


@gin.configurable
class LogMelSpectrogram(nn.Module):
    """Waveform [B, samples] or [samples] -> normalised log-mel [B, n_mels, frames] or [n_mels, frames].

    Defaults reproduce upstream. Window and filterbank are non-persistent buffers: they follow the
    module across devices but stay out of state dicts (upstream's checkpoints have no such keys).
    Upstream's `preprocess(wave)` returns this with a leading batch dimension of 1.
    """

    def __init__(
        self,
        n_mels: int = N_MELS,
        n_fft: int = N_FFT,
        win_length: int = WIN_LENGTH,
        hop_length: int = HOP_LENGTH,
        filterbank_sample_rate: int = FILTERBANK_SAMPLE_RATE,
        f_min: float = 0.0,
        f_max: float | None = None,
        mean: float = MEL_MEAN,
        std: float = MEL_STD,
    ):
        super().__init__()
        if win_length > n_fft:
            raise ValueError(f"win_length {win_length} exceeds n_fft {n_fft}")
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.mean, self.std = mean, std
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        self.register_buffer(
            "mel_basis",
            mel_filterbank(n_fft // 2 + 1, n_mels, filterbank_sample_rate, f_min, f_max),
            persistent=False,
        )

    def power_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram (before log and normalisation), same shapes as `forward`."""
        if wave.dim() not in (1, 2):
            raise ValueError(f"expected a waveform [samples] or [batch, samples], got shape {tuple(wave.shape)}")
        if not wave.is_floating_point():
            raise TypeError(f"expected a floating-point waveform, got {wave.dtype}")
        if wave.shape[-1] <= self.n_fft // 2:
            raise ValueError(
                f"waveform of {wave.shape[-1]} samples is too short: reflect padding needs more than "
                f"n_fft // 2 = {self.n_fft // 2} samples"
            )
        spec = torch.stft(
            wave.float(),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        power = spec.abs().pow(2.0)  # as torchaudio: |X| then squared (not X * conj(X))
        return torch.matmul(power.transpose(-1, -2), self.mel_basis).transpose(-1, -2)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return (torch.log(LOG_OFFSET + self.power_mel(wave)) - self.mean) / self.std


@functools.cache
def _default_front_end(device: torch.device) -> LogMelSpectrogram:
    return LogMelSpectrogram().to(device)


def log_mel_spectrogram(wave: torch.Tensor) -> torch.Tensor:
    """Upstream's normalised log-mel of `wave` ([samples] or [B, samples], on any device)."""
    return _default_front_end(wave.device)(wave)


def log_norm(x: torch.Tensor, mean: float = MEL_MEAN, std: float = MEL_STD, dim: int = -2) -> torch.Tensor:
    """Log energy from a normalised log-mel: log of the L2 norm over the mel axis of the linear
    mel, `log(||exp(x * std + mean)||_2)`. `dim` is the mel axis (-2 for [..., n_mels, frames])."""
    return torch.log(torch.exp(x * std + mean).norm(dim=dim))
