"""Stage-2 prosody and style losses: F0 and energy reconstruction by the prosody predictor, and the
L1 between styles sampled by the diffusion model and the encoders' styles.

(The diffusion model's own EDM loss is its forward's output; the trainer takes its ``.mean()`` with
weight ``lambda_diff`` = 1. The energy target N comes from ``styletts2.audio.mel.log_norm``.)
"""
from __future__ import annotations

import gin
import torch
import torch.nn.functional as F
from torch import nn


@gin.configurable
class F0ReconstructionLoss(nn.Module):
    """``smooth_l1(F0_real, F0_fake) / divisor`` on F0 in Hz (the ``/ 10`` is part of upstream's
    definition); ``weight`` is ``lambda_F0`` (1)."""

    def __init__(self, divisor: float = 10.0, weight: float = 1.0):
        super().__init__()
        self.divisor, self.weight = divisor, weight

    def forward(self, f0_real: torch.Tensor, f0_fake: torch.Tensor) -> torch.Tensor:
        return F.smooth_l1_loss(f0_real, f0_fake) / self.divisor


@gin.configurable
class NormReconstructionLoss(nn.Module):
    """``smooth_l1(N_real, N_fake)`` on log energies; ``weight`` is ``lambda_norm`` (1)."""

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def forward(self, norm_real: torch.Tensor, norm_fake: torch.Tensor) -> torch.Tensor:
        return F.smooth_l1_loss(norm_real, norm_fake)


@gin.configurable
class StyleReconstructionLoss(nn.Module):
    """``mean|s_pred - s_target|`` with the target detached; ``weight`` is ``lambda_sty`` (1)."""

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def forward(self, predicted_style: torch.Tensor, target_style: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(predicted_style, target_style.detach())
