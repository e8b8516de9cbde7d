"""Per-clip cache of what frozen networks compute from a clip alone: the text aligner's attention and
monotonic path, and the pitch extractor's F0. Off by default (gin `Stage1.cache_frozen_targets`,
`Stage2.cache_frozen_targets`): a speed-up for small budgets, not upstream's computation.

Both are computed once per clip, over the whole clip, by the network in eval mode:
- Alignment: the attention and monotonic path with no random `<unk>` masking and no dropout, the
  aligner's best guess. Upstream recomputes it every step, with dropout (stage 1, train mode) or
  random `<unk>` tokens (stage 2), so its alignment varies from step to step around this one.
- F0: cropped from the whole clip's. Upstream runs the pitch extractor on each training window (in
  train mode in stage 1: batch statistics); the values differ near the window's edges and by the
  batch-norm statistics used.
- Stage 2's acoustic style of each whole clip, before the joint phase: the style encoder is then in
  eval mode and not trained, so this is the value every step would compute, exactly.

On this 2-core CPU the aligner and pitch extractor take a third of a learning-benchmark stage-1
step (bench/README.md).

`lead_frames` moves each cached alignment that many alignment frames earlier (the first token loses
them, the last token repeats at the end). A small aligner's path starts every word after a clip's
first one late (the learning benchmark measured 36-83 ms, `boundary_lag_ms` in its validation):
the space token before the word takes the word's onset (counted from that space, one aligner's word
starts were 23 ms from espeak-ng's instead of 40, and 4 ms early instead of 36 late; bench/README.md).
Moving every alignment 2 frames did not improve the benchmark's held-out PER; the learning configs
leave it at 0.
"""
from __future__ import annotations

from typing import Callable, TypeVar

import torch
from torch import nn

from styletts2.audio.mel import log_norm
from styletts2.host_values import on_host

from .batch_ops import Crop, aligner_attention, monotonic_path, prosody_targets, utterance_styles

T = TypeVar("T")


class FrozenTargetCache:
    """Keyed by the clip's path (`Batch.paths`); tensors stay on the device they were made on."""

    def __init__(self, lead_frames: int = 0):
        if lead_frames < 0:
            raise ValueError(f"lead_frames must be 0 or more alignment frames, got {lead_frames}")
        self.lead_frames = lead_frames
        self._alignments: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._f0: dict[str, torch.Tensor] = {}
        self._styles: dict[str, torch.Tensor] = {}

    def alignment(self, aligner: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(attention, path), each [B, T_text, T_align] padded as `aligner_attention` pads them."""
        if any(p not in self._alignments for p in batch.paths):
            with torch.no_grad():
                _, attention, align_lengths = _in_eval_mode(aligner, lambda: aligner_attention(
                    aligner, batch.mels, batch.mel_lengths, batch.tokens, batch.token_lengths, mask_unk=False))
                path = monotonic_path(attention, batch.token_lengths, align_lengths)
            for i, key in enumerate(batch.paths):
                t, a = int(batch.token_lengths[i]), int(align_lengths[i])
                self._alignments[key] = (lead(attention[i, :t, :a], self.lead_frames),
                                         lead(path[i, :t, :a], self.lead_frames))
            if self.lead_frames == 0:
                return attention, path
        shape = (len(batch.paths), batch.tokens.shape[1], batch.mels.shape[-1] // 2)
        return (self._padded(shape, [self._alignments[p][0] for p in batch.paths]),
                self._padded(shape, [self._alignments[p][1] for p in batch.paths]))

    def prosody(self, pitch_extractor: nn.Module, batch, crop: Crop, gt: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(F0, log energy) of the window `gt` = crop.mels(batch.mels), as `prosody_targets` returns
        them, with F0 cut from the whole clip's."""
        for i, key in enumerate(batch.paths):
            if key not in self._f0:
                mel = batch.mels[i:i + 1, :, :int(batch.mel_lengths[i])]
                self._f0[key] = _in_eval_mode(pitch_extractor, lambda: prosody_targets(pitch_extractor, mel)[0][0])
        frames = batch.mels.shape[-1]
        f0 = torch.stack([nn.functional.pad(self._f0[p], (0, frames - self._f0[p].shape[-1])) for p in batch.paths])
        return crop.mels(f0.unsqueeze(1)).squeeze(1), log_norm(gt.unsqueeze(1)).squeeze(1)

    def styles(self, encoder: nn.Module, batch) -> torch.Tensor:
        """[B, style_dim]: each whole clip's style by a frozen `encoder`, as `utterance_styles` gives it."""
        if any(p not in self._styles for p in batch.paths):
            with torch.no_grad():
                for key, style in zip(batch.paths, utterance_styles(encoder, batch.mels, batch.mel_lengths)):
                    self._styles[key] = style
        return torch.stack([self._styles[p] for p in batch.paths])

    @staticmethod
    def _padded(shape: tuple[int, int, int], items: list[torch.Tensor]) -> torch.Tensor:
        out = items[0].new_zeros(shape)
        for i, x in enumerate(items):
            out[i, :x.shape[0], :x.shape[1]] = x
        return out


def make_cache(enabled: bool, lead_frames: int) -> FrozenTargetCache | None:
    """The stages' `cache_frozen_targets` and `alignment_lead_frames` settings: the lead is applied to
    cached alignments only, so asking for it without the cache is an error, not a silent no-op."""
    if lead_frames < 0:
        raise ValueError(f"alignment_lead_frames must be 0 or more alignment frames, got {lead_frames}")
    if lead_frames and not enabled:
        raise ValueError(f"alignment_lead_frames = {lead_frames} moves the cached alignments: it needs "
                         "cache_frozen_targets = True")
    return FrozenTargetCache(lead_frames) if enabled else None


def lead(alignment: torch.Tensor, frames: int) -> torch.Tensor:
    """[T_text, T_align] moved `frames` columns earlier: the first columns drop out and the last one
    repeats, so the length (and a hard path's total duration) stays. A copy; unchanged when the clip
    has no more than `frames` columns."""
    if frames == 0 or alignment.shape[-1] <= frames:
        return alignment.clone()
    return torch.cat([alignment[:, frames:], alignment[:, -1:].expand(-1, frames)], dim=-1)


def lead_padded(alignment: torch.Tensor, align_lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """`lead` on each item of a padded batch [B, T_text, T_align] of `align_lengths` frames: the
    validation's alignments, computed afresh, moved as the cached training ones are."""
    if frames == 0:
        return alignment
    out = alignment.clone()
    for i, length in enumerate(on_host(align_lengths).tolist()):
        out[i, :, :length] = lead(alignment[i, :, :length], frames)
    return out


def _in_eval_mode(module: nn.Module, fn: Callable[[], T]) -> T:
    was_training = module.training
    module.eval()
    try:
        return fn()
    finally:
        module.train(was_training)
