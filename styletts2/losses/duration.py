"""Alignment and duration losses.

Stage 1 (TMA, from ``TMA_epoch``): the aligner's sequence-to-sequence cross-entropy and the L1 gap
between its soft attention and the monotonic path found from it.
Stage 2: the duration predictor's ordinal targets (bin k of token i is 1 while k < duration_i) under
binary cross-entropy, and L1 between summed sigmoids and the durations.
"""
from __future__ import annotations

import gin
import torch
import torch.nn.functional as F
from torch import nn

from styletts2.host_values import on_host


@gin.configurable
class MonotonicAlignmentLoss(nn.Module):
    """``scale * mean|soft - hard|`` over the whole ``[B, T_text, T_mel]`` tensors (padding included,
    where both are zero). ``scale`` 10 is part of upstream's definition; ``weight`` is ``lambda_mono``."""

    def __init__(self, scale: float = 10.0, weight: float = 1.0):
        super().__init__()
        self.scale, self.weight = scale, weight

    def forward(self, soft_attention: torch.Tensor, hard_attention: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(soft_attention, hard_attention) * self.scale


@gin.configurable
class S2SCrossEntropyLoss(nn.Module):
    """Aligner token prediction: per utterance, cross-entropy over its valid tokens, then the batch
    mean of those. ``logits [B, T_text, n_token]``, ``tokens [B, T_text]``, ``lengths [B]``;
    ``weight`` is ``lambda_s2s``."""

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def forward(self, logits: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths.to(tokens.device)[:, None]
        per_token = F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")       # [B, T]
        per_utterance = torch.where(valid, per_token, 0.0).sum(dim=1) / valid.sum(dim=1)
        return per_utterance.mean()


def ordinal_targets(durations: torch.Tensor, n_bins: int) -> torch.Tensor:
    """``[..., T]`` integer durations -> ``[..., T, n_bins]`` float targets, 1 on bins ``k < duration``."""
    bins = torch.arange(n_bins, device=durations.device)
    return (bins < durations.long().unsqueeze(-1)).float()


@gin.configurable
class DurationLoss(nn.Module):
    """Duration predictor losses ``(ce, dur)``, each averaged over utterances:

    - ce: BCE-with-logits of ``logits [B, T_text, n_bins]`` against ``ordinal_targets(durations)``,
      averaged over the ``length * n_bins`` entries of each utterance's valid tokens;
    - dur: L1 between ``sigmoid(logits).sum(-1)`` and ``durations`` over tokens ``1 .. length-2`` (the
      padding tokens that open and close every training sequence are left out).

    ``durations [B, T_text]`` come from the hard alignment (``path.sum(-1)``); upstream truncates them
    to integers. Weights: ``ce_weight`` = ``lambda_ce`` (20), ``dur_weight`` = ``lambda_dur`` (1).
    """

    def __init__(self, ce_weight: float = 20.0, dur_weight: float = 1.0):
        super().__init__()
        self.ce_weight, self.dur_weight = ce_weight, dur_weight

    def forward(self, logits: torch.Tensor, durations: torch.Tensor,
                lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if min(on_host(lengths).tolist()) < 3:
            raise ValueError(f"DurationLoss needs every text length >= 3 (first and last tokens are "
                             f"excluded from the L1 term), got lengths {on_host(lengths).tolist()}")
        lengths = lengths.to(logits.device)
        durations = durations.long().to(logits.device)
        positions = torch.arange(logits.shape[1], device=logits.device)[None, :]
        valid = positions < lengths[:, None]                                             # [B, T]
        inner = (positions >= 1) & (positions < lengths[:, None] - 1)

        bce = F.binary_cross_entropy_with_logits(logits, ordinal_targets(durations, logits.shape[-1]),
                                                 reduction="none").sum(dim=-1)           # [B, T]
        ce = (torch.where(valid, bce, 0.0).sum(dim=1) / (valid.sum(dim=1) * logits.shape[-1])).mean()

        gap = (torch.sigmoid(logits).sum(dim=-1) - durations).abs()
        dur = (torch.where(inner, gap, 0.0).sum(dim=1) / inner.sum(dim=1)).mean()
        return ce, dur
