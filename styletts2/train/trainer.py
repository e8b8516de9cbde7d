"""The training loop around a stage (see `stage.py` for the division of labour).

`Trainer(...).fit()`:
1. joins the DDP process group under torchrun (`distributed.py`), seeds, builds the model from gin
   (`StyleTTS2()`), scans the corpora (bad clips are reported and skipped), builds datasets,
   the length-bucketed sampler and the DataLoaders;
2. sets the stage up and resumes from `resume` if given, else from `<run_dir>/last.pth` (or the
   previous one it keeps, when that is unreadable), as rank 0 decides: every rank loads the file
   rank 0 chose; then copies rank 0's parameters and buffers to every rank;
3. runs epochs of `stage.train_step`, validating every `validate_every_epochs` epochs;
4. writes `<run_dir>/last.pth` every `save_every_steps` steps and at every epoch end, and
   `<run_dir>/best.pth` when the validation loss improves (`train_state.py`).

Failure handling:
- a non-finite loss (`NonFiniteLoss` from `MultiOptimizer.step_on`, or `StepOutput.skipped`)
  skips the step, which changed no parameter; `max_nonfinite_in_a_row` skips in a row stop the run
  with `TrainingDiverged`. Checkpoints are never written while skips are in progress or when a
  parameter is not finite, so `last.pth` always holds the last good state.
- SIGINT / SIGTERM: the current step finishes, `last.pth` is written, `fit()` returns with
  status 'interrupted' (runner.py then exits with code 130). A second signal aborts at once.
  DataLoader workers ignore both, so a signal to the whole process group (Slurm, systemd,
  Kubernetes) stops the run the same way.
"""
from __future__ import annotations

import math
import os
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gin
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from styletts2.checkpoint import CheckpointError, UnreadableCheckpoint
from styletts2.data.collate import Collater
from styletts2.data.dataset import SpeechDataset
from styletts2.data.readers import read_ood_texts
from styletts2.data.sampler import LengthBucketBatchSampler
from styletts2.data.validate import issues_file, scan_corpus
from styletts2.errors import UserError
from styletts2.model import StyleTTS2

from . import distributed as dist_utils
from .knobs import check_setting_types
from .logger import RunningMeans, TrainLogger
from .optim import LossScaler, MultiOptimizer
from .stage import NonFiniteLoss, StepOutput, TrainingContext
from .train_state import (LoopState, capture_rng_state, load_training_checkpoint, restore_rng_state,
                          save_training_checkpoint)
from .validation_scores import SCORE_PREFIX
from .weight_average import RAW_PREFIX, WeightAverage

# Exit code runner.py uses for a run stopped by SIGINT/SIGTERM after saving (128 + SIGINT).
INTERRUPTED_EXIT_CODE = 130


class TrainingDiverged(RuntimeError):
    """Too many non-finite steps in a row; the message names the last good checkpoint."""


