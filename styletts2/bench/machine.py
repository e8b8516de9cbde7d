"""What machine a benchmark ran on, recorded beside its figures (this project's hosts change between
runs, and a CPU model explains a 2x difference in steps per second)."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def _cpu_model(cpuinfo: list[str]) -> str:
    """The first `model name` of /proc/cpuinfo, else platform's processor name, else 'unknown'."""
    for line in cpuinfo:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _isa_flags(cpuinfo: list[str]) -> list[str]:
    """The vector-instruction flags that decide kernel speed (AVX2/AVX-512/AMX/FMA), sorted."""
    flags = next((line for line in cpuinfo if line.startswith("flags")), ":")
    return sorted(f for f in flags.split(":", 1)[1].split() if f.startswith(("avx512", "amx", "avx2", "fma")))


def machine_record(threads: int, libraries: bool = True) -> dict:
    """CPU, thread count, load and platform; with `libraries`, the torch / onnxruntime / numpy versions."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        cpuinfo = []
    record = {"cpu": _cpu_model(cpuinfo), "isa": _isa_flags(cpuinfo), "logical_cpus": os.cpu_count(), "threads": threads,
              "load_average": [round(x, 2) for x in os.getloadavg()], "platform": platform.platform(),
              "python": platform.python_version()}
    if libraries:
        import numpy as np
        import onnxruntime as ort
        import torch

        record.update(torch=torch.__version__, onnxruntime=ort.__version__, numpy=np.__version__)
    record["date"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return record


def describe(record: dict) -> str:
    """One line for a markdown results file."""
    return (f"{record['cpu']}, {record['logical_cpus']} logical CPUs, {record['threads']} threads, "
            f"{record['platform']}, Python {record['python']}, {record['date']}")
