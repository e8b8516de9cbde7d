"""The contract between the trainer and a training stage.

The trainer (`trainer.py`) owns everything around the optimisation: data loading and batching,
epochs, device placement, DDP process groups, mixed-precision contexts, checkpoints and resume,
NaN/inf bookkeeping, signals, progress bars and TensorBoard. A stage (`stage1.py`, `stage2.py`)
owns one optimisation step: which modules train at which epoch, the forward passes, the losses and
their weights, and the optimiser steps, which it makes through `MultiOptimizer.step_on` (optim.py)
so that non-finite losses, gradient synchronisation across ranks and loss scaling are handled in
one place.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


class NonFiniteLoss(RuntimeError):
    """A loss was NaN or inf: the step is skipped and no parameter changes."""

    def __init__(self, name: str, value: float):
        super().__init__(f"non-finite loss {name} = {value}")
        self.name = name
        self.value = value


@dataclass
class StepOutput:
    """What one training step reports: scalar losses for logging (already .item()'d), and
    whether it was skipped because a loss was not finite."""

    losses: dict[str, float] = field(default_factory=dict)
    skipped: bool = False
    reason: str = ""

    @classmethod
    def of(cls, losses: dict[str, torch.Tensor]) -> "StepOutput":
        """The losses read to Python in one transfer (one host-device sync, not one per loss)."""
        if not losses:
            return cls({})
        values = torch.stack([v.detach().float().reshape(()) for v in losses.values()]).tolist()
        return cls(dict(zip(losses, values)))


@dataclass
class TrainingContext:
    """What the trainer hands a stage at setup."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    # Forward passes run inside this context (autocast for bf16/fp16, nullcontext for fp32).
    autocast: Callable[[], AbstractContextManager] = None  # type: ignore[assignment]
    # fp16 needs loss scaling (an `optim.LossScaler`, updated by the trainer once per step); None otherwise.
    grad_scaler: Any = None
    # Logs a waveform as audio plus its log-mel image (rank 0 only; None elsewhere).
    log_audio: Callable[[str, torch.Tensor, int], None] | None = None
    # Logs a 2-D map as an image, e.g. an attention matrix (rank 0 only; None elsewhere).
    log_image: Callable[[str, torch.Tensor, int], None] | None = None
    # The last epoch whose validation sample was logged (see batch_ops.log_validation_sample).
    sampled_epoch: int | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class Stage(Protocol):
    """One training stage (stage 1, stage 2, fine-tuning)."""

    name: str

    def setup(self, model, ctx: TrainingContext) -> None:
        """Move nothing (the trainer has placed the model); build optimisers/schedulers, load
        pretrained parts and anything the stage needs (e.g. the SLM)."""

    def train_step(self, batch, epoch: int, step: int) -> StepOutput:
        """One optimisation step on `batch` (a `styletts2.data.collate.Batch` on the device)."""

    def validation_step(self, batch, epoch: int) -> dict[str, float]:
        """Validation losses on one batch, under torch.no_grad()."""

    def state_dict(self) -> dict:
        """Optimiser, scheduler and any stage state (e.g. sigma_data) for exact resume."""

    def load_state_dict(self, state: dict) -> None:
        ...

    # Optional:
    #   build_data(path, trainer) -> (dataset, lengths, collate_fn): the stage's own data (stage 0's
    #       pitch labels, PL-BERT's text); default: `trainer.speech_data(path)` with `Collater()`.
    #       The dataset needs `set_epoch(epoch)`; the batches `.to(device, non_blocking)`.
    #   start_validation(): called before each validation pass (a run with a weight average may make
    #       two in one epoch); stages 1 and 2 restart their evaluator's clip count.
    #   release_entries() -> dict: extra top-level checkpoint entries (an upstream release layout).
    #   rank_state_dict() / load_rank_state_dict(state): state that differs between DDP ranks
    #       (the stage's generators); saved and restored per rank (`state_dict` is rank 0's).
