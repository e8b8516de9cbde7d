"""Mel reconstruction loss: spectral convergence on normalised log-mels at several resolutions.

Upstream computes the mels with ``torchaudio.transforms.MelSpectrogram(sample_rate=24000, n_fft,
win_length, hop_length, window_fn=hann)`` and its defaults (128 HTK mel bins from 0 Hz to sr/2, no
filter normalisation, power 2, centred reflect-padded frames). torchaudio is not a dependency here,
so ``LossMelSpectrogram`` rebuilds that transform from ``torch.stft`` and ``mel_filterbank``, which
follows torchaudio's float32 arithmetic step by step.
"""
from __future__ import annotations

import math
from typing import Sequence

import gin
import torch
from torch import nn

# Upstream's log-mel normalisation: (log(1e-5 + mel) - mean) / std.
LOG_MEL_MEAN = -4.0
LOG_MEL_STD = 4.0


def _hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """HTK-scale triangular filters without area normalisation, ``[n_freqs, n_mels]`` float32
    (the matrix torchaudio's ``melscale_fbanks(..., norm=None, mel_scale='htk')`` returns)."""
    f_max = float(sample_rate // 2) if f_max is None else f_max
    bin_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    mel_points = torch.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2)
    edges = 700.0 * (10.0 ** (mel_points / 2595.0) - 1.0)            # filter corners in Hz
    widths = edges[1:] - edges[:-1]
    distance = edges.unsqueeze(0) - bin_freqs.unsqueeze(1)             # [n_freqs, n_mels + 2]
    rising = -distance[:, :-2] / widths[:-1]
    falling = distance[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class LossMelSpectrogram(nn.Module):
    """Power mel spectrogram ``[..., T] -> [..., n_mels, frames]`` with a periodic Hann window of
    ``win_length`` centred in ``n_fft``, centred frames and reflect padding."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int, sample_rate: int = 24000,
                 n_mels: int = 128):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        self.register_buffer("filterbank", mel_filterbank(n_fft // 2 + 1, n_mels, sample_rate), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        frames = torch.stft(wave.reshape(-1, wave.shape[-1]), self.n_fft, hop_length=self.hop_length,
                            win_length=self.win_length, window=self.window, center=True,
                            pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
        power = frames.abs().pow(2.0)                                      # [N, freqs, frames]
        mel = torch.matmul(power.transpose(-1, -2), self.filterbank).transpose(-1, -2)
        return mel.reshape(wave.shape[:-1] + mel.shape[-2:])


def spectral_convergence(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||target - predicted||_1 / ||target||_1`` over the whole batch (upstream names it
    SpectralConvergengeLoss, although it is an L1 ratio)."""
    return torch.norm(target - predicted, p=1) / torch.norm(target, p=1)


def normalized_log_mel(mel: torch.Tensor) -> torch.Tensor:
    return (torch.log(1e-5 + mel) - LOG_MEL_MEAN) / LOG_MEL_STD


class MelSpectralConvergenceLoss(nn.Module):
    """Spectral convergence between the normalised log-mels of two waveforms at one resolution
    (upstream's ``STFTLoss``)."""

    def __init__(self, n_fft: int = 1024, hop_length: int = 120, win_length: int = 600,
                 sample_rate: int = 24000, n_mels: int = 128):
        super().__init__()
        self.to_mel = LossMelSpectrogram(n_fft, hop_length, win_length, sample_rate, n_mels)

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return spectral_convergence(normalized_log_mel(self.to_mel(predicted)),
                                    normalized_log_mel(self.to_mel(target)))


@gin.configurable
class MultiResolutionSTFTLoss(nn.Module):
    """The mel reconstruction loss: ``MelSpectralConvergenceLoss`` averaged over resolutions.

    ``forward(predicted, target)`` takes waveforms ``[B, T]`` or ``[B, 1, T]`` (same shape) and
    returns the unweighted scalar. ``weight`` is upstream's ``lambda_mel`` (5); note that stage 1
    uses the loss unweighted before ``TMA_epoch``.
    """

    def __init__(self, fft_sizes: Sequence[int] = (1024, 2048, 512),
                 hop_sizes: Sequence[int] = (120, 240, 50),
                 win_lengths: Sequence[int] = (600, 1200, 240),
                 sample_rate: int = 24000, n_mels: int = 128, weight: float = 5.0):
        super().__init__()
        if not len(fft_sizes) == len(hop_sizes) == len(win_lengths):
            raise ValueError(f"fft_sizes, hop_sizes and win_lengths differ in length: "
                             f"{len(fft_sizes)}, {len(hop_sizes)}, {len(win_lengths)}")
        self.weight = weight
        self.stft_losses = nn.ModuleList(
            MelSpectralConvergenceLoss(n_fft, hop, win, sample_rate, n_mels)
            for n_fft, hop, win in zip(fft_sizes, hop_sizes, win_lengths))

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # [B, T] and [B, 1, T] mean the same batch; anything else must not broadcast silently.
        flat_predicted = predicted.reshape(-1, predicted.shape[-1])
        flat_target = target.reshape(-1, target.shape[-1])
        if flat_predicted.shape != flat_target.shape:
            raise ValueError(f"waveform batches differ: predicted {tuple(predicted.shape)}, "
                             f"target {tuple(target.shape)}")
        predicted, target = flat_predicted, flat_target
        return sum(loss(predicted, target) for loss in self.stft_losses) / len(self.stft_losses)
