"""Validation scored by the offline evaluator (`styletts2.evaluate`): whole validation clips decoded by
the model, scored for intelligibility and naturalness beside the losses.

Stages 1 and 2 decode each of the first `clips` validation clips whole, from its own alignment and
style (stage 1: its own F0 and energy; stage 2: those its prosody predictor gives), and log

    score_per     phoneme error rate against the recogniser's transcript of the recording
    score_dnsmos  DNSMOS overall of the decoded clip

A loss says how close a window is to the recording; these say whether the clip can be understood,
which is what a user listens for. Off by default (`clips = 0`): the recogniser and DNSMOS take about
0.1-0.3 s per second of audio on a CPU. `ValidationScores.clips = 8` turns them on.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import gin
import numpy as np
import torch

from ..evaluate.evaluator import Evaluator, ScoreWarning
from ..evaluate.scores import EvalItem
from .batch_ops import ALIGN_FRAME, MEL_HOP

SCORE_PREFIX = "score_"  # not losses: the trainer leaves them out of its default best.pth criterion
# metric -> (the logged key, the ClipScores field it averages)
SCORE_FIELDS = {"per": (SCORE_PREFIX + "per", "per"), "dnsmos": (SCORE_PREFIX + "dnsmos", "dnsmos_ovrl")}


@gin.configurable
class ValidationScores:
    """clips: validation clips scored per validation (0: off); metrics: "per" and/or "dnsmos";
    threads: onnxruntime threads for DNSMOS (None: its default)."""

    def __init__(self, clips: int = 0, metrics: tuple[str, ...] = ("per", "dnsmos"), threads: int | None = None):
        if clips < 0:
            raise ValueError(f"ValidationScores.clips must be >= 0, got {clips}")
        unknown = [m for m in metrics if m not in SCORE_FIELDS]
        if unknown or not metrics:
            raise ValueError(f"ValidationScores.metrics: unknown {unknown}; choose from {sorted(SCORE_FIELDS)}")
        self.clips, self.metrics, self.threads = clips, tuple(metrics), threads
        self._evaluator: Evaluator | None = None
        self._epoch: int | None = None
        self._scored = 0

    def wanted(self, epoch: int, batch_size: int) -> int:
        """How many of this validation batch's first items to decode and score (the count restarts
        with each validation, i.e. each new epoch)."""
        if self._epoch != epoch:
            self._epoch, self._scored = epoch, 0
        return max(0, min(batch_size, self.clips - self._scored))

    def restart(self) -> None:
        """A new validation pass of the same epoch (e.g. the raw weights' beside their average's)
        scores the same clips again."""
        self._epoch = None

    def score_batch(self, batch, epoch: int, decode: Callable[[int, int, torch.Tensor], torch.Tensor],
                    sample_rate: int) -> dict[str, float]:
        """Decode and score this batch's first items that are still wanted: `decode(i, length, mel)`
        returns item i's waveform from its first `length` alignment frames, `mel` [1, n_mels, 2 * length]
        being the same span of its mel (the whole clip, to the alignment frame)."""
        wanted = self.wanted(epoch, len(batch.waves))
        if not wanted:
            return {}
        decoded, recordings = [], []
        # The decoder draws source noise: on a forked generator, the validation losses stay what
        # they are with the scores off.
        with torch.random.fork_rng(devices=[batch.mels.device] if batch.mels.is_cuda else []):
            for i in range(wanted):
                length = int(batch.mel_lengths[i]) // ALIGN_FRAME
                decoded.append(decode(i, length, batch.mels[i:i + 1, :, :length * ALIGN_FRAME]))
                recordings.append(batch.waves[i][:length * ALIGN_FRAME * MEL_HOP])
        self._scored += len(decoded)
        return self.score(decoded, recordings, sample_rate)

    def score(self, decoded: list[torch.Tensor], recordings: list[torch.Tensor], sample_rate: int) -> dict[str, float]:
        """Mean scores of whole decoded clips against their recordings: {"score_per": ..., "score_dnsmos": ...}
        (a metric no clip could be scored on, e.g. silence, is left out)."""
        if not decoded:
            return {}
        if self._evaluator is None:  # the recogniser and DNSMOS load once, on first use
            self._evaluator = Evaluator(metrics=self.metrics, threads=self.threads)
        items = [EvalItem(f"val_{i}", _numpy(wave), sample_rate, "", reference=_numpy(real), reference_rate=sample_rate)
                 for i, (wave, real) in enumerate(zip(decoded, recordings, strict=True))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ScoreWarning)  # an untrained model's silence is a score, not news
            scores = self._evaluator.score(items)
        out = {}
        for metric in self.metrics:
            key, field = SCORE_FIELDS[metric]
            values = [getattr(s, field) for s in scores if getattr(s, field) is not None]
            if values:
                out[key] = float(np.mean(values))
        return out


def _numpy(wave: torch.Tensor) -> np.ndarray:
    return wave.detach().float().reshape(-1).cpu().numpy()
