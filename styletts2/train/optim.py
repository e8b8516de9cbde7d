"""Optimisers: one AdamW per module, stepped through `MultiOptimizer.step_on`.

Upstream (`optimizers.py`, `train_first.py`, `train_second.py`) builds an AdamW per module
(lr 1e-4, betas (0.0, 0.99), eps 1e-9, weight decay 1e-4) and wraps each in a OneCycleLR that is
never stepped. Two side effects of that scheduler's constructor define what upstream really trains
with, and `build_multi_optimizer` reproduces them:
- the learning rate becomes the scheduler's `max_lr` (= lr, so it stays 1e-4);
- with `cycle_momentum` on, AdamW's beta1 is overwritten with the schedule's value at step 0, 0.85.
  Stage 2 then resets beta1 explicitly for bert (0.9) and for decoder/style_encoder (0.0); every
  other module keeps 0.85. Hence `UPSTREAM_BETAS = (0.85, 0.99)`.
Because the schedulers never step, rates are constant: `build_scheduler(kind='constant')`.

`MultiOptimizer.step_on` is the one place a stage turns a loss into parameter updates: it refuses
non-finite losses before touching anything, averages gradients over DDP ranks, unscales fp16
gradients, clips, and steps the named optimisers that received a gradient, and their schedulers.

fp16 loss scaling is `LossScaler`'s, not torch's GradScaler: a training step backpropagates 2-4
losses and steps some optimisers twice (stage 2's generator and SLM steps both step bert,
bert_encoder, predictor and diffusion), which GradScaler allows only with an `update()` between
them; that update per loss let an overflow in the discriminator halve the generator's scale, and
an optimiser without gradients (diffusion on an in-distribution SLM step) made it raise. Here each
`step_on` unscales and checks its own gradients, and the trainer calls `update()` once per step.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import gin
import torch
from torch import nn
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from ..errors import UserError
from .distributed import all_ranks_min_, all_reduce_gradients
from .stage import NonFiniteLoss, TrainingContext

# beta1 upstream's modules end up with (see the module docstring).
UPSTREAM_BETAS = (0.85, 0.99)
# Stage-2 overrides (train_second.py): PL-BERT and the fine-tuned acoustic modules.
BERT_BETAS, BERT_WEIGHT_DECAY = (0.9, 0.99), 0.01
FT_BETAS, FT_MODULES = (0.0, 0.99), ("decoder", "style_encoder")


def build_optimizer(params: Iterable[nn.Parameter], lr: float = 1e-4, betas: tuple[float, float] = (0.0, 0.99),
                    eps: float = 1e-9, weight_decay: float = 1e-4) -> AdamW:
    """Upstream's per-module AdamW. Not gin-configurable: `build_multi_optimizer` passes every
    argument, so bind its `eps` / `weight_decay` / `betas` instead."""
    return AdamW(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)


@dataclass(frozen=True)
class _Warmup:
    """Learning-rate factor: linear warm-up, then constant (`cosine=False`) or a cosine decay to
    `min_ratio` at `total_steps`. A plain object (not a lambda) so LambdaLR's state pickles."""

    warmup_steps: int = 0
    total_steps: int | None = None
    cosine: bool = False
    min_ratio: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if not self.cosine:
            return 1.0
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _budget_decay(budget_minutes: float, spent_minutes: float, decay_fraction: float, min_ratio: float,
                  clock: Callable[[], float] = time.monotonic) -> Callable[[int], float]:
    """Learning-rate factor over a wall-clock budget: 1 until the last `decay_fraction` of it, then a
    linear fall to `min_ratio` at its end. The clock starts when the schedule is built (with the
    scheduler); `spent_minutes` of the budget were used by earlier runs (a resumed segment).
    A closure, not an object: LambdaLR's state then holds no start time for a resumed run to inherit."""
    started = clock()

    def factor(step: int) -> float:
        progress = (spent_minutes + (clock() - started) / 60) / budget_minutes
        decayed = min(1.0, max(0.0, (progress - (1 - decay_fraction)) / decay_fraction))
        return 1.0 - (1.0 - min_ratio) * decayed

    return factor


