"""The pitch extractor's data: a mel and its F0 labels per clip, and their batches.

An item is the speech dataset's mel (the same edge-padded 24 kHz wave, trimmed to an even frame
count) with the cached F0 label of every frame (`f0_labels.py`). For training, as in
yl4579/PitchExtractor, the wave is first scaled by a random gain in [0.5, 1) and a clip longer
than `crop_frames` is cut to a random window of that many frames; validation items are whole clips.
The random draws come from a generator seeded by (seed, epoch, index), so an item does not depend
on the worker that loads it or on the order (exact resume).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from styletts2.data.dataset import SpeechDataset
from styletts2.data.f0_labels import load_label
from styletts2.data.readers import Record


@dataclass
class PitchSample:
    mel: torch.Tensor  # (n_mels, T)
    f0: torch.Tensor  # (T,) Hz, 0 = unvoiced
    path: str


@dataclass
class PitchBatch:
    """mels (B, n_mels, T) and f0 (B, T), zero-padded; lengths (B,) the real frames of each item."""

    mels: torch.Tensor
    f0: torch.Tensor
    lengths: torch.Tensor
    paths: list[str]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "PitchBatch":
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=non_blocking)

        return PitchBatch(move(self.mels), move(self.f0), move(self.lengths), self.paths)

    def frame_mask(self) -> torch.Tensor:
        """(B, T) True on real frames, False on padding."""
        return torch.arange(self.f0.shape[1], device=self.f0.device)[None] < self.lengths[:, None]

    def __len__(self) -> int:
        return len(self.paths)


class PitchDataset(Dataset):
    """Map-style dataset of (mel, F0 labels).

    speech: the scanned speech dataset whose wave and mel front-end the items reuse.
    records, labels: the clips to serve and their cache entries (`f0_labels.prepare_labels`).
    crop_frames: training window in mel frames (None: whole clips).
    gain_range: (low, high) random gain of the wave before the mel (None: no augmentation).
    """

    def __init__(self, speech: SpeechDataset, records: Sequence[Record], labels: Sequence[str | Path],
                 crop_frames: int | None = None, gain_range: tuple[float, float] | None = None, seed: int = 0):
        if len(records) != len(labels):
            raise ValueError("one label per record")
        if not records:
            raise ValueError("the pitch dataset needs at least one clip")
        self.speech = speech
        self.records = list(records)
        self.labels = [Path(p) for p in labels]
        self.crop_frames = crop_frames
        self.gain_range = tuple(gain_range) if gain_range is not None else None
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> PitchSample:
        # the acoustic stages' wave (resampled, edge-padded); an unreadable clip is skipped for the next
        index, wave = self.speech.usable_wave(index, self.records)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        record = self.records[index]
        if self.gain_range is not None:
            low, high = self.gain_range
            wave = wave * float(low + (high - low) * rng.random())
        mel = self.speech._mel(wave)
        f0 = torch.from_numpy(load_label(self.labels[index]))
        if len(f0) != mel.shape[-1]:
            raise ValueError(f"{record.wav}: {len(f0)} F0 labels for {mel.shape[-1]} mel frames "
                             f"(stale cache entry {self.labels[index]}? delete it to recompute)")
        frames = mel.shape[-1] // 2 * 2  # the dataset's even trim
        mel, f0 = mel[:, :frames], f0[:frames]
        if self.crop_frames is not None and frames > self.crop_frames:
            start = int(rng.integers(0, frames - self.crop_frames))  # upstream's randint(0, length - crop)
            mel, f0 = mel[:, start:start + self.crop_frames], f0[start:start + self.crop_frames]
        return PitchSample(mel=mel, f0=f0, path=str(record.wav))


class PitchCollater:
    """Zero-pads a list of `PitchSample`s into a `PitchBatch`, to at least `min_frames` frames
    (upstream pads every training crop to the crop length; the padding is masked in the losses)."""

    def __init__(self, min_frames: int | None = None):
        self.min_frames = min_frames or 0

    def __call__(self, samples: list[PitchSample]) -> PitchBatch:
        lengths = torch.tensor([s.mel.shape[-1] for s in samples], dtype=torch.long)
        width = max(int(lengths.max()), self.min_frames)
        mels = torch.zeros(len(samples), samples[0].mel.shape[0], width)
        f0 = torch.zeros(len(samples), width)
        for i, s in enumerate(samples):
            mels[i, :, : s.mel.shape[-1]] = s.mel
            f0[i, : len(s.f0)] = s.f0
        return PitchBatch(mels, f0, lengths, [s.path for s in samples])
