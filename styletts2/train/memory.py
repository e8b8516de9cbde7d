"""Peak memory of a block of training work: the peak of live tensor bytes, counted alike on an
accelerator and on the CPU.

- On CUDA, the caching allocator counts it (`torch.cuda.max_memory_allocated`, reset when the
  block starts): every live tensor's block.
- Elsewhere, `LiveTensorBytes` counts the same thing from Python: the bytes of every storage alive on
  the device, starting from the `state` that lives before the block (parameters, gradients,
  optimiser states, the batch) and adding each storage an operator returns inside it (activations,
  tensors saved for backward, gradients, transients) until that storage is freed.

The Python count leaves out kernel workspaces that never become tensors (cuBLAS, cuDNN, oneDNN
scratch) and the allocator's rounding (CUDA rounds blocks to 512 bytes). Measured on an H200
(`count_from_python`, bench/README.md), the allocator's peak is 2-4 % above the Python count of the
same steps at LJSpeech size, and the Python count the same on the GPU as on the CPU (within 0.5 %).
Neither includes the blocks the allocator caches once freed: what `nvidia-smi` shows is higher.
The process's resident size is not used on the CPU: it also holds the Python heap, libraries and
freed pages, and only ever grows.
"""
from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Mapping

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveTensorBytes(TorchDispatchMode):
    """`with LiveTensorBytes('cpu') as live: live.track(model, optimizer, batch); ...`, then
    `live.peak_bytes` / `live.current_bytes`. A storage counts once, however many views it has."""

    def __init__(self, device: torch.device | str = "cpu"):
        super().__init__()
        self.device = torch.device(device)
        self._sizes: dict[int, int] = {}  # storage data pointer -> bytes
        self.current_bytes = 0
        self.peak_bytes = 0

    def track(self, *objects) -> None:
        """Count what already lives: tensors, modules (parameters, their gradients, buffers),
        optimisers (their state), and mappings, sequences or dataclasses of these."""
        for obj in objects:
            if isinstance(obj, torch.Tensor):
                self._count(obj)
                if obj.grad is not None:
                    self._count(obj.grad)
            elif isinstance(obj, nn.Module):
                self.track(*obj.parameters(), *obj.buffers())
            elif isinstance(obj, torch.optim.Optimizer):
                self.track(*obj.state.values())
            elif isinstance(obj, Mapping):
                self.track(*obj.values())
            elif isinstance(obj, (list, tuple)):
                self.track(*obj)
            elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
                self.track(*(getattr(obj, f.name) for f in dataclasses.fields(obj)))

    def _count(self, tensor: torch.Tensor) -> None:
        if tensor.device.type != self.device.type or tensor.is_meta:
            return
        storage = tensor.untyped_storage()
        size, key = storage.nbytes(), storage.data_ptr()
        if size == 0:
            return
        known = self._sizes.get(key)
        if known is None:
            weakref.finalize(storage, self._free, key)  # storages keep their Python object alive
        self._sizes[key] = size
        self.current_bytes += size - (known or 0)  # a storage resized in place counts its new size
        self.peak_bytes = max(self.peak_bytes, self.current_bytes)

    def _free(self, key: int) -> None:
        self.current_bytes -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self._count(value)
        return out


class PeakMemory:
    """`with PeakMemory(device, state) as m: ...`, then `m.peak_gb`: the peak of live tensor bytes
    during the block; `state` is what lives before it (see `LiveTensorBytes.track`), which the
    CUDA allocator knows without being told. With `count_from_python` on CUDA, `counted_gb` is also
    the Python count of the same block (the CPU's method, checked against the allocator's)."""

    def __init__(self, device: torch.device | str, state=(), count_from_python: bool = False):
        self.device = torch.device(device)
        self.state = state
        self.peak_gb = 0.0
        self.counted_gb: float | None = None
        self._count = self.device.type != "cuda" or count_from_python
        self._live: LiveTensorBytes | None = None

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        if self._count:
            self._live = LiveTensorBytes(self.device).__enter__()
            self._live.track(self.state)
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self.counted_gb = self._live.peak_bytes / 2**30
        self.peak_gb = self.current_peak_gb()

    def current_peak_gb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**30
        return self._live.peak_bytes / 2**30 if self._live is not None else 0.0
