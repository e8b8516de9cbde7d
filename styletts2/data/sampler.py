"""Length-bucketed batch sampler: deterministic, resumable mid-epoch, sharded for DDP.

Upstream draws plain shuffled batches and the training step crops every sample to the shortest
clip of its batch, so a short clip next to long ones throws most of their audio away. Here the
epoch is cut into batches of similar length instead:

1. shuffle all indices with a generator seeded by (seed, epoch);
2. cut the shuffled list into pools of `batch_size * bucket_multiplier`, sort each pool by length
   and cut it into batches (so batches hold clips of similar length, yet differ between epochs);
3. shuffle the order of the batches.

`bucketing=False` gives upstream's behaviour (step 1, then consecutive batches).

Every rank builds the same global batch list and takes batches `rank, rank + world_size, ...`,
all ranks getting the same count. `state_dict()` records the epoch and how many batches of it were
consumed; after `load_state_dict` the next iteration resumes from the following batch. Call
`set_epoch(epoch)` before every epoch: the epoch never advances by itself (DataLoader prefetching
would make it advance before training has consumed the last batches).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import gin
import torch
from torch.utils.data import Sampler


@gin.configurable
class LengthBucketBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices.

    lengths: one length per dataset item (e.g. samples or mel frames), used only for bucketing.
    batch_size: items per batch on each rank.
    bucket_multiplier: pool size in batches; 1 = batches of nearly equal length but fixed company.
    drop_last: drop the final incomplete batch (otherwise it is kept).
    seed: base seed; the epoch is mixed in, so every epoch differs and every run repeats.
    rank, world_size: DDP shard (defaults: 0 / 1, or the initialised process group's values).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int = 16,
        bucket_multiplier: int = 50,
        bucketing: bool = True,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        if batch_size < 1 or bucket_multiplier < 1:
            raise ValueError(f"batch_size ({batch_size}) and bucket_multiplier ({bucket_multiplier}) must be >= 1")
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if world_size is None:
            world_size = torch.distributed.get_world_size() if distributed else 1
        if rank is None:
            rank = torch.distributed.get_rank() if distributed else 0
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        self.batch_size = batch_size
        self.bucket_multiplier = bucket_multiplier
        self.bucketing = bucketing
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._consumed = 0  # batches of `epoch` already handed out on this rank
        if len(self) == 0:
            raise ValueError(
                f"{len(self.lengths)} items give no batch of {batch_size} per rank with world size {world_size}"
            )

    def set_epoch(self, epoch: int) -> None:
        """Call before each epoch, as with DistributedSampler. A new epoch starts at its first batch;
        the current one (e.g. just restored by `load_state_dict`) resumes where it stopped."""
        if epoch != self.epoch:
            self.epoch = epoch
            self._consumed = 0

    def _global_batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self.lengths)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        if self.bucketing:
            pool = self.batch_size * self.bucket_multiplier
            order = torch.cat([
                chunk[torch.argsort(self.lengths[chunk], stable=True)] for chunk in order.split(pool)
            ])
        batches = [b.tolist() for b in order.split(self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.bucketing and self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def _rank_batches(self) -> list[list[int]]:
        batches = self._global_batches()
        per_rank = len(batches) // self.world_size  # equal counts keep DDP ranks in step
        return batches[self.rank : per_rank * self.world_size : self.world_size]

    def __len__(self) -> int:
        """Batches per epoch on this rank (a resumed epoch yields fewer)."""
        full, rest = divmod(len(self.lengths), self.batch_size)
        n_batches = full + (1 if rest and not self.drop_last else 0)
        return n_batches // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._rank_batches()
        # A finished epoch iterated again replays it (as DistributedSampler does without set_epoch).
        start = self._consumed if self._consumed < len(batches) else 0
        for position in range(start, len(batches)):
            self._consumed = position + 1
            yield batches[position]

    def state_dict(self, consumed: int | None = None) -> dict:
        """Where this rank stands. With DataLoader workers the sampler runs ahead of training
        (prefetching); pass the number of batches the training loop really consumed this epoch."""
        return {
            "epoch": self.epoch,
            "consumed": self._consumed if consumed is None else consumed,
            "seed": self.seed,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["seed"] != self.seed or state["world_size"] != self.world_size:
            raise ValueError(
                f"sampler state is for seed {state['seed']} / world size {state['world_size']}, "
                f"this sampler has seed {self.seed} / world size {self.world_size}"
            )
        self.epoch = state["epoch"]
        self._consumed = state["consumed"]
