"""Count the places a training step makes the host wait for the device.

A CUDA step runs ahead of the GPU until Python needs a tensor's value: `.item()`, `bool()` /
`int()` / `float()` of a tensor (an `if` on it included), `.tolist()`, `.numpy()`, a copy to
the CPU, and ops whose output size depends on values (`nonzero`, boolean-mask indexing,
`masked_select`, `unique`). Each one drains the GPU's queue. `count_syncs()` records every such
call with its call site, on any device:
- on an accelerator, only calls on tensors that live there are counted (what really syncs);
- on the CPU nothing syncs, so every such call made by code outside torch is counted, and every
  `.cpu()` inside torch: an upper bound of a GPU run's count. Other calls inside torch (AdamW
  reading its CPU step counters, the norm helpers moving tensors to their own device) and
  `.to(device)` (a copy to the same device, on a CPU run) are left out, as they do not sync on a GPU
  either; torch calls `.cpu()` to bring a device tensor to the host (`pad_packed_sequence` unsorting
  its lengths, seen on CUDA: one sync per LSTM call that the CPU count missed). Reads
  of tensors marked `host_side` (`styletts2/host_values.py`: lengths' host copies, CPU draws) are
  left out too: they stay on the host in a GPU run.

    with count_syncs() as syncs:
        stage.train_step(batch, epoch, step)
    print(syncs.total, syncs.table())
"""
from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

from styletts2.host_values import is_host_side

# Tensor methods that hand a value to Python (or copy to the host), and ops sized by values.
_READS = {"item", "__bool__", "__int__", "__float__", "__index__", "tolist", "numpy", "cpu"}
_VALUE_SIZED = {"nonzero", "masked_select", "unique", "unique_consecutive", "argwhere", "nonzero_static"}
_PACKAGE = str(Path(__file__).resolve().parents[1])
_TORCH = str(Path(torch.__file__).resolve().parent)
_HELPERS = ("syncs.py", "host_values.py")  # a read is reported at its caller's line


class SyncCount:
    """Counts per (call site, op); `total` is their sum."""

    def __init__(self):
        self.sites: Counter[tuple[str, str]] = Counter()

    @property
    def total(self) -> int:
        return sum(self.sites.values())

    def table(self, limit: int = 20) -> str:
        rows = [f"{n:5d}  {op:<14} {site}" for (site, op), n in self.sites.most_common(limit)]
        return "\n".join(rows)


def _is_sync(name: str, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The tensor whose value the call reads, if it is a reading call."""
    tensor = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if tensor is None:
        return None
    if name in _READS or name in _VALUE_SIZED:
        return tensor
    if name == "to":  # .to("cpu") / .to(torch.device("cpu")) / .to(cpu_tensor)
        target = args[1] if len(args) > 1 else kwargs.get("device")
        if isinstance(target, torch.Tensor):
            target = target.device
        if isinstance(target, (str, torch.device)) and torch.device(target).type == "cpu":
            return tensor
        return None
    if name == "__getitem__" and len(args) > 1:  # boolean-mask indexing
        index = args[1] if isinstance(args[1], tuple) else (args[1],)
        if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index):
            return tensor
    return None


def _call_site() -> str:
    """The innermost frame in this package outside this file (else the innermost outside torch)."""
    frame = sys._getframe(1)
    fallback = None
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(_PACKAGE) and not path.endswith(_HELPERS):
            return f"{Path(path).relative_to(Path(_PACKAGE).parent)}:{frame.f_lineno}"
        if fallback is None and "/torch/" not in path and not path.endswith(_HELPERS):
            fallback = f"{path}:{frame.f_lineno}"
        frame = frame.f_back
    return fallback or "?"


class _Mode(TorchFunctionMode):
    def __init__(self, count: SyncCount, device: torch.device | None):
        super().__init__()
        self.count, self.device = count, device

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        tensor = _is_sync(name, args, kwargs)
        if tensor is not None:
            if tensor.device.type != "cpu":
                counted = True
            else:  # a CPU tensor syncs nothing on a GPU run; on a CPU run, count what the GPU run would
                cpu_run = self.device is None or self.device.type == "cpu"
                caller = Path(sys._getframe(1).f_code.co_filename).resolve()
                inside_torch = str(caller).startswith(_TORCH)
                counted = (cpu_run and name != "to" and (name == "cpu" or not inside_torch)
                           and not is_host_side(tensor))
            if counted:
                self.count.sites[(_call_site(), name)] += 1
        return func(*args, **kwargs)


@contextmanager
def count_syncs(device: torch.device | str | None = None) -> Iterator[SyncCount]:
    """Count host-device synchronisations inside the block (see the module docstring). `device`:
    the training device; None or cpu counts every value read (the upper bound)."""
    count = SyncCount()
    with _Mode(count, torch.device(device) if device is not None else None):
        yield count
