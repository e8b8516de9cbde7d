"""Count a torch computation's floating-point operations (multiply-add = 2), per component.

Counted with torch's own per-op formulas (`torch.utils.flop_counter.flop_registry`: matmuls,
convolutions, transposed convolutions, attention) plus formulas for the CPU LSTM kernel
(`aten.mkldnn_rnn_layer`) and CPU attention, which that table lacks. (FlopCounterMode itself is not
used: its module tracker fails on modules that return a parameter under no_grad.) Element-wise work (activations, norms, the NSF sine source, the noise hash) is
not counted: it is memory-bound and small next to the products; the counts are what the matrix
units must do, which is what the compute floor compares with the measured matmul rate.
Ops that look like products but have no formula are reported in `uncounted`, not guessed.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry, shape_wrapper

aten = torch.ops.aten
# Substrings of op names that do products; such an op without a formula would be missed silently.
_PRODUCT_HINTS = ("mm", "conv", "linear", "attention", "rnn", "lstm", "gru", "matmul", "einsum")


def _rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape, *args, **kwargs) -> int:
    """One direction of one LSTM layer over the whole sequence: per step and batch item, the gate
    products x @ W_ih^T and h @ W_hh^T ([4H, I] and [4H, H])."""
    steps, batch = input_shape[0], input_shape[1]
    gates, inputs = w_ih_shape
    return 2 * steps * batch * gates * (inputs + w_hh_shape[1])


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    """softmax(Q K^T) V with Q [B, H, L, E], K [B, H, S, E], V [B, H, S, Ev]."""
    batch, heads, length, features = query_shape
    source = key_shape[2]
    return 2 * batch * heads * length * source * (features + value_shape[3])


FORMULAS = {**flop_registry,
            aten.mkldnn_rnn_layer: shape_wrapper(_rnn_layer_flops),
            aten._scaled_dot_product_flash_attention_for_cpu: shape_wrapper(_cpu_attention_flops)}


class FlopCounter(TorchDispatchMode):
    """Sums each op's FLOPs by its formula and notes product-like ops that have none."""

    def __init__(self):
        super().__init__()
        self.per_op: Counter[str] = Counter()
        self.uncounted: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        if packet in FORMULAS:
            self.per_op[str(packet)] += int(FORMULAS[packet](*args, **kwargs, out_val=out))
        elif any(hint in str(packet).split(".")[-1] for hint in _PRODUCT_HINTS):
            self.uncounted.add(str(packet))
        return out


@torch.no_grad()
def count_flops(fn: Callable, *args) -> tuple[int, dict[str, int], list[str]]:
    """Run fn(*args) once; returns (total flops, flops per op, product-like ops with no formula)."""
    with FlopCounter() as counter:
        fn(*args)
    return sum(counter.per_op.values()), dict(counter.per_op), sorted(counter.uncounted)
