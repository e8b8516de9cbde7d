"""Two gloo processes on this machine, for the DDP tests: each runs a test's worker and saves its
findings to <out>/rank<r>.pt, which the test then reads."""
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

WORLD = 2


def join_as_rank(rank: int, port: int) -> None:
    """In a worker: the torchrun environment of `rank`, one thread (two ranks share the CPU)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(worker, out: Path, *args: str) -> list[dict]:
    """worker(rank, port, str(out), *args) on every rank; their saved results, by rank."""
    mp.start_processes(worker, args=(_free_port(), str(out), *args), nprocs=WORLD, start_method="spawn")
    return [torch.load(Path(out) / f"rank{r}.pt") for r in range(WORLD)]
