"""Batching: pad dataset samples into a `Batch`, and choose the training crop windows.

The collater pads; it never crops. Cropping happens in the training step, after the aligner has
seen the whole utterance, in alignment frames (2 mel frames = 600 samples each).
`crop_windows` picks those windows: upstream crops every sample of a batch to one length set by
the shortest clip (`to_shortest=True`); with length-bucketed batches (see `sampler.py`) each
sample can instead keep its own length (`to_shortest=False`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import gin
import torch

from styletts2.data.dataset import Sample
from styletts2.host_values import host_side, on_host, with_host_copy


@dataclass
class Batch:
    """A padded batch, sorted by mel length, longest first (as upstream's Collater does).

    tokens (B, T_text) long, 0-padded; token_lengths (B,)
    mels (B, n_mels, T_mel), 0-padded; mel_lengths (B,)
    waves: list of B 1-D float tensors (the edge-padded waveforms, unpadded to each other)
    speakers (B,) long
    ref_mels (B, n_mels, ref_frames): same-speaker reference crops, 0-padded to `ref_frames`
    ood_tokens (B, T_ood) long and ood_lengths (B,), or None without OOD texts
    paths: source wav paths
    """

    tokens: torch.Tensor
    token_lengths: torch.Tensor
    mels: torch.Tensor
    mel_lengths: torch.Tensor
    waves: list[torch.Tensor]
    speakers: torch.Tensor
    ref_mels: torch.Tensor
    ood_tokens: torch.Tensor | None
    ood_lengths: torch.Tensor | None
    paths: list[str]

    def _map(self, fn) -> "Batch":
        """A Batch with `fn` applied to every tensor (lists of tensors included)."""
        def apply(value):
            if isinstance(value, torch.Tensor):
                return fn(value)
            if isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
                return [fn(v) for v in value]
            return value

        return Batch(**{f.name: apply(getattr(self, f.name)) for f in fields(self)})

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """The batch on `device`; the lengths keep their host copies (`host_values.on_host`), so
        that reading them does not wait for the device."""
        moved = self._map(lambda t: t.to(device, non_blocking=non_blocking))
        for name in ("token_lengths", "mel_lengths", "ood_lengths"):
            lengths = getattr(self, name)
            if lengths is not None:
                with_host_copy(getattr(moved, name), lengths if lengths.is_cpu else on_host(lengths))
        return moved

    def pin_memory(self) -> "Batch":
        """Page-locked copies. `DataLoader(pin_memory=True)` calls this (without it the batch stays
        pageable), so `.to(cuda, non_blocking=True)` really copies asynchronously."""
        return self._map(lambda t: t.pin_memory())

    def __len__(self) -> int:
        return len(self.paths)


def _pad_1d(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.zeros(len(seqs), int(lengths.max()), dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out, lengths


def _pad_frames(mels: list[torch.Tensor], frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([m.shape[-1] for m in mels], dtype=torch.long)
    width = int(lengths.max()) if frames is None else frames
    out = torch.zeros(len(mels), mels[0].shape[0], width, dtype=mels[0].dtype)
    for i, m in enumerate(mels):
        out[i, :, : min(width, m.shape[-1])] = m[:, :width]
    return out, lengths


@gin.configurable
class Collater:
    """collate_fn for the DataLoader.

    ref_frames: width of the reference-mel tensor. Upstream pads every reference crop to its crop
        length (192), shorter ones with zeros, so the style encoder always sees 192 frames.
    """

    def __init__(self, ref_frames: int = 192):
        self.ref_frames = ref_frames

    def __call__(self, samples: list[Sample]) -> Batch:
        samples = sorted(samples, key=lambda s: s.mel.shape[-1], reverse=True)
        tokens, token_lengths = _pad_1d([s.tokens for s in samples])
        mels, mel_lengths = _pad_frames([s.mel for s in samples])
        ref_mels, _ = _pad_frames([s.ref_mel for s in samples], self.ref_frames)
        ood_tokens = ood_lengths = None
        if samples[0].ood_tokens is not None:
            ood_tokens, ood_lengths = _pad_1d([s.ood_tokens for s in samples])
        return Batch(
            tokens=tokens,
            token_lengths=token_lengths,
            mels=mels,
            mel_lengths=mel_lengths,
            waves=[s.wave for s in samples],
            speakers=torch.tensor([s.speaker for s in samples], dtype=torch.long),
            ref_mels=ref_mels,
            ood_tokens=ood_tokens,
            ood_lengths=ood_lengths,
            paths=[s.path for s in samples],
        )


def crop_windows(
    mel_lengths: torch.Tensor,
    max_mel_frames: int,
    to_shortest: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random training windows, in alignment frames (1 alignment frame = 2 mel frames).

    Returns (starts, lengths), each (B,) long. A window of sample i covers alignment frames
    [starts[i], starts[i] + lengths[i]), i.e. mel frames [2 * start, 2 * (start + length)).
    to_shortest=True (upstream): one length for the whole batch,
        min(shortest mel length / 2 - 1, max_mel_frames // 2).
    to_shortest=False: each sample's own min(mel length / 2 - 1, max_mel_frames // 2).
    Computed on the host (the lengths' host copies, a CPU generator): no device sync.
    """
    frames = on_host(mel_lengths).tolist()
    aligned = [n // 2 for n in frames]  # alignment frames available per sample
    if to_shortest:
        lengths = [min(min(aligned) - 1, max_mel_frames // 2)] * len(aligned)
    else:
        lengths = [min(n - 1, max_mel_frames // 2) for n in aligned]
    if min(lengths) < 1:
        raise ValueError(f"mel lengths {frames} are too short to crop")
    # start uniform in [0, aligned - length), as upstream's np.random.randint(0, mel_length - mel_len)
    span = torch.tensor([n - size for n, size in zip(aligned, lengths)], dtype=torch.float64)
    starts = (torch.rand(len(span), generator=generator, dtype=torch.float64) * span).long()
    return host_side(starts), host_side(torch.tensor(lengths))