def _trainer_minutes() -> float | None:
    try:
        return gin.query_parameter("Trainer.max_minutes")
    except ValueError:  # not bound
        return None


@gin.configurable
def build_scheduler(optimizer: Optimizer, kind: str = "constant", total_steps: int | None = None,
                    warmup_steps: int = 0, min_lr_ratio: float = 0.0, pct_start: float = 0.3,
                    div_factor: float = 25.0, final_div_factor: float = 1e4, budget_minutes: float | None = None,
                    budget_spent_minutes: float = 0.0, decay_fraction: float = 0.5) -> LRScheduler:
    """A scheduler that advances once per step of its optimiser.

    kind: 'constant' (upstream's effective behaviour; optional linear warm-up),
          'cosine' (warm-up, then cosine decay to `min_lr_ratio` x lr at `total_steps`),
          'onecycle' (torch OneCycleLR peaking at the optimiser's lr; betas are left alone),
          'budget' (for runs that stop on wall-clock time: constant, then a linear decay to
          `min_lr_ratio` x lr over the last `decay_fraction` of `budget_minutes`, by default
          `Trainer.max_minutes`; a run resumed within one budget binds the minutes already spent
          as `budget_spent_minutes`).
    """
    if kind == "constant":
        return LambdaLR(optimizer, _Warmup(warmup_steps))
    if kind == "budget":
        budget = budget_minutes if budget_minutes is not None else _trainer_minutes()
        if not budget or budget <= 0:
            raise ValueError("build_scheduler(kind='budget') needs a positive budget_minutes or Trainer.max_minutes")
        if not 0 < decay_fraction <= 1:
            raise ValueError(f"decay_fraction must lie in (0, 1], got {decay_fraction:g}")
        return LambdaLR(optimizer, _budget_decay(budget, budget_spent_minutes, decay_fraction, min_lr_ratio))
    if kind in ("cosine", "onecycle") and not total_steps:
        raise ValueError(f"build_scheduler(kind={kind!r}) needs total_steps")
    if kind == "cosine":
        return LambdaLR(optimizer, _Warmup(warmup_steps, total_steps, cosine=True, min_ratio=min_lr_ratio))
    if kind == "onecycle":
        return OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total_steps,
                          pct_start=pct_start, div_factor=div_factor, final_div_factor=final_div_factor,
                          cycle_momentum=False)
    raise ValueError(f"unknown scheduler kind {kind!r}; choose 'constant', 'cosine', 'onecycle' or 'budget'")


@gin.configurable
class LossScaler:
    """Dynamic fp16 loss scaling with one `update()` per training step (see the module docstring).

    The loss is multiplied by the scale before backward and the gradients divided by it after;
    gradients that overflowed skip their step. `update()` halves the scale (`backoff_factor`) after
    a step with any overflow, and doubles it (`growth_factor`) after `growth_interval` steps
    without one, as GradScaler does. `state_dict()` has GradScaler's keys, so either one's state
    loads into the other. The scale is a python float: applying it costs no device sync.
    """

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000):
        self.scale_value = float(init_scale)
        self.growth_factor, self.backoff_factor = float(growth_factor), float(backoff_factor)
        self.growth_interval = int(growth_interval)
        self.growth_tracker = 0
        self._checked = self._overflowed = False  # this step's gradient checks

    def get_scale(self) -> float:
        return self.scale_value

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return loss * self.scale_value

    def unscale_(self, grads: list[torch.Tensor]) -> None:
        if grads:
            torch._foreach_mul_(grads, 1.0 / self.scale_value)

    def record(self, finite: bool) -> None:
        """The outcome of one gradient check (a `step_on`) in this training step."""
        self._checked = True
        self._overflowed |= not finite

    def update(self) -> None:
        """End of a training step: adjust the scale to what this step's checks found."""
        if self._overflowed:
            self.scale_value *= self.backoff_factor
            self.growth_tracker = 0
        elif self._checked:
            self.growth_tracker += 1
            if self.growth_tracker == self.growth_interval:
                self.scale_value *= self.growth_factor
                self.growth_tracker = 0
        self._checked = self._overflowed = False

    def state_dict(self) -> dict:
        return {"scale": self.scale_value, "growth_factor": self.growth_factor, "backoff_factor": self.backoff_factor,
                "growth_interval": self.growth_interval, "_growth_tracker": self.growth_tracker}

    def load_state_dict(self, state: Mapping) -> None:
        self.scale_value = float(state["scale"])
        self.growth_factor, self.backoff_factor = float(state["growth_factor"]), float(state["backoff_factor"])
        self.growth_interval = int(state["growth_interval"])
        self.growth_tracker = int(state["_growth_tracker"])


