"""A resumable, distributed-aware sampler.

Each epoch is a permutation of the dataset seeded by ``(seed, epoch)``, padded
to a multiple of the world size and sharded ``rank::world_size``. ``skip``
drops the first indices of the current epoch on this rank, which is how a
resumed run continues from the exact data position without decoding the
batches it already consumed.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler

from magvit2.errors import UserError

__all__ = ["ResumableSampler"]


class ResumableSampler(Sampler[int]):
    def __init__(self, size: int, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True) -> None:
        if size < 1:
            raise UserError("the dataset is empty; expected at least one sample")
        self.size, self.seed, self.rank, self.world, self.shuffle = size, seed, rank, world_size, shuffle
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _order(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        per_rank = -(-self.size // self.world)
        order += order[: per_rank * self.world - self.size]  # pad so every rank gets the same count
        return order[self.rank :: self.world]

    def __len__(self) -> int:
        return -(-self.size // self.world)

    def __iter__(self) -> Iterator[int]:
        return iter(self._order()[self.skip :])
