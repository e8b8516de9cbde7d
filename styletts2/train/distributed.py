"""Data parallelism without DistributedDataParallel.

StyleTTS2 calls its modules several times per step and steps several optimisers on different
losses, which DistributedDataParallel's one-forward-one-backward hooks do not support (upstream's
DDP attempt failed on exactly this, its issue #7). Instead every rank runs the plain model on its
shard of the batch and `MultiOptimizer.step_on` averages the gradients of the modules it is about
to step (`all_reduce_gradients`). Starting from identical parameters (`broadcast_module`) and
applying identical averaged updates keeps the ranks identical.

Under `torchrun` (env RANK / WORLD_SIZE / LOCAL_RANK) `init_distributed` joins the process group:
nccl on CUDA, gloo on CPU. Without those variables everything here is a no-op for one process.
"""
from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

# Gradients are reduced in flat buffers of at most this many elements (bounded extra memory).
_BUCKET_ELEMENTS = 32 * 1024 * 1024


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_distributed(device: str | torch.device | None = None, timeout_minutes: float = 30.0) -> DistEnv:
    """Join the torchrun process group if the environment names one; pick this rank's device.

    device: None = cuda:LOCAL_RANK when CUDA is available, else cpu.
    """
    world_size, rank, local_rank = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        # a rank no group can hold would wait out the whole timeout at the rendezvous
        raise ValueError(f"distributed environment: RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={world_size}: "
                         "need 0 <= RANK < WORLD_SIZE (start multi-process runs with torchrun)")
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        # nothing else is said until every rank has joined: a rank started without its peers would look hung
        print(f"rank {rank}: waiting for the other {world_size - 1} rank(s) of {world_size} at "
              f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')} "
              f"(up to {timeout_minutes:g} min)", file=sys.stderr, flush=True)
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return DistEnv(rank, world_size, local_rank, device)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"distributed environment: {name}={value!r} is not an integer") from None


def shutdown_distributed() -> None:
    global _patient_group
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _patient_group = None


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s parameters and buffers to every rank (different init seeds, or a
    checkpoint loaded on one rank only, cannot leave the ranks apart)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src)


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s buffers (BatchNorm running statistics) to every rank, one broadcast per
    dtype: a module in train mode updates them from each rank's own shard, and they would drift
    apart. DDP's `broadcast_buffers` does the same before every forward."""
    if not is_distributed():
        return
    groups: dict[torch.dtype, list[torch.Tensor]] = {}
    for b in module.buffers():
        groups.setdefault(b.dtype, []).append(b)
    with torch.no_grad():
        for group in groups.values():
            flat = _flatten_dense_tensors(group)
            dist.broadcast(flat, src)
            for b, value in zip(group, _unflatten_dense_tensors(flat, group)):
                b.copy_(value)


def all_ranks_min_(t: torch.Tensor) -> torch.Tensor:
    """`t` replaced in place by its element-wise minimum over ranks (itself in one process); a
    device op, nothing is read to the host."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t


def all_ranks_agree(flag: bool, device: torch.device) -> bool:
    """True only if `flag` is true on every rank (one tiny all_reduce)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0.5)


def any_rank(flags: list[bool], device: torch.device) -> list[bool]:
    """For each flag: true on at least one rank (one all_reduce for all of them)."""
    if not is_distributed():
        return list(flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [v > 0.5 for v in t.tolist()]


def all_reduce_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average `.grad` over ranks, in coalesced buckets.

    A parameter without a gradient on some ranks (a branch one shard did not take) counts as zero
    there; one without a gradient on every rank keeps `grad = None`, so AdamW still skips it as
    it would in a single process.
    """
    if not is_distributed():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    world_size = dist.get_world_size()
    device = params[0].device
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    dist.all_reduce(has_grad, op=dist.ReduceOp.MAX)
    grads = []
    for p, present in zip(params, has_grad.tolist()):
        if present and p.grad is None:
            p.grad = torch.zeros_like(p)
        if present:
            grads.append(p.grad)
    for bucket in _buckets(grads):
        flat = _flatten_dense_tensors(bucket)
        dist.all_reduce(flat)
        flat.div_(world_size)
        for grad, reduced in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
            grad.copy_(reduced)


def _buckets(tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Group by (device, dtype), then cut into runs of at most _BUCKET_ELEMENTS elements."""
    groups: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    buckets = []
    for group in groups.values():
        current, size = [], 0
        for t in group:
            if current and size + t.numel() > _BUCKET_ELEMENTS:
                buckets.append(current)
                current, size = [], 0
            current.append(t)
            size += t.numel()
        if current:
            buckets.append(current)
    return buckets


# Start-up work that only rank 0 does (scanning and phonemizing a corpus) can outlast the process
# group's timeout; the other ranks wait for it on a side group that allows this long.
PATIENT_TIMEOUT = datetime.timedelta(hours=48)
_patient_group = None


def _patient():
    global _patient_group
    if _patient_group is None:  # created by every rank, in the same order: a collective
        _patient_group = dist.new_group(backend="gloo", timeout=PATIENT_TIMEOUT)
    return _patient_group


def patient_barrier() -> None:
    """A barrier without the process group's timeout (ranks may arrive hours apart)."""
    if is_distributed():
        dist.barrier(group=_patient())


def share_from_main(compute):
    """`compute()` on rank 0 only; its result on every rank. The others wait without the process
    group's timeout, and do not repeat the work. An exception on rank 0 stops every rank."""
    if not is_distributed():
        return compute()
    box = [None]
    if dist.get_rank() == 0:
        try:
            box = [(True, compute())]
        except BaseException as err:
            dist.broadcast_object_list([(False, f"{type(err).__name__}: {err}")], 0, group=_patient())
            raise
    dist.broadcast_object_list(box, 0, group=_patient())
    ok, value = box[0]
    if not ok:
        raise RuntimeError(f"rank 0 failed while the other ranks waited for it: {value}")
    return value


def broadcast_object(obj, src: int = 0):
    """Rank `src`'s `obj` on every rank (`obj` itself in a single process)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def gather_objects(obj) -> list:
    """Every rank's `obj`, in rank order (a one-element list in a single process)."""
    if not is_distributed():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