class MultiOptimizer:
    """Named optimisers (one per module) with optional schedulers, stepped together by `step_on`.

    optimizers: {module name: optimizer}.
    schedulers: {module name: scheduler}; a name without one keeps its rate.
    ctx: the training context (DDP rank/world size, fp16 grad scaler); None = one process, fp32.
    modules: {module name: module}: the parameters whose gradients `step_on` averages over ranks,
        checks and clips; default: the parameters each optimiser holds.
    """

    def __init__(self, optimizers: Mapping[str, Optimizer], schedulers: Mapping[str, LRScheduler] | None = None,
                 ctx: TrainingContext | None = None, modules: Mapping[str, nn.Module] | None = None):
        self.optimizers = dict(optimizers)
        self.schedulers = dict(schedulers or {})
        self.ctx = ctx
        self.modules = dict(modules) if modules is not None else None
        for label, names in (("schedulers", self.schedulers), ("modules", self.modules or {})):
            unknown = set(names) - set(self.optimizers)
            if unknown:
                raise ValueError(f"{label} for unknown optimiser(s) {sorted(unknown)}; have {sorted(self.optimizers)}")
        if self.modules is not None and set(self.modules) != set(self.optimizers):
            raise ValueError(f"modules {sorted(self.modules)} differ from optimisers {sorted(self.optimizers)}")

    @property
    def names(self) -> list[str]:
        return list(self.optimizers)

    def _check(self, names: Iterable[str]) -> list[str]:
        names = list(names)
        unknown = [n for n in names if n not in self.optimizers]
        if unknown:
            raise KeyError(f"no optimiser for {unknown}; have {self.names}")
        return names

    def parameters(self, names: Iterable[str] | None = None) -> list[nn.Parameter]:
        params: list[nn.Parameter] = []
        for name in self._check(self.names if names is None else names):
            if self.modules is not None:
                params += [p for p in self.modules[name].parameters() if p.requires_grad]
            else:
                params += [p for g in self.optimizers[name].param_groups for p in g["params"]]
        return params

    # --- rates -----------------------------------------------------------------------------

    def lr(self, name: str) -> float:
        return self.optimizers[self._check([name])[0]].param_groups[0]["lr"]

    def set_lr(self, name: str, lr: float) -> None:
        """Set the (base) learning rate of one optimiser, e.g. when fine-tuning: every param group's,
        those of `submodule_lr` included."""
        optimizer = self.optimizers[self._check([name])[0]]
        for group in optimizer.param_groups:
            group["lr"] = lr
            if "initial_lr" in group:
                group["initial_lr"] = lr
        scheduler = self.schedulers.get(name)
        if scheduler is not None:
            scheduler.base_lrs = [lr] * len(optimizer.param_groups)

    # --- stepping --------------------------------------------------------------------------

    def zero_grad(self, names: Iterable[str] | None = None) -> None:
        for name in self._check(self.names if names is None else names):
            self.optimizers[name].zero_grad(set_to_none=True)

    def step_on(self, loss: torch.Tensor, names: Sequence[str], losses: Mapping[str, torch.Tensor] | None = None,
                retain_graph: bool = False, clip: float | None = None,
                before_step: Callable[[list[torch.Tensor]], None] | None = None) -> float:
        """Backpropagate `loss` and step the optimisers `names`. Returns the gradient norm of their
        parameters (after DDP averaging and fp16 unscaling, before clipping).

        1. zero the named gradients, backward (through the fp16 grad scaler when there is one);
        2. under DDP average those gradients over ranks; with fp16, unscale them;
        3. `loss` and every entry of `losses` must be finite on every rank; otherwise the gradients
           are dropped and `NonFiniteLoss` is raised: no parameter or optimiser state moves. This
           check and the gradient norm reach the host in one transfer (one device sync per call);
        4. a non-finite gradient norm raises `NonFiniteLoss('grad_norm', ...)` too, again before any
           update (with fp16 it is an overflow instead: no optimiser steps, the scaler records it and
           lowers the scale at the step's `update()`); `clip` rescales the gradients to at most that
           total norm;
        5. `before_step(gradients)`, if given, may rescale the gradients in place (stage 2's SLM step);
        6. step the optimisers, then their schedulers; an optimiser none of whose parameters got a
           gradient (on any rank) is left alone, its scheduler too.
        """
        names = self._check(names)
        scaler = self.ctx.grad_scaler if self.ctx is not None else None
        device = loss.device
        entries = {"loss": loss, **(losses or {})}
        finite = torch.stack([torch.isfinite(torch.as_tensor(v, device=device).detach()).all()
                              for v in entries.values()]).all()

        self.zero_grad(names)
        (scaler.scale(loss) if scaler is not None else loss).backward(retain_graph=retain_graph)
        owned = {name: self.parameters([name]) for name in names}
        params = [p for name in names for p in owned[name]]
        all_reduce_gradients(params)
        grads = [p.grad for p in params if p.grad is not None]
        if scaler is not None:
            scaler.unscale_(grads)
        norm_t = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=device)
        # The gradients are averaged already, so the norm is every rank's; the loss check is not.
        losses_finite, norm = torch.stack([all_ranks_min_(finite.float().reshape(1))[0], norm_t.float()]).tolist()
        if not losses_finite:
            self.zero_grad(names)
            raise NonFiniteLoss(*_first_non_finite(entries))
        if not math.isfinite(norm):
            self.zero_grad(names)
            if scaler is None:
                raise NonFiniteLoss("grad_norm", norm)
            scaler.record(False)  # fp16 overflow: nothing steps, not even the schedulers
            return norm
        if scaler is not None:
            scaler.record(True)
        if clip is not None and grads:
            torch.nn.utils.clip_grads_with_norm_(params, clip, norm_t)
        if before_step is not None:
            with torch.no_grad():
                before_step(grads)
        for name in names:
            if not any(p.grad is not None for p in owned[name]):
                continue  # no gradient reached it (e.g. diffusion on an in-distribution SLM step)
            self.optimizers[name].step()
            if name in self.schedulers:
                self.schedulers[name].step()
        return norm

    # --- state -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, dict]:
        return {name: {"optimizer": opt.state_dict(),
                       "scheduler": self.schedulers[name].state_dict() if name in self.schedulers else None}
                for name, opt in self.optimizers.items()}

    def upstream_state_dict(self) -> list[tuple[str, dict]]:
        """Upstream's `MultiOptimizer.state_dict()` layout: a list of (name, optimizer state)."""
        return [(name, opt.state_dict()) for name, opt in self.optimizers.items()]

    def load_state_dict(self, state: Mapping[str, dict] | Sequence[tuple[str, dict]]) -> None:
        """Load `state_dict()`'s output, or upstream's list of (name, optimizer state) pairs
        (schedulers then keep their state). The names must match exactly."""
        if not isinstance(state, Mapping):
            state = {name: {"optimizer": opt_state, "scheduler": None} for name, opt_state in state}
        missing, unexpected = set(self.optimizers) - set(state), set(state) - set(self.optimizers)
        if missing or unexpected:
            raise ValueError(f"optimizer state does not match: missing {sorted(missing)}, "
                             f"unexpected {sorted(unexpected)}")
        for name, entry in state.items():
            self.optimizers[name].load_state_dict(entry["optimizer"])
            if entry.get("scheduler") is not None:
                if name not in self.schedulers:
                    raise ValueError(f"state has a scheduler for {name!r}, which has none here")
                self.schedulers[name].load_state_dict(entry["scheduler"])


