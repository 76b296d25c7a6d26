"""Batched augmentation keeps image and mask aligned; crops find the tumor; inputs are normalized."""
from __future__ import annotations

import numpy as np
import torch

from lgg_core.data.transforms import MEAN, STD, Augment, normalize, training_batch, tumor_biased_crop


def _batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose first channel is the mask itself, so alignment can be read off the pixels."""
    masks = torch.zeros(n, 1, 256, 256, dtype=torch.bool)
    for i in range(n):
        masks[i, 0, 40 + 10 * i : 100 + 10 * i, 60 : 140 + 5 * i] = True
    images = torch.zeros(n, 3, 256, 256, dtype=torch.uint8)
    images[:, 0] = masks[:, 0].to(torch.uint8) * 255
    return images, masks


def test_augment_moves_image_and_mask_together() -> None:
    images, masks = _batch()
    g = torch.Generator().manual_seed(0)
    x, y = Augment(brightness=0, contrast=0)(images.float() / 255, masks.float(), g)
    for i in range(len(x)):
        img, msk = x[i, 0] > 0.5, y[i, 0] > 0.5
        iou = (img & msk).sum() / (img | msk).sum()
        assert iou > 0.95, i
    assert not torch.equal(y, masks.float())  # it did move something


def test_augment_varies_per_slice_and_flips_about_half() -> None:
    images, masks = _batch(1)
    images, masks = images.repeat(64, 1, 1, 1), masks.repeat(64, 1, 1, 1)
    g = torch.Generator().manual_seed(1)
    _, y = Augment(degrees=0, translate=0, scale=(1, 1), brightness=0, contrast=0)(images.float() / 255, masks.float(), g)
    flipped = (y != masks.float()).flatten(1).any(1)
    assert 16 < flipped.sum() < 48
    assert torch.equal(y[flipped], torch.flip(masks.float()[flipped], dims=[-1]))


def test_tumor_crop_contains_tumor_when_asked() -> None:
    images, masks = _batch()
    g = torch.Generator().manual_seed(2)
    x, y = tumor_biased_crop(images.float(), masks.float(), 64, tumor_prob=1.0, generator=g)
    assert x.shape == (8, 3, 64, 64) and y.shape == (8, 1, 64, 64)
    assert (y.flatten(1).sum(1) > 0).all()
    assert torch.equal(x[:, 0] > 0, y[:, 0] > 0)


def test_training_batch_targets() -> None:
    images, masks = _batch(4)
    masks[0] = False
    g = torch.Generator().manual_seed(3)
    x, y = training_batch(images, masks, "classify", g, augment=None, input_size=128)
    assert x.shape == (4, 3, 128, 128) and y.tolist() == [[0.0], [1.0], [1.0], [1.0]]
    x, y = training_batch(images, masks, "segment", g, augment=None, crop=128)
    assert x.shape == (4, 3, 128, 128) and y.shape == (4, 1, 128, 128)
    x, y = training_batch(images, masks, "segment", g, augment=None, input_size=128)
    assert x.shape == (4, 3, 128, 128) and y.shape == (4, 1, 128, 128)
    # Downsizing keeps the mask binary and where it was (the first channel is the mask).
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    assert ((x[:, 0] > x[:, 0].min()) == (y[:, 0] > 0)).float().mean() > 0.97


def test_normalize_accepts_channels_last_uint8() -> None:
    images = np.full((2, 256, 256, 3), 255, np.uint8)
    x = normalize(images)
    assert x.shape == (2, 3, 256, 256)
    torch.testing.assert_close(x[0, :, 0, 0], ((1 - MEAN) / STD).flatten())
