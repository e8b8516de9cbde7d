"""Values a training step can read on the host without waiting for the device.

A CUDA step runs ahead of the GPU until Python reads a device tensor's value; each read drains the
GPU's queue (`styletts2/train/syncs.py` counts them). Two kinds of values need no such wait:
- a batch's lengths, which the data loader made on the host: `Batch.to` keeps a host copy beside
  each device tensor (`with_host_copy`) and `on_host` returns it, so packing an LSTM's input or
  sizing a crop costs no sync;
- draws from a CPU generator (crop starts, coin flips), which stay on the host in a GPU run.

Both are marked `host_side`. On a CPU run the sync counter cannot tell host tensors from device
ones, so it leaves out reads of marked tensors only; an unmarked read still counts, which keeps the
CPU count an upper bound of the GPU's.
"""
from __future__ import annotations

import torch

_HOST_SIDE = "_styletts2_host_side"
_HOST_COPY = "_styletts2_host_copy"


def host_side(tensor: torch.Tensor) -> torch.Tensor:
    """Mark a CPU tensor as one that stays on the host in a GPU run; returns it."""
    if tensor.device.type != "cpu":
        raise ValueError(f"host_side marks CPU tensors only, got one on {tensor.device}")
    setattr(tensor, _HOST_SIDE, True)
    return tensor


def is_host_side(tensor: torch.Tensor) -> bool:
    return getattr(tensor, _HOST_SIDE, False)


def with_host_copy(tensor: torch.Tensor, host: torch.Tensor) -> torch.Tensor:
    """`tensor` (on any device) with its values on the host attached, for `on_host`; returns it.
    The copy is a separate tensor even on a CPU run, so that reading `tensor` itself still counts."""
    if host.device.type != "cpu" or host.shape != tensor.shape:
        raise ValueError(f"a host copy must be a CPU tensor of the same shape, got {tuple(host.shape)} on "
                         f"{host.device} for {tuple(tensor.shape)}")
    setattr(tensor, _HOST_COPY, host_side(host.detach().clone()))
    return tensor


def on_host(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's values on the CPU: its host copy or itself when it has one (no sync), else a
    device-to-host copy (a sync on a GPU)."""
    if is_host_side(tensor):
        return tensor
    copy = getattr(tensor, _HOST_COPY, None)
    return copy if copy is not None else tensor.detach().cpu()