def _first_non_finite(entries: Mapping[str, torch.Tensor]) -> tuple[str, float]:
    for name, value in entries.items():
        value = torch.as_tensor(value).detach()
        if not torch.isfinite(value).all():
            bad = value[~torch.isfinite(value)] if value.dim() else value
            return name, float(bad.reshape(-1)[0])
    return "(on another rank)", float("nan")


class UnknownModuleError(UserError, KeyError):
    """A module or submodule named in the optimiser's bindings that the model does not have: a
    KeyError, reported by the command lines on one line (a user's gin binding)."""

    def __str__(self) -> str:  # KeyError's own quotes the message
        return str(self.args[0])


def _param_groups(module: nn.Module, rates: Mapping[str, float]) -> list[dict]:
    """The module's parameters as param groups: the rest first (the module's rate), then one group
    per child in `rates` at its rate."""
    children = {}
    for child, rate in rates.items():
        try:
            children[child] = (list(module.get_submodule(child).parameters()), rate)
        except AttributeError:
            raise UnknownModuleError(f"{type(module).__name__} has no submodule {child!r} (submodule_lr)") from None
    taken = [id(p) for params, _ in children.values() for p in params]
    taken_ids = set(taken)
    if len(taken) != len(taken_ids):
        raise ValueError(f"submodule_lr names overlapping submodules: {sorted(rates)}")
    rest = [p for p in module.parameters() if id(p) not in taken_ids]
    return [{"params": rest}, *({"params": params, "lr": rate} for params, rate in children.values())]


