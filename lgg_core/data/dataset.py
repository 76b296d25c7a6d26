"""PyTorch dataset over decoded slices (see :mod:`lgg_core.data.cache`); augmentation happens per batch in training."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class SliceDataset(Dataset):
    """uint8 image (3, H, W) and bool mask (1, H, W) of the chosen rows, without copying the arrays."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, rows: np.ndarray) -> None:
        self.images, self.masks, self.rows = images, masks, np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.rows[i]
        return torch.from_numpy(self.images[r]).permute(2, 0, 1), torch.from_numpy(self.masks[r]).unsqueeze(0)
