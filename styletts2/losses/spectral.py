"""Mel reconstruction loss: spectral convergence on normalised log-mels at several resolutions.

Upstream computes the mels with ``torchaudio.transforms.MelSpectrogram(sample_rate=24000, n_fft,
win_length, hop_length, window_fn=hann)`` and its defaults (128 HTK mel bins from 0 Hz to sr/2, no
filter normalisation, power 2, centred reflect-padded frames), then ``(log(1e-5 + mel) + 4) / 4``:
the project's ``LogMelSpectrogram`` front-end with those settings (the filters laid out for the
true 24 kHz rate here, unlike the 80-bin network input).
"""
from __future__ import annotations

from typing import Sequence

import gin
import torch
from torch import nn

from styletts2.audio.mel import MEL_MEAN, MEL_STD, LogMelSpectrogram


def spectral_convergence(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||target - predicted||_1 / ||target||_1`` over the whole batch (upstream names it
    SpectralConvergengeLoss, although it is an L1 ratio)."""
    return torch.norm(target - predicted, p=1) / torch.norm(target, p=1)


class MelSpectralConvergenceLoss(nn.Module):
    """Spectral convergence between the normalised log-mels of two ``[N, T]`` waveform batches at one
    resolution (upstream's ``STFTLoss``)."""

    def __init__(self, n_fft: int = 1024, hop_length: int = 120, win_length: int = 600,
                 sample_rate: int = 24000, n_mels: int = 128):
        super().__init__()
        # Every front-end setting is passed, so gin bindings meant for the network input do not leak in.
        self.to_mel = LogMelSpectrogram(n_mels=n_mels, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
                                        filterbank_sample_rate=sample_rate, f_min=0.0, f_max=None,
                                        mean=MEL_MEAN, std=MEL_STD)

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return spectral_convergence(self.to_mel(predicted), self.to_mel(target))


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