@gin.configurable
def build_multi_optimizer(model, names: Iterable[str] | None = None, lr: float = 1e-4,
                          bert_lr: float | None = None, ft_lr: float | None = None,
                          betas: tuple[float, float] = UPSTREAM_BETAS, eps: float = 1e-9,
                          weight_decay: float = 1e-4, ctx: TrainingContext | None = None,
                          scheduler: bool = True, module_lr: dict[str, float] | None = None,
                          submodule_lr: dict[str, dict[str, float]] | None = None) -> MultiOptimizer:
    """Upstream's optimiser set: an AdamW per module of `model` (a StyleTTS2 or {name: module}).

    names: the modules to optimise (default: all).
    bert_lr: None (stage 1: bert like every module) or stage 2's PL-BERT rate (1e-5), which also
        gives bert betas (0.9, 0.99) and weight decay 0.01.
    ft_lr: None (stage 1) or stage 2's rate for decoder and style_encoder (1e-5; 1e-4 when
        fine-tuning), with betas (0.0, 0.99).
    scheduler: give every optimiser `build_scheduler(optimizer)` (constant unless bound otherwise).
    module_lr: {module: rate} overriding the rate above for those modules (betas and weight decay
        as theirs would be). Not upstream's: Adam moves a weight by about its rate per step, so on a
        short budget a module that must move far (the duration head) needs a rate of its own.
    submodule_lr: {module: {child: rate}}: those children of the module (dotted names, as
        `get_submodule` takes) train at their own rates, each a param group after the module's own
        (the first group, which `MultiOptimizer.lr` reports), with the module's betas and decay.
    """
    nets = model.nets if hasattr(model, "nets") else dict(model)
    names = list(nets) if names is None else list(names)
    missing = [n for n in [*names, *(module_lr or {}), *(submodule_lr or {})] if n not in nets]
    if missing:
        raise UnknownModuleError(f"model has no module(s) {missing}; it has {sorted(nets)}")
    optimizers = {}
    for name in names:
        if name == "bert" and bert_lr is not None:
            rate, module_betas, decay = bert_lr, BERT_BETAS, BERT_WEIGHT_DECAY
        elif name in FT_MODULES and ft_lr is not None:
            rate, module_betas, decay = ft_lr, FT_BETAS, weight_decay
        else:
            rate, module_betas, decay = lr, betas, weight_decay
        rate = (module_lr or {}).get(name, rate)
        optimizers[name] = build_optimizer(_param_groups(nets[name], (submodule_lr or {}).get(name, {})), lr=rate,
                                           betas=module_betas, eps=eps, weight_decay=decay)
    schedulers = {name: build_scheduler(opt) for name, opt in optimizers.items()} if scheduler else None
    return MultiOptimizer(optimizers, schedulers, ctx=ctx, modules={n: nets[n] for n in names})
