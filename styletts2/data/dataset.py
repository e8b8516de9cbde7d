"""The training dataset: one utterance -> tokens, mel, waveform, speaker, reference mel (+ OOD text).

What each item holds follows upstream's `FilePathDataset`:
- the waveform at 24 kHz (channels averaged, see `audio.io`), with 5000 zero samples added at both ends;
- the normalised log-mel of that padded waveform, trimmed to an even number of frames (the
  aligner works at 2 mel frames per step);
- tokens `[0] + ids + [0]`;
- a reference mel: a random clip of the same speaker (possibly the same clip), edge-padded the
  same way, randomly cropped to at most `ref_max_frames` frames (192); the style encoders see it;
- optionally a random out-of-distribution phoneme text of at least `ood_min_length` characters
  (for stage 2's SLM adversarial step).
The random picks come from a generator seeded by (seed, epoch, index), so an item is the same
whichever worker loads it and in whatever order; call `set_epoch` to vary them between epochs.

A clip that was fine at start-up but cannot be read when its item is loaded (deleted, truncated,
unmounted mid-epoch) is skipped with a warning: the next clip of the corpus takes its place in the
batch (a reference clip: the item's own). Only `MAX_UNREADABLE_IN_A_ROW` failures in a row (the
corpus itself is gone) stop training.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import gin
import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from styletts2.audio.io import load_wav
from styletts2.audio.mel import LogMelSpectrogram, n_mel_frames
from styletts2.data.readers import Record
from styletts2.text.tokenizer import Tokenizer

EDGE_PADDING = 5000  # zero samples each side of a training clip: upstream's

logger = logging.getLogger(__name__)

MAX_UNREADABLE_IN_A_ROW = 10


@dataclass
class Sample:
    tokens: torch.Tensor  # (T_text,) long, [0] + ids + [0]
    mel: torch.Tensor  # (n_mels, T_mel), T_mel even
    wave: torch.Tensor  # (samples,) float32, edge-padded
    speaker: int
    ref_mel: torch.Tensor  # (n_mels, <= ref_max_frames)
    ood_tokens: torch.Tensor | None  # (T_ood,) long, [0] + ids + [0]
    path: str


@gin.configurable
class SpeechDataset(Dataset):
    """Map-style dataset over validated, phonemized `Record`s.

    sample_rate: rate the audio is resampled to (the models' 24 kHz).
    edge_padding: zero samples added at each end of every waveform (upstream: 5000).
    ref_max_frames: reference mel crop length (upstream: 192).
    ood_texts: phoneme strings for stage 2's out-of-distribution texts, or None.
    ood_min_length: shortest OOD text (characters) to draw (upstream's `min_length`, 50).
    seed: base seed of the per-item random picks.
    """

    def __init__(
        self,
        records: Sequence[Record],
        sample_rate: int = 24000,
        edge_padding: int = EDGE_PADDING,
        ref_max_frames: int = 192,
        ood_texts: Sequence[str] | None = None,
        ood_min_length: int = 50,
        seed: int = 0,
    ):
        if not records:
            raise ValueError("the dataset needs at least one record")
        unphonemized = [r.where for r in records if r.phonemes is None]
        if unphonemized:
            raise ValueError(f"records without phonemes (run phonemize_records first): {unphonemized[:3]}")
        self.records = list(records)
        self.sample_rate = sample_rate
        self.edge_padding = edge_padding
        self.ref_max_frames = ref_max_frames
        self.seed = seed
        self.epoch = 0
        self.tokenizer = Tokenizer()
        self.to_mel = LogMelSpectrogram()
        self.by_speaker: dict[int, list[int]] = defaultdict(list)
        for index, record in enumerate(self.records):
            self.by_speaker[record.speaker].append(index)
        self.ood_tokens: list[torch.Tensor] | None = None
        if ood_texts is not None:
            # Upstream redraws until a text is long enough; filtering once avoids an endless loop.
            usable = [t for t in ood_texts if len(t) >= ood_min_length]
            if not usable:
                raise ValueError(f"no OOD text has at least {ood_min_length} characters")
            self.ood_tokens = [self._tokens(t) for t in usable]

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def mel_lengths(self) -> list[int]:
        """Mel frames of every item (from the file headers, no decoding), for length bucketing."""
        lengths = []
        for record in self.records:
            info = sf.info(str(record.wav))
            samples = round(info.frames * self.sample_rate / info.samplerate) + 2 * self.edge_padding
            lengths.append(n_mel_frames(samples) // 2 * 2)
        return lengths

    def _tokens(self, phonemes: str) -> torch.Tensor:
        return torch.tensor(self.tokenizer.encode_for_training(phonemes), dtype=torch.long)

    def _wave(self, record: Record) -> torch.Tensor:
        wave, _ = load_wav(record.wav, self.sample_rate)
        wave = torch.from_numpy(wave)
        return torch.nn.functional.pad(wave, (self.edge_padding, self.edge_padding))

    def _mel(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.to_mel(wave)

    def _try_wave(self, record: Record) -> torch.Tensor | None:
        """The record's waveform, or None (with a warning) when its clip cannot be read now."""
        try:
            wave = self._wave(record)
        except Exception as err:  # noqa: BLE001 - whatever the decoder raises, it is this clip's problem
            logger.warning("skipping %s (%s): its clip can no longer be read: %s", record.where, record.wav,
                           " ".join(str(err).split()) or type(err).__name__)
            return None
        if wave.numel() == 2 * self.edge_padding:
            logger.warning("skipping %s (%s): its clip holds no samples now", record.where, record.wav)
            return None
        return wave

    def usable_wave(self, index: int, records: Sequence[Record] | None = None) -> tuple[int, torch.Tensor]:
        """(index, waveform) of item `index` of `records` (default: this dataset's), or of the next
        readable one when its clip fails (see the module docstring): a clip lost mid-epoch costs one
        item, not the run."""
        records = self.records if records is None else records
        tries = min(MAX_UNREADABLE_IN_A_ROW, len(records))
        for offset in range(tries):
            candidate = (index + offset) % len(records)
            wave = self._try_wave(records[candidate])
            if wave is not None:
                return candidate, wave
        raise OSError(f"{tries} clips in a row from {records[index].where} on cannot be read: "
                      "is the corpus still there?")

    def __getitem__(self, index: int) -> Sample:
        index, wave = self.usable_wave(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        record = self.records[index]
        full_mel = self._mel(wave)
        mel = full_mel[:, : full_mel.shape[-1] // 2 * 2]

        ref_index = int(rng.choice(self.by_speaker[record.speaker]))
        ref_wave = None if ref_index == index else self._try_wave(self.records[ref_index])
        ref_mel = full_mel if ref_wave is None else self._mel(ref_wave)
        if ref_mel.shape[-1] > self.ref_max_frames:
            start = int(rng.integers(0, ref_mel.shape[-1] - self.ref_max_frames + 1))
            ref_mel = ref_mel[:, start : start + self.ref_max_frames]

        ood = None
        if self.ood_tokens is not None:
            ood = self.ood_tokens[int(rng.integers(len(self.ood_tokens)))]
        return Sample(
            tokens=self._tokens(record.phonemes),
            mel=mel,
            wave=wave,
            speaker=record.speaker,
            ref_mel=ref_mel,
            ood_tokens=ood,
            path=str(record.wav),
        )
