"""What a run reports: a tqdm bar per epoch, TensorBoard scalars and audio, a one-line epoch summary.

Only the main rank reports; on the other ranks every method is a no-op. TensorBoard event files go
to `<run_dir>/tensorboard` (`tensorboard --logdir <run_dir>`). Tags: `train/<loss>` (mean over the
last `log_every_steps` steps, x = iterations), `train/skipped_steps`, `lr/<module>`,
`val/<loss>` (x = epoch), and audio under the stage's own tags.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from tqdm import tqdm


class RunningMeans:
    """Means of named scalars over the values added since creation / the last `reset`."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, float] = defaultdict(float)

    def add(self, values: Mapping[str, float], weight: float = 1.0) -> None:
        """Adds one observation of each value, counted `weight` times (validation: a batch's size)."""
        for key, value in values.items():
            self.sums[key] += float(value) * weight
            self.counts[key] += weight

    def means(self) -> dict[str, float]:
        return {key: self.sums[key] / self.counts[key] for key in self.sums}

    def __bool__(self) -> bool:
        return bool(self.counts)


def format_losses(values: Mapping[str, float]) -> str:
    return " ".join(f"{k} {v:.4g}" for k, v in values.items())


class TrainLogger:
    def __init__(self, run_dir: str | Path, enabled: bool = True, log_every_steps: int = 10,
                 sample_rate: int = 24000):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.log_every_steps = max(1, log_every_steps)
        self.sample_rate = sample_rate
        self.window = RunningMeans()
        self._writer = None
        self._bar: tqdm | None = None

    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        return self._writer

    def info(self, message: str) -> None:
        """A line on stdout that does not break the progress bar."""
        if self.enabled:
            tqdm.write(message)

    def progress(self, iterable: Iterable, total: int, initial: int, desc: str) -> Iterable:
        if not self.enabled:
            return iterable
        self._bar = tqdm(iterable, total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=False)
        return self._bar

    def log_step(self, step: int, losses: Mapping[str, float], lrs: Mapping[str, float] | None = None) -> None:
        """Called after every non-skipped step; writes window means every `log_every_steps`."""
        if not self.enabled:
            return
        self.window.add(losses)
        if self._bar is not None and losses:
            self._bar.set_postfix_str(format_losses(losses), refresh=False)
        if step % self.log_every_steps == 0 and self.window:
            for key, value in self.window.means().items():
                self.writer.add_scalar(f"train/{key}", value, step)
            for key, value in (lrs or {}).items():
                self.writer.add_scalar(f"lr/{key}", value, step)
            self.window.reset()

    def log_skipped(self, step: int, total_skipped: int, reason: str) -> None:
        if not self.enabled:
            return
        self.info(f"step {step}: skipped ({reason}); {total_skipped} skipped so far")
        self.writer.add_scalar("train/skipped_steps", total_skipped, step)

    def log_validation(self, epoch: int, losses: Mapping[str, float]) -> None:
        if self.enabled:
            for key, value in losses.items():
                self.writer.add_scalar(f"val/{key}", value, epoch)

    def log_audio(self, tag: str, wave: torch.Tensor, step: int) -> None:
        """Log a waveform as audio and its log-mel spectrogram as an image (`<tag>_mel`)."""
        if self.enabled:
            from ..audio.mel import log_mel_spectrogram

            wave = wave.detach().float().cpu().reshape(-1).clamp(-1, 1)
            self.writer.add_audio(tag, wave, step, sample_rate=self.sample_rate)
            mel = log_mel_spectrogram(wave).flip(0)  # low frequencies at the bottom
            image = (mel - mel.min()) / (mel.max() - mel.min()).clamp(min=1e-8)
            self.writer.add_image(f"{tag}_mel", image, step, dataformats="HW")

    def log_image(self, tag: str, image: torch.Tensor, step: int) -> None:
        """Log a 2-D map (e.g. an attention matrix, tokens x frames) as a grey image scaled to [0, 1]."""
        if self.enabled:
            image = image.detach().float().cpu()
            image = (image - image.min()) / (image.max() - image.min()).clamp(min=1e-8)
            self.writer.add_image(tag, image.flip(0), step, dataformats="HW")

    def epoch_summary(self, epoch: int, epochs: int, train: Mapping[str, float], val: Mapping[str, float] | None,
                      skipped: int, seconds: float) -> None:
        parts = [f"epoch {epoch + 1}/{epochs}", f"{seconds:.0f}s"]
        if train:
            parts.append("train: " + format_losses(train))
        if val:
            parts.append("val: " + format_losses(val))
        if skipped:
            parts.append(f"skipped {skipped}")
        self.info(" | ".join(parts))

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        self.close_bar()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
