"""Peak memory of a block of training work, on an accelerator or on the CPU.

On CUDA: the caching allocator's peak (`torch.cuda.max_memory_allocated`), reset when the block
starts. On the CPU: the process's peak resident set size so far (`ru_maxrss`), which only grows:
for the CPU, a block's figure is the peak up to its end.
"""
from __future__ import annotations

import resource
import sys

import torch


class PeakMemory:
    """`with PeakMemory(device) as m: ...`, then `m.peak_gb`."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.peak_gb = 0.0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        self.peak_gb = self.current_peak_gb()

    def current_peak_gb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**30
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return rss / (2**30 if sys.platform == "darwin" else 2**20)