@dataclass
class TrainResult:
    status: str  # 'completed' | 'max_steps' | 'max_minutes' | 'interrupted' | 'already_complete'
    epoch: int  # epochs completed
    iters: int
    skipped_steps: int
    best_val_loss: float
    checkpoint: Path | None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGINT / SIGTERM to the main process, which finishes the step and
    saves: a scheduler signals the whole process group, and a worker killed by it would abort the run.
    The signals were blocked while the worker started (`_WorkerSafeLoader`); ignore, then unblock."""
    for s in _STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


class _WorkerSafeLoader(DataLoader):
    """Starts its workers with SIGINT / SIGTERM blocked (a forked worker inherits the mask), so a
    group signal that lands before `_ignore_stop_signals` runs can not kill one; the main process
    receives any pending signal as soon as the workers are up."""

    def __iter__(self):
        if self.num_workers == 0 or threading.current_thread() is not threading.main_thread():
            return super().__iter__()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            return super().__iter__()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class RunDirBusy(UserError, RuntimeError):
    """Another run holds the run folder."""


LOCK_FILE = ".run.lock"


@contextmanager
def run_dir_lock(run_dir: Path):
    """Hold `<run_dir>/.run.lock` (flock, where fcntl exists) for the run: a second run in the folder
    would resume the live one and overwrite its checkpoints. Only rank 0 (RANK unset or 0) takes it."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks
        fcntl = None
    if fcntl is None or os.environ.get("RANK", "0").strip() not in ("0", ""):
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip()
            raise RunDirBusy(f"run folder {run_dir} is in use by another run"
                             + (f" (pid {holder})" if holder.isdigit() else "")
                             + ": wait for it to end or give another --run_dir") from None
        except OSError as err:  # a filesystem without flock (some NFS, Lustre, FUSE mounts): run unguarded
            warnings.warn(f"run folder {run_dir} cannot be locked ({err.strerror or err}): a second run in it "
                          "would not be refused", RuntimeWarning, stacklevel=3)
            yield
            return
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _all_finite(module: torch.nn.Module) -> bool:
    flags = [torch.isfinite(p).all() for p in module.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def _check_limits(max_minutes: float | None, num_workers: int, **counts: int | None) -> None:
    """Trainer's step counts and limits: a count below 1 (or a budget of no minutes) would stop a run
    at once, or never log or save, and end it with a success."""
    for name, value in counts.items():
        least = 0 if name == "max_steps" else 1  # max_steps 0: set up only (e.g. make F0 labels ahead, README)
        if value is not None and value < least:
            raise ValueError(f"Trainer.{name} must be at least {least}, got {value}")
    if max_minutes is not None and not max_minutes > 0:  # NaN fails too
        raise ValueError(f"Trainer.max_minutes must be positive (or None), got {max_minutes}")
    if num_workers < 0:
        raise ValueError(f"Trainer.num_workers must be 0 or more, got {num_workers}")


@gin.configurable
class Trainer:
    """Configure in gin; see gin/trainer/default.gin for the defaults of an experiment.

    stage: a Stage class (instantiated with its gin bindings) or instance.
    run_dir: checkpoints, TensorBoard events and config.gin go here.
    epochs: epochs to train in total (a resumed run continues up to this number).
    batch_size: clips per batch on each rank.
    max_mel_frames: drop clips longer than this many mel frames (None keeps all); the training
        crop length is the stage's own setting.
    save_every_steps: also write last.pth every this many steps (None: epoch ends only).
    validate_every_epochs: validate (and update best.pth) every this many epochs, and after the last.
    max_nonfinite_in_a_row: stop after this many skipped steps in a row.
    mixed_precision: None (fp32), 'bf16' (autocast) or 'fp16' (autocast + loss scaling, `LossScaler`).
    device: None = cuda (this rank's GPU) when available, else cpu.
    train_data, val_data: an LJSpeech folder / metadata.csv, or an upstream list file
        (`wav|phonemes|speaker`); data_root: the folder list-file wav paths are relative to.
    ood_data: upstream's OOD_texts.txt (stage 2's SLM adversarial texts), or None.
    resume: a training checkpoint to start from, even when `<run_dir>/last.pth` exists. Without
        it the run continues from its own last.pth (re-running an interrupted command continues
        it), or from last.previous.pth (the one before, kept) when last.pth can not be read.
    max_steps: stop (after saving) once this many steps were made in total; None = no limit.
    max_minutes: stop (after saving) once this run has trained for this many minutes of wall-clock
        time (set-up excluded; a resumed run starts its own clock); None = no limit.
    val_metric: the validation loss that picks best.pth (the lowest); None = the sum of all validation
        losses, the evaluator's `score_*` figures (ValidationScores) left out.
    keep_epoch_checkpoints: also keep `epoch_<stage>_<NNNNN>.pth` at every epoch end (upstream style).
    weight_average: None (upstream), or `@WeightAverage()`: an exponential moving average of the
        weights, which checkpoints hold as their model and validation scores (weight_average.py).
    """

    def __init__(self, stage=gin.REQUIRED, run_dir: str = "runs/default", epochs: int = 1, batch_size: int = 16,
                 max_mel_frames: int | None = None, save_every_steps: int | None = None,
                 validate_every_epochs: int = 1, log_every_steps: int = 10, max_nonfinite_in_a_row: int = 10,
                 mixed_precision: str | None = None, seed: int = 0, device: str | None = None,
                 num_workers: int = 0, train_data: str = gin.REQUIRED, val_data: str | None = None,
                 data_root: str | None = None, ood_data: str | None = None, resume: str | None = None,
                 max_steps: int | None = None, max_minutes: float | None = None, val_metric: str | None = None,
                 keep_epoch_checkpoints: bool = False, weight_average: WeightAverage | None = None):
        check_setting_types("Trainer", Trainer.__init__, locals())
        if mixed_precision not in (None, "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be None, 'bf16' or 'fp16', not {mixed_precision!r}")
        if weight_average is not None and not isinstance(weight_average, WeightAverage):
            raise ValueError(f"Trainer.weight_average must be @WeightAverage() (with the parentheses) or None, "
                             f"not {weight_average!r}")
        if epochs < 1 or batch_size < 1 or max_nonfinite_in_a_row < 1 or validate_every_epochs < 1:
            raise ValueError("epochs, batch_size, max_nonfinite_in_a_row and validate_every_epochs must be >= 1")
        _check_limits(log_every_steps=log_every_steps, save_every_steps=save_every_steps, max_steps=max_steps,
                      max_mel_frames=max_mel_frames, max_minutes=max_minutes, num_workers=num_workers)
        if Path(run_dir).exists() and not Path(run_dir).is_dir():
            raise ValueError(f"Trainer.run_dir {run_dir} is a file: give a folder for the run")
        self.stage = stage() if isinstance(stage, type) else stage
        self.run_dir = Path(run_dir)
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_mel_frames = max_mel_frames
        self.save_every_steps = save_every_steps
        self.validate_every_epochs = validate_every_epochs
        self.log_every_steps = log_every_steps
        self.max_nonfinite_in_a_row = max_nonfinite_in_a_row
        self.mixed_precision = mixed_precision
        self.seed = seed
        self.device_name = device
        self.num_workers = num_workers
        self.train_data = train_data
        self.val_data = val_data
        self.data_root = data_root
        self.ood_data = ood_data
        self.resume = resume
        self.max_steps = max_steps
        self.max_minutes = max_minutes
        self.val_metric = val_metric
        self.keep_epoch_checkpoints = keep_epoch_checkpoints
        self.average = weight_average
        self._stop_signal: int | None = None
        self.last_validation: dict[str, float] = {}  # the latest validation's losses

    # --- set-up ----------------------------------------------------------------------------

    def _context(self) -> TrainingContext:
        device = self.env.device
        autocast, scaler = nullcontext, None
        if self.mixed_precision is not None:
            dtype = torch.bfloat16 if self.mixed_precision == "bf16" else torch.float16
            autocast = partial(torch.autocast, device_type=device.type, dtype=dtype)
        if self.mixed_precision == "fp16":
            scaler = LossScaler()
        return TrainingContext(device=device, rank=self.env.rank, world_size=self.env.world_size,
                               autocast=autocast, grad_scaler=scaler,
                               log_audio=self.logger.log_audio if self.env.is_main else None,
                               log_image=self.logger.log_image if self.env.is_main else None)

    def _scan(self, path: str):
        """Scan a corpus (phonemize, decode, check every clip) on rank 0 only; the other ranks get
        its report, waiting as long as that takes (a large corpus outlasts the group's timeout)."""
        # The summary is shown once, in the run's log (the scan's own copy went to stderr beside it).
        report = dist_utils.share_from_main(lambda: scan_corpus(path, root=self.data_root, log_summary=False))
        self.logger.info(f"{'warning: ' if report.issues else ''}corpus {path}: {report.summary()}")
        if self.env.is_main:
            self.logger.info(f"corpus {path}: every rejected entry (file:line, reason) is listed in "
                             f"{report.write(issues_file(self.run_dir, path))}")
        if not report.good:
            raise ValueError(f"corpus {path} has no usable clip")
        return report.good

    def _data(self, path: str, ood_texts=None) -> tuple[Dataset, list[int], Callable]:
        """(dataset, item lengths for bucketing, collate_fn) of a corpus: the stage's own
        `build_data(path, trainer)` when it has one (stage 0: pitch labels, text-only PL-BERT),
        else the speech dataset every acoustic stage reads."""
        build = getattr(self.stage, "build_data", None)
        if build is not None:
            return build(path, self)
        dataset, lengths = self.speech_data(path, ood_texts)
        return dataset, lengths, Collater()

    def speech_data(self, path: str, ood_texts=None) -> tuple[SpeechDataset, list[int]]:
        """The scanned, phonemized speech corpus at `path` and its mel lengths (`max_mel_frames` applied)."""
        records = self._scan(path)
        dataset = SpeechDataset(records, ood_texts=ood_texts, seed=self.seed)
        lengths = dataset.mel_lengths()
        if self.max_mel_frames is not None:
            keep = [i for i, n in enumerate(lengths) if n <= self.max_mel_frames]
            if len(keep) < len(records):
                self.logger.info(f"corpus {path}: {len(records) - len(keep)} clip(s) longer than "
                                 f"{self.max_mel_frames} mel frames skipped")
            if not keep:
                raise ValueError(f"corpus {path}: every clip is longer than max_mel_frames={self.max_mel_frames}")
            dataset = SpeechDataset([records[i] for i in keep], ood_texts=ood_texts, seed=self.seed)
            lengths = [lengths[i] for i in keep]
        return dataset, lengths

    def _warn_shared_clips(self, train_set: Dataset, val_set: Dataset) -> None:
        """Warn once when validation clips are training clips too: validation would measure training data."""
        train = {record.wav for record in getattr(train_set, "records", ())}  # as listed: no stat per clip
        shared = sum(record.wav in train for record in getattr(val_set, "records", ()))
        if shared:
            self.logger.info(f"warning: {shared} validation clip(s) are also in the training data "
                             f"({self.train_data}): validation then measures training data")

    def _loader(self, dataset: Dataset, batch_sampler, collate: Callable) -> DataLoader:
        # Its own generator: the DataLoader then draws nothing from the global RNG (exact resume).
        return _WorkerSafeLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate,
                                 num_workers=self.num_workers, pin_memory=self.env.device.type == "cuda",
                                 generator=torch.Generator().manual_seed(self.seed),
                                 worker_init_fn=_ignore_stop_signals if self.num_workers else None)

    def _val_batches(self, lengths: list[int]) -> list[list[int]]:
        """This rank's share of the validation set in length-sorted batches (no item dropped)."""
        mine = sorted(range(self.env.rank, len(lengths), self.env.world_size), key=lambda i: lengths[i])
        return [mine[i:i + self.batch_size] for i in range(0, len(mine), self.batch_size)]

    def setup(self) -> None:
        """Everything before the first step; `fit()` calls it."""
        self.env = dist_utils.init_distributed(self.device_name)
        self.logger = TrainLogger(self.run_dir, enabled=self.env.is_main, log_every_steps=self.log_every_steps)
        _seed_everything(self.seed)
        self.model = StyleTTS2().to(self.env.device)
        self.logger.sample_rate = self.model.sample_rate

        ood = read_ood_texts(self.ood_data) if self.ood_data else None
        self.train_set, lengths, collate = self._data(self.train_data, ood)
        self.sampler = LengthBucketBatchSampler(lengths, batch_size=self.batch_size, seed=self.seed,
                                                rank=self.env.rank, world_size=self.env.world_size)
        self.train_loader = self._loader(self.train_set, self.sampler, collate)
        self.val_loader = None
        if self.val_data:
            val_set, val_lengths, val_collate = self._data(self.val_data, ood)
            self.val_loader = self._loader(val_set, self._val_batches(val_lengths), val_collate)
            self._warn_shared_clips(self.train_set, val_set)

        self.ctx = self._context()
        self.stage.setup(self.model, self.ctx)
        _seed_everything(self.seed + self.env.rank)  # ranks draw different dropout / crops

        self.loop = LoopState(world_size=self.env.world_size)
        if self.average is not None:
            self.average.attach(self.model)
        rng_state = None
        if self.env.is_main:
            self._remove_leftover_temporaries()
        resume, self.loop, rng_state = self._resume_on_every_rank()
        dist_utils.broadcast_module(self.model)  # rank 0's parameters and buffers, resumed or fresh
        if self.average is not None and self.average.shadow is None:
            self.average.capture()  # a fresh run (a resumed one has its checkpoint's average)
        if resume:
            self.sampler.load_state_dict(self.loop.sampler)
            if self.ctx.grad_scaler is not None and self.loop.grad_scaler is not None:
                self.ctx.grad_scaler.load_state_dict(self.loop.grad_scaler)
            self.logger.info(f"resumed from {resume}: epoch {self.loop.epoch}, "
                             f"batch {self.loop.batches_done}, step {self.loop.iters}")

        config = gin.operative_config_str()
        if self.env.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.gin").write_text(config, encoding="utf-8")
            self.logger.info("operative gin config:\n" + config)
        if rng_state is not None:
            restore_rng_state(rng_state)  # last: nothing after this draws random numbers before training

    # --- checkpoints -----------------------------------------------------------------------

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pth"

    @property
    def previous_path(self) -> Path:
        """The last.pth before the newest one: the fallback when last.pth can not be read."""
        return self.run_dir / "last.previous.pth"

    def _remove_leftover_temporaries(self) -> None:
        """Temp files of a save that was killed (`atomic_save` names them `.<name>.<random>.tmp`)."""
        for tmp in sorted(self.run_dir.glob(".*.pth.*.tmp")):
            self.logger.info(f"removing {tmp}, left by a save that did not finish")
            tmp.unlink(missing_ok=True)

    def _resume(self) -> tuple[Path | None, LoopState, dict | None]:
        """Load the checkpoint to continue from: `resume` when given; else the run's own last.pth
        (so re-running an interrupted command continues it), or last.previous.pth when last.pth is
        missing or can not be read."""
        load = partial(load_training_checkpoint, model=self.model, stage=self.stage, rank=self.env.rank,
                       average=self.average)
        if self.resume:
            if self.last_path.exists():
                self.logger.info(f"warning: starting from {self.resume} as asked, not from {self.last_path}")
            return Path(self.resume), *load(self.resume)
        if self.last_path.exists():
            try:
                return self.last_path, *load(self.last_path)
            except UnreadableCheckpoint as err:
                if not self.previous_path.exists():
                    raise
                self.logger.info(f"warning: {self.last_path} can not be read ({err}); "
                                 f"falling back to {self.previous_path}")
        if self.previous_path.exists():
            return self.previous_path, *load(self.previous_path)
        return None, self.loop, None

    def _resume_on_every_rank(self) -> tuple[Path | None, LoopState, dict | None]:
        """`_resume` as rank 0 decides it: every rank continues from the file rank 0 loaded, or all
        start fresh. Ranks deciding alone could disagree (a node-local run folder), then count
        steps differently and all-reduce different gradients: a hang or silent corruption. A rank
        that can not read that file stops every rank at once, with a message naming it."""
        if not self.env.distributed:
            return self._resume()
        result, error = (None, self.loop, None), None
        if self.env.is_main:
            try:
                result = self._resume()
            except Exception as err:
                error = err
        path = dist_utils.broadcast_object(str(result[0]) if result[0] is not None else None)
        if not self.env.is_main and path is not None:
            try:
                if not Path(path).is_file():
                    raise CheckpointError(f"{path} does not exist on this rank's machine")
                result = (Path(path), *load_training_checkpoint(path, self.model, self.stage, self.env.rank,
                                                                self.average))
            except Exception as err:
                error = err
        failed = [(rank, message) for rank, message in
                  enumerate(dist_utils.gather_objects(None if error is None else f"{type(error).__name__}: {error}"))
                  if message is not None]
        if error is not None:
            raise error
        if failed:
            where = "; ".join(f"rank {rank}: {message}" for rank, message in failed)
            raise CheckpointError(f"cannot resume every rank from {path or 'the checkpoint'} ({where}). Every rank "
                                  "reads the checkpoint rank 0 chose: put the run folder (Trainer.run_dir) on a "
                                  "filesystem all nodes share, or copy the checkpoint to the same path on each.")
        return result

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pth"

    def _save(self, names: list[str]) -> Path | None:
        """Write the current state under `names` (rank 0), unless a parameter is not finite."""
        if not dist_utils.all_ranks_agree(_all_finite(self.model), self.env.device):
            self.logger.info("a parameter is not finite: checkpoint NOT written, the previous one is kept")
            return None
        self.loop.sampler = self.sampler.state_dict(consumed=self.loop.batches_done)
        self.loop.grad_scaler = self.ctx.grad_scaler.state_dict() if self.ctx.grad_scaler is not None else None
        rng_states = dist_utils.gather_objects(capture_rng_state(self.stage))
        if self.env.is_main:
            for name in names:
                previous = self.previous_path if name == "last.pth" else None
                save_training_checkpoint(self.run_dir / name, self.model, self.stage, self.loop, rng_states,
                                         previous=previous, average=self.average)
            (self.run_dir / "config.gin").write_text(gin.operative_config_str(), encoding="utf-8")
        dist_utils.barrier()
        return self.run_dir / names[0]

    # --- signals ---------------------------------------------------------------------------

    @contextmanager
    def _signals(self):
        """First SIGINT/SIGTERM: stop after this step (and save); a second one: abort now."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._stop_signal is not None:
                raise KeyboardInterrupt
            self._stop_signal = signum
            self.logger.info(f"{signal.Signals(signum).name}: finishing this step, then saving and exiting")

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # --- loop ------------------------------------------------------------------------------

    def _lrs(self) -> dict[str, float]:
        optimizer = getattr(self.stage, "optimizer", None)
        return {n: optimizer.lr(n) for n in optimizer.names} if isinstance(optimizer, MultiOptimizer) else {}

    def validate(self, epoch: int) -> dict[str, float]:
        """Mean validation losses over the whole validation set (all ranks), each batch's values
        weighted by its size (the last batch is often smaller: 10 clips in batches of 8 would weigh
        2 clips as much as 8), of the averaged weights when the run keeps an average (and of the raw
        ones as `raw_*`, when asked)."""
        if self.average is None:
            return self._validation_pass(epoch)
        if not self.average.validate_raw:
            with self.average.swapped_in():
                return self._validation_pass(epoch)
        # Forked: both passes draw the same random numbers (source noise), and training goes on from
        # the generators' state that one pass leaves, as without `validate_raw`.
        device = self.env.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), self.average.swapped_in():
            averaged = self._validation_pass(epoch)
        return {**averaged, **{RAW_PREFIX + k: v for k, v in self._validation_pass(epoch).items()}}

    def _validation_pass(self, epoch: int) -> dict[str, float]:
        start = getattr(self.stage, "start_validation", None)
        if start is not None:
            start()
        self.model.eval()
        means = RunningMeans()
        with torch.no_grad():
            for batch in self.val_loader:
                means.add(self.stage.validation_step(batch.to(self.env.device), epoch), weight=len(batch))
        self.model.train()
        sums, counts = {}, {}
        for part_sums, part_counts in dist_utils.gather_objects((dict(means.sums), dict(means.counts))):
            for key in part_sums:
                sums[key] = sums.get(key, 0.0) + part_sums[key]
                counts[key] = counts.get(key, 0) + part_counts[key]
        return {key: sums[key] / counts[key] for key in sums}

    def _val_score(self, losses: dict[str, float]) -> float:
        if self.val_metric is None:
            return sum(v for k, v in losses.items() if not k.startswith((SCORE_PREFIX, RAW_PREFIX)))
        if self.val_metric not in losses:
            raise KeyError(f"Trainer.val_metric {self.val_metric!r} is not among the validation losses {sorted(losses)}")
        return losses[self.val_metric]

    def fit(self) -> TrainResult:
        with run_dir_lock(self.run_dir):
            self.setup()
            try:
                with self._signals():
                    return self._run()
            finally:
                self.logger.close()

    def _result(self, status: str, checkpoint: Path | None) -> TrainResult:
        return TrainResult(status, self.loop.epoch, self.loop.iters, self.skipped_total,
                           self.loop.best_val_loss, checkpoint)

    def _run(self) -> TrainResult:
        loop, device = self.loop, self.env.device
        self.skipped_total, in_a_row = 0, 0
        if loop.epoch >= self.epochs:
            self.logger.info(f"nothing to do: {loop.epoch} of {self.epochs} epochs already trained")
            return self._result("already_complete", None)
        if self.max_steps is not None and loop.iters >= self.max_steps:
            self.logger.info(f"nothing to do: Trainer.max_steps={self.max_steps} reached already")
            return self._result("max_steps", None)
        checkpoint, stop, limit = None, False, None
        started_run = time.time()
        for epoch in range(loop.epoch, self.epochs):
            started = time.time()
            self.sampler.set_epoch(epoch)
            self.train_set.set_epoch(epoch)
            self.model.train()
            epoch_means, epoch_skipped = RunningMeans(), 0
            batches = self.logger.progress(self.train_loader, total=len(self.sampler), initial=loop.batches_done,
                                           desc=f"epoch {epoch + 1}/{self.epochs}")
            for batch in batches:
                batch = batch.to(device, non_blocking=True)
                try:
                    out = self.stage.train_step(batch, epoch, loop.iters)
                except NonFiniteLoss as err:
                    out = StepOutput(skipped=True, reason=str(err))
                if self.ctx.grad_scaler is not None:
                    self.ctx.grad_scaler.update()  # once per step, whatever the stage stepped
                loop.batches_done += 1
                loop.iters += 1
                skipped, stop, timeout = dist_utils.any_rank(
                    [out.skipped, self._stop_signal is not None, self._out_of_time(started_run)], device)
                if skipped:
                    epoch_skipped += 1
                    self.skipped_total += 1
                    in_a_row += 1
                    self.logger.log_skipped(loop.iters, self.skipped_total, out.reason or "skipped on another rank")
                    if in_a_row >= self.max_nonfinite_in_a_row:
                        self._diverged(in_a_row, out.reason)
                else:
                    in_a_row = 0
                    if self.average is not None:
                        self.average.update()
                    epoch_means.add(out.losses)
                    self.logger.log_step(loop.iters, out.losses, self._lrs())
                limit = self._limit(timeout, loop.iters)
                if (stop or limit) and loop.batches_done >= len(self.sampler):
                    break  # the epoch is complete: end it properly (validation, epoch checkpoint)
                periodic = bool(self.save_every_steps) and loop.iters % self.save_every_steps == 0
                if (stop or limit or periodic) and in_a_row == 0:
                    checkpoint = self._save(["last.pth"])
                if stop or limit:
                    self.logger.close_bar()
                    return self._result("interrupted" if stop else limit, checkpoint)
            self.logger.close_bar()
            checkpoint = self._end_epoch(epoch, epoch_means, epoch_skipped, in_a_row, time.time() - started)
            stop = dist_utils.any_rank([self._stop_signal is not None], device)[0]  # e.g. during validation
            if (stop or limit) and epoch + 1 < self.epochs:
                return self._result("interrupted" if stop else limit, checkpoint)
        return self._result("completed", checkpoint)

    def _limit(self, out_of_time: bool, iters: int) -> str | None:
        """The run's own limit reached, if any: 'max_minutes' or 'max_steps' (its end status)."""
        if out_of_time:
            return "max_minutes"
        if self.max_steps is not None and iters >= self.max_steps:
            return "max_steps"
        return None

    def _out_of_time(self, started: float) -> bool:
        return self.max_minutes is not None and time.time() - started >= 60 * self.max_minutes

    def _end_epoch(self, epoch: int, means: RunningMeans, skipped: int, in_a_row: int, seconds: float) -> Path | None:
        loop = self.loop
        val = None
        if self.val_loader is not None and ((epoch + 1) % self.validate_every_epochs == 0 or epoch + 1 == self.epochs):
            val = self.last_validation = self.validate(epoch)
            self.logger.log_validation(epoch, val)
            loop.last_val_loss = self._val_score(val)
        loop.epoch, loop.batches_done = epoch + 1, 0
        self.sampler.set_epoch(epoch + 1)
        names = ["last.pth"]
        if val is not None and math.isfinite(loop.last_val_loss) and loop.last_val_loss < loop.best_val_loss:
            loop.best_val_loss = loop.last_val_loss
            names.append("best.pth")
        if self.keep_epoch_checkpoints:
            names.append(f"epoch_{getattr(self.stage, 'name', 'stage')}_{epoch:05d}.pth")
        checkpoint = self._save(names) if in_a_row == 0 else None
        self.logger.epoch_summary(epoch, self.epochs, means.means(), val, skipped, seconds)
        return checkpoint

    def _diverged(self, in_a_row: int, reason: str) -> None:
        """Stop the run; make sure a finite checkpoint exists (never overwrite one)."""
        def exists() -> bool:  # rank 0's view, so every rank takes the same branch
            return dist_utils.gather_objects(self.last_path.exists())[0]

        if not exists():
            # Skipped steps changed nothing, so the current state is the last good one.
            self._save(["last.pth"])
        where = f"last good checkpoint: {self.last_path}" if exists() else "no checkpoint written"
        self.logger.close_bar()
        raise TrainingDiverged(f"{in_a_row} non-finite steps in a row (last: {reason}); stopping. {where}. "
                               "Lower the learning rate, check the data, or try mixed_precision=None.")
