"""Save and restore the full training state, for exact resume.

A training checkpoint is an upstream-layout checkpoint (`checkpoint.make_checkpoint`):
    net          {module: state_dict} (upstream's layout; upstream's loader reads it)
    optimizer    upstream's list of (module, AdamW state) when the stage keeps a `MultiOptimizer`
                 as `stage.optimizer`, else None
    epoch        epochs completed; iters: optimisation steps so far; val_loss: last validation loss
plus our keys:
    stage        stage.state_dict(): optimisers with schedulers, stage-specific state
                 (torch.save stores tensors shared with `optimizer` once)
    trainer      where the loop stands: epoch index, batches consumed in it, sampler state,
                 best validation loss, grad-scaler state, world size
    rng          per-rank python / numpy / torch / cuda generator states, and the stage's own
                 generators (`stage.rank_state_dict()`, if it has one: each rank seeds its own)
    gin_config   the operative gin config at save time
    sigma_data   the diffusion's sigma_data (models with diffusion only)
    espeak_version  the espeak-ng that phonemized the training text (None if unavailable)
    text_normalizer the normalizer that training text went through: name, version, language,
                 settings (None when switched off; lists given as phonemes skip it)
    trained_net, weight_average   with `Trainer.weight_average` on: `net` holds the averaged
                 weights, `trained_net` the raw ones training goes on from, `weight_average` the
                 average's state (weight_average.py)
    ...          a stage's `release_entries()`, if it has them (stage 0: upstream's release layout)
Resuming restores all of it, the random generators last, so K steps straight and K/2 + resume +
K/2 give bit-identical parameters on CPU.
"""
from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import gin
import numpy as np
import torch

from styletts2.checkpoint import CheckpointError, atomic_save, load_net_state, make_checkpoint, torch_load

from .optim import MultiOptimizer
from .weight_average import WeightAverage

logger = logging.getLogger(__name__)


@dataclass
class LoopState:
    """Where the training loop stands; `epoch` is the epoch in progress (0-based) and
    `batches_done` how many of its batches this rank has consumed."""

    epoch: int = 0
    batches_done: int = 0
    iters: int = 0
    best_val_loss: float = float("inf")
    last_val_loss: float = float("nan")
    sampler: dict = field(default_factory=dict)
    grad_scaler: dict | None = None
    world_size: int = 1


def capture_rng_state(stage=None) -> dict:
    """This rank's generator states; with `stage`, its per-rank state as well (`rank_state_dict()`:
    the stage's generators, seeded differently on each rank; its `state_dict()` is rank 0's only)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    if hasattr(stage, "rank_state_dict"):
        state["stage"] = stage.rank_state_dict()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@lru_cache(maxsize=1)
def current_espeak_version() -> str | None:
    try:
        from styletts2.text.espeak import espeak_version

        return espeak_version()
    except Exception as err:  # noqa: BLE001 - a phoneme-list corpus trains without espeak-ng
        logger.warning("espeak-ng version unavailable (%s); checkpoints record espeak_version=None", err)
        return None


def current_text_normalizer() -> dict | None:
    """The normalizer training text went through ({name, version, language, settings}; None: off)."""
    from styletts2.data.readers import corpus_normalizer

    normalizer = corpus_normalizer()
    return normalizer.describe() if normalizer is not None else None


def build_training_checkpoint(model, stage, loop: LoopState, rng_states: list[dict],
                              average: WeightAverage | None = None) -> dict:
    """The checkpoint dict (see the module docstring). `model` is a StyleTTS2 or anything with `.nets`."""
    optimizer = getattr(stage, "optimizer", None)
    extra: dict[str, Any] = {
        "stage": stage.state_dict(),
        "trainer": vars(loop).copy(),
        "rng": rng_states,
        "gin_config": gin.operative_config_str(),
        "espeak_version": current_espeak_version(),
        "text_normalizer": current_text_normalizer(),
    }
    # Stage-0 stages add the top-level entries of their part's upstream release (e.g. the aligner's
    # ['model']), so the training checkpoint loads wherever the released file does.
    extra.update(_release_entries(stage, average))
    diffusion = model.nets.get("diffusion")
    if diffusion is not None:
        extra["sigma_data"] = float(diffusion.sigma_data)
    state = make_checkpoint(
        model.nets,
        epoch=loop.epoch,  # epochs completed (the one in progress when saved mid-epoch)
        iters=loop.iters,
        val_loss=loop.last_val_loss,
        optimizer=optimizer.upstream_state_dict() if isinstance(optimizer, MultiOptimizer) else None,
        **extra,
    )
    if average is not None:
        state["trained_net"], state["net"] = state["net"], average.averaged_net(model.nets)
        state["weight_average"] = average.state_dict()
    return state


def _release_entries(stage, average: WeightAverage | None) -> dict:
    """The stage's release entries, of the averaged weights when there is an average (as `net`)."""
    entries = getattr(stage, "release_entries", dict)
    if average is None:
        return entries()
    with average.swapped_in():  # copies: the raw weights come back into these tensors afterwards
        return _copied(entries())


