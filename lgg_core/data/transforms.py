"""Preprocessing shared by training, evaluation and the app, and batched training-time augmentation.

Every model sees the same input: the three MRI channels (pre-contrast, FLAIR, post-contrast) scaled to [0, 1] and
normalized with ImageNet statistics, so that users who load ImageNet encoder weights get the input those expect.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def normalize(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Turn uint8 slices (N, H, W, 3) or (N, 3, H, W) into normalized float32 (N, 3, H, W)."""
    x = torch.as_tensor(images)
    if x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    return scale_normalize(x.float() / 255.0)


def scale_normalize(x: torch.Tensor) -> torch.Tensor:
    """Normalize float images already scaled to [0, 1]."""
    return (x - MEAN.to(x.device)) / STD.to(x.device)


def resize_input(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize a normalized batch to ``size`` x ``size`` (no-op when None or already that size)."""
    if size is None or x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


@dataclass
class Augment:
    """Random flip, rotation, shift/scale and brightness/contrast, as the reference LGG projects used.

    Applied to a whole batch at once (one ``grid_sample`` moves images and masks together, each slice with its own
    random parameters): per-slice torchvision transforms cost more than a CPU training step.
    """

    flip_p: float = 0.5
    degrees: float = 15.0
    translate: float = 0.1
    scale: tuple[float, float] = (0.9, 1.1)
    brightness: float = 0.2
    contrast: float = 0.2

    def __call__(
        self, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment float images in [0, 1] (B, 3, H, W) and float masks (B, 1, H, W)."""
        b = images.shape[0]

        def uniform(low: float, high: float) -> torch.Tensor:
            return (low + (high - low) * torch.rand(b, generator=generator)).to(images.device)

        angle = uniform(-self.degrees, self.degrees) * math.pi / 180
        zoom = uniform(*self.scale)
        flip = torch.where(uniform(0, 1) < self.flip_p, -1.0, 1.0)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        # affine_grid maps output to input coordinates; translations are in [-1, 1] units, hence 2 * translate.
        theta = torch.stack([
            torch.stack([cos * flip, -sin, uniform(-2 * self.translate, 2 * self.translate)], 1),
            torch.stack([sin * flip, cos, uniform(-2 * self.translate, 2 * self.translate)], 1),
        ], 1)
        grid = F.affine_grid(theta, [b, 4, *images.shape[-2:]], align_corners=False)
        moved = F.grid_sample(torch.cat([images, masks], 1), grid, align_corners=False)
        images, masks = moved[:, :3], (moved[:, 3:] > 0.5).float()
        gain = uniform(1 - self.brightness, 1 + self.brightness).view(b, 1, 1, 1)
        contrast = uniform(1 - self.contrast, 1 + self.contrast).view(b, 1, 1, 1)
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = ((images - mean) * contrast + mean) * gain
        return images.clamp(0, 1), masks


def tumor_biased_crop(
    images: torch.Tensor, masks: torch.Tensor, size: int, tumor_prob: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop ``size`` x ``size`` from each slice, centred on a random tumor pixel with ``tumor_prob``.

    Small crops make CPU training affordable; centring on tumor keeps enough positive pixels in them.
    """
    h, w = masks.shape[-2:]
    # Offsets are chosen in numpy: tiny multi-threaded torch ops such as nonzero stall on a busy 2-core CPU.
    flat = masks.detach().reshape(len(masks), -1).cpu().numpy() > 0.5
    out_i, out_m = [], []
    for image, mask, pixels in zip(images, masks, flat):
        tumor = np.flatnonzero(pixels)
        if len(tumor) and torch.rand(1, generator=generator).item() < tumor_prob:
            cy, cx = divmod(int(tumor[torch.randint(len(tumor), (1,), generator=generator).item()]), w)
            top, left = int(np.clip(cy - size // 2, 0, h - size)), int(np.clip(cx - size // 2, 0, w - size))
        else:
            top = int(torch.randint(h - size + 1, (1,), generator=generator))
            left = int(torch.randint(w - size + 1, (1,), generator=generator))
        out_i.append(image[:, top : top + size, left : left + size])
        out_m.append(mask[:, top : top + size, left : left + size])
    return torch.stack(out_i), torch.stack(out_m)


def drop_modalities(images: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each contrast channel (pre- and post-contrast) of each slice by FLAIR with probability ``p``.

    Ten of the 110 patients lack a contrast sequence and the dataset repeats FLAIR in its place; a model that never
    saw such input in training meets it only at test time.
    """
    b = images.shape[0]
    drop = (torch.rand(b, 2, generator=generator) < p).to(images.device)
    out = images.clone()
    for column, channel in enumerate((0, 2)):
        out[drop[:, column], channel] = images[drop[:, column], 1]
    return out


def training_batch(
    images: torch.Tensor,
    masks: torch.Tensor,
    task: str,
    generator: torch.Generator,
    augment: Augment | None = None,
    crop: int | None = None,
    tumor_crop_prob: float = 0.7,
    input_size: int | None = None,
    modality_dropout: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a uint8 batch (B, 3, H, W) and bool masks (B, 1, H, W) into model input and target.

    Returns normalized float input and a float target: the mask (B, 1, h, w) for ``"segment"``, or tumor present
    (B, 1) for ``"classify"``, read after augmentation so a tumor moved out of view is labelled correctly.
    ``modality_dropout``: see :func:`drop_modalities` (0 draws no random numbers, so older runs replay alike).
    """
    x, y = images.float() / 255.0, masks.float()
    if modality_dropout > 0:
        x = drop_modalities(x, modality_dropout, generator)
    if augment is not None:
        x, y = augment(x, y, generator)
    if crop is not None:
        x, y = tumor_biased_crop(x, y, crop, tumor_crop_prob, generator)
    x = resize_input(scale_normalize(x), input_size)
    if task == "classify":
        return x, y.flatten(1).amax(1, keepdim=True)
    if input_size is not None and y.shape[-1] != input_size:
        y = (F.interpolate(y, size=(input_size, input_size), mode="area") > 0.5).float()
    return x, y
