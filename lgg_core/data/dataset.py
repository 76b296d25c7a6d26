"""PyTorch dataset over decoded slices (see :mod:`lgg_core.data.cache`); augmentation happens per batch in training."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class SliceDataset(Dataset):
    """uint8 image (3, H, W) and bool mask (1, H, W) of the chosen rows, without copying the arrays."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, rows: np.ndarray) -> None:
        self.images, self.masks, self.rows = images, masks, np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.rows[i]
        return torch.from_numpy(self.images[r]).permute(2, 0, 1), torch.from_numpy(self.masks[r]).unsqueeze(0)


class BalancedSampler(Sampler[int]):
    """Every tumor slice plus as many tumor-free slices, the latter drawn afresh each epoch, in random order.

    About two thirds of LGG slices are tumor-free; training on all of them doubles the cost of an epoch while the
    tumor slices carry most of what a segmenter learns. The draw depends only on (seed, epoch), so a resumed run
    replays the same epochs. Under DDP each of ``world`` ranks takes every ``world``-th index.

    Args:
        has_tumor: per dataset position, whether the slice has tumor.
        seed: seeds each epoch's draw together with the epoch number (see :meth:`set_epoch`).
    """

    def __init__(self, has_tumor: np.ndarray, seed: int = 0, rank: int = 0, world: int = 1) -> None:
        has_tumor = np.asarray(has_tumor, dtype=bool)
        self.tumor, self.empty = np.flatnonzero(has_tumor), np.flatnonzero(~has_tumor)
        self.n_empty = min(len(self.tumor), len(self.empty))
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.tumor) + self.n_empty) // self.world

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        picked = np.concatenate([self.tumor, rng.choice(self.empty, size=self.n_empty, replace=False)])
        order = rng.permutation(picked)[: len(self) * self.world]
        return iter(order[self.rank :: self.world].tolist())
