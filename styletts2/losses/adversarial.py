"""Waveform GAN losses for the multi-period (MPD) and multi-resolution spectrogram (MSD)
discriminators: least-squares GAN terms, feature matching and the truncated pointwise relativistic
term (TPRLS, https://dl.acm.org/doi/abs/10.1145/3573834.3574506), as upstream's losses.py.

Discriminators are called as ``disc(real, fake) -> (real_scores, fake_scores, real_fmaps, fake_fmaps)``,
each a list with one entry per sub-discriminator (fmaps: a list of layer outputs per entry).
"""
from __future__ import annotations

from typing import Sequence

import gin
import torch
from torch import nn

Scores = Sequence[torch.Tensor]
FeatureMaps = Sequence[Sequence[torch.Tensor]]


def feature_matching_loss(real_fmaps: FeatureMaps, fake_fmaps: FeatureMaps, scale: float = 2.0) -> torch.Tensor:
    """``scale * sum`` over sub-discriminators and layers of the mean absolute feature difference."""
    total = 0
    for real_layers, fake_layers in zip(real_fmaps, fake_fmaps):
        for real, fake in zip(real_layers, fake_layers):
            total = total + torch.mean(torch.abs(real - fake))
    return total * scale


def lsgan_discriminator_loss(real_scores: Scores, fake_scores: Scores) -> torch.Tensor:
    """``sum_k mean((1 - D_k(real))^2) + mean(D_k(fake)^2)``."""
    total = 0
    for real, fake in zip(real_scores, fake_scores):
        total = total + torch.mean((1 - real) ** 2) + torch.mean(fake ** 2)
    return total


def lsgan_generator_loss(fake_scores: Scores) -> torch.Tensor:
    """``sum_k mean((1 - D_k(fake))^2)``."""
    total = 0
    for fake in fake_scores:
        total = total + torch.mean((1 - fake) ** 2)
    return total


def _truncated_relativistic(first: torch.Tensor, second: torch.Tensor, tau: float) -> torch.Tensor:
    # Squared deviation of (first - second) from its median, over the points where it lies below
    # the median, capped at tau. torch.median takes the lower middle value, as upstream.
    # Written without reading a value on the host (no `if`, no boolean indexing: a GPU step runs on).
    gap = first - second
    median = torch.median(gap)
    below = (first < second + median).to(gap.dtype)
    count = below.sum()
    deviation = ((gap - median) ** 2 * below).sum() / count.clamp(min=1)  # 0 where upstream's mean is NaN
    return torch.clamp(deviation, max=tau)


def tprls_discriminator_loss(real_scores: Scores, fake_scores: Scores, tau: float = 0.04) -> torch.Tensor:
    """TPRLS term of the discriminator step: real scores should exceed fake ones by a margin."""
    total = 0
    for real, fake in zip(real_scores, fake_scores):
        total = total + _truncated_relativistic(real, fake, tau)
    return total


def tprls_generator_loss(real_scores: Scores, fake_scores: Scores, tau: float = 0.04) -> torch.Tensor:
    """TPRLS term of the generator step: the discriminator term with real and fake swapped."""
    total = 0
    for real, fake in zip(real_scores, fake_scores):
        total = total + _truncated_relativistic(fake, real, tau)
    return total


@gin.configurable
class GeneratorLoss(nn.Module):
    """Generator side against MPD + MSD: LSGAN + feature matching (x2) + TPRLS, summed over both
    discriminators. ``forward(real, fake)`` takes waveforms ``[B, 1, T]``; ``weight`` is upstream's
    ``lambda_gen`` (1)."""

    def __init__(self, mpd: nn.Module, msd: nn.Module, feature_matching_scale: float = 2.0,
                 tau: float = 0.04, weight: float = 1.0):
        super().__init__()
        self.mpd, self.msd = mpd, msd
        self.feature_matching_scale, self.tau, self.weight = feature_matching_scale, tau, weight

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        total = 0
        for discriminator in (self.mpd, self.msd):
            real_scores, fake_scores, real_fmaps, fake_fmaps = discriminator(real, fake)
            total = (total + lsgan_generator_loss(fake_scores)
                     + feature_matching_loss(real_fmaps, fake_fmaps, self.feature_matching_scale)
                     + tprls_generator_loss(real_scores, fake_scores, self.tau))
        return total.mean()


@gin.configurable
class DiscriminatorLoss(nn.Module):
    """Discriminator side for MPD + MSD: LSGAN + TPRLS. ``forward(real, fake)`` takes waveforms
    ``[B, 1, T]``; pass ``fake.detach()`` as upstream does."""

    def __init__(self, mpd: nn.Module, msd: nn.Module, tau: float = 0.04):
        super().__init__()
        self.mpd, self.msd = mpd, msd
        self.tau = tau

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        total = 0
        for discriminator in (self.mpd, self.msd):
            real_scores, fake_scores, _, _ = discriminator(real, fake)
            total = (total + lsgan_discriminator_loss(real_scores, fake_scores)
                     + tprls_discriminator_loss(real_scores, fake_scores, self.tau))
        return total.mean()
