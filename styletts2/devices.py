"""The torch device a command runs on, checked before any work: torch itself fails late, when the
model moves there (an AssertionError "Torch not compiled with CUDA enabled" on a CPU machine), or
with a RuntimeError listing twenty device types for a name such as 'gpu'."""
from __future__ import annotations

import torch


def resolve_device(name: str | torch.device | None) -> torch.device:
    """`name` as a torch.device (None: cuda when available, else cpu); a ValueError when it names no
    device or one this machine lacks."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {str(name)!r} is not a device name: give cpu or cuda (cuda:N for GPU N)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {str(name)!r}: this machine has no CUDA GPU that torch can use: give cpu")
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {str(name)!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {str(name)!r}: MPS is not available on this machine: give cpu")
    elif device.type != "cpu":
        raise ValueError(f"device {str(name)!r} is not supported: give cpu or cuda (cuda:N for GPU N)")
    return device