def _copied(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    return value


def save_training_checkpoint(path: str | os.PathLike, model, stage, loop: LoopState, rng_states: list[dict],
                             previous: str | os.PathLike | None = None, average: WeightAverage | None = None):
    """previous: where the file being replaced is kept (see `atomic_save`)."""
    return atomic_save(build_training_checkpoint(model, stage, loop, rng_states, average), path, previous=previous)


def _check_same_stage(path, gin_config: str | None, stage) -> None:
    """A checkpoint of another stage (a run folder reused by another config, a --resume of the
    previous stage's file) would fail on a missing module or optimizer entry that names neither.
    Fine-tuning trains the stage-2 model, so their checkpoints count as one stage."""
    from styletts2.model import trained_stage

    def family(name: str) -> str:
        return "Stage2" if name == "FinetuneStage" else name

    saved, mine = trained_stage(gin_config), type(stage).__name__
    if saved is not None and family(saved) != family(mine):
        raise CheckpointError(f"{path} is a {saved} checkpoint and this config trains {mine}: give this run a "
                              "Trainer.run_dir of its own, or pass a checkpoint of the same stage to --resume "
                              "(an earlier stage's weights load through the stage's own paths, e.g. "
                              "Stage2.first_stage_checkpoint)")


def load_training_checkpoint(path: str | os.PathLike, model, stage, rank: int = 0,
                             average: WeightAverage | None = None) -> tuple[LoopState, dict]:
    """Load weights and stage state from a training checkpoint; return the loop state to continue
    from and this rank's generator states (restore them with `restore_rng_state` just before
    training goes on, after everything that draws random numbers while setting up).
    average: the run's weight average, started from the checkpoint's `net` (its average, when the
    checkpoint has one); the model then gets the raw weights (`trained_net`) to train on."""
    state = torch_load(path)
    for key in ("net", "stage", "trainer", "rng"):
        if key not in state:
            raise CheckpointError(f"{path}: not a training checkpoint of this trainer (no {key!r} entry); "
                                  "to start from pretrained weights, let the stage load them instead")
    _check_same_stage(path, state.get("gin_config"), stage)
    load_net_state(model.nets, state["net"])
    if average is not None:
        average.capture()
        if "weight_average" in state:
            average.load_state_dict(state["weight_average"])
    if "trained_net" in state:
        load_net_state(model.nets, state["trained_net"])
    if "sigma_data" in state and "diffusion" in model.nets:
        model.nets["diffusion"].sigma_data = float(state["sigma_data"])
    stage.load_state_dict(state["stage"])
    loop = LoopState(**state["trainer"])
    rngs = state["rng"]
    if len(rngs) != loop.world_size or rank >= len(rngs):
        raise CheckpointError(f"{path}: saved by {len(rngs)} rank(s); cannot restore rank {rank}")
    if "stage" in rngs[rank] and hasattr(stage, "load_rank_state_dict"):
        stage.load_rank_state_dict(rngs[rank]["stage"])  # this rank's own, not rank 0's
    return loop, rngs[rank]
