"""An exponential moving average of the model's weights, kept beside training (`Trainer.weight_average`).

Training goes on with the raw weights; the average is what a run saves as its model and validates:
a checkpoint's `net` holds the averaged weights (so stage 2, export and upstream's loader read them),
`trained_net` the raw ones and `weight_average` the average's own state, which resume restores. At
a high constant learning rate the weights keep moving around the point they are learning towards;
their average sits closer to it, at no cost in steps (one lerp per parameter per step).

Off by default: upstream keeps no average. On the learning benchmark it lowered the validation mel
loss, not the PER (bench/README.md).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import gin
import torch
from torch import nn

RAW_PREFIX = "raw_"  # validation losses of the raw weights (`validate_raw`), beside the average's


@gin.configurable
class WeightAverage:
    """decay: the average's decay per step. Early on it is min(decay, (1 + n) / (10 + n)) after n
    updates, so the random initial weights are forgotten within tens of steps, not 1 / (1 - decay).
    validate_raw: also validate the raw weights and log their losses as `raw_<name>` (a second
    validation pass; `best.pth` is still chosen by the average's)."""

    def __init__(self, decay: float = 0.999, validate_raw: bool = False):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"WeightAverage.decay must be between 0 and 1 (exclusive), got {decay}")
        self.decay = decay
        self.validate_raw = validate_raw
        self.updates = 0
        self.params: list[nn.Parameter] = []
        self.shadow: list[torch.Tensor] | None = None

    def attach(self, model: nn.Module) -> None:
        """Average `model`'s floating-point parameters (each shared one once); `capture()` or a
        checkpoint sets the starting point."""
        self.params = [p for p in model.parameters() if p.is_floating_point()]
        self._index = {id(p): i for i, p in enumerate(self.params)}
        self.shadow = None

    def capture(self) -> None:
        """Start the average at the current weights."""
        self.shadow = [p.detach().clone() for p in self.params]

    def _averages(self) -> list[torch.Tensor]:
        """The averaged weights, started at the current ones if nothing started them yet."""
        if self.shadow is None:
            self.capture()
        return self.shadow

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """After an optimisation step: shadow <- shadow + (1 - decay) * (weights - shadow)."""
        weight = 1.0 - self.current_decay()
        torch._foreach_lerp_(self._averages(), [p.detach() for p in self.params], weight)
        self.updates += 1

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The averaged weights in the model for the duration (validation); the raw ones after."""
        with torch.no_grad():
            raw = [p.detach().clone() for p in self.params]
            for p, s in zip(self.params, self._averages(), strict=True):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(self.params, raw, strict=True):
                    p.copy_(r)

    def averaged_net(self, modules: Mapping[str, nn.Module]) -> dict[str, dict[str, torch.Tensor]]:
        """{module: state_dict} with every averaged parameter replaced by its average (buffers as they are)."""
        averages = self._averages()
        net = {}
        for name, module in modules.items():
            state = module.state_dict()
            for key, p in module.named_parameters(remove_duplicate=False):
                i = self._index.get(id(p))
                if i is not None:
                    state[key] = averages[i]
            net[name] = state
        return net

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: Mapping) -> None:
        self.updates = int(state["updates"])
