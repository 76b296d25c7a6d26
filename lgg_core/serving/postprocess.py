"""Post-processing of predicted masks and horizontal-flip test-time augmentation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    import torch


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest connected component of a boolean mask.

    A 2D (H, W) mask, i.e. a single slice, uses 8-connectivity. A 3D
    (slices, H, W) stack, i.e. a patient volume, uses 26-connectivity, so a
    component is kept or dropped as a whole across slices. Ties go to the
    component met first in raster order.

    Args:
        mask: 2D or 3D mask; nonzero counts as foreground.

    Returns:
        A new boolean mask of the same shape; empty input stays empty.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim not in (2, 3):
        raise ValueError(f"expected a 2D or 3D mask, got shape {mask.shape}")
    full_connectivity = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    labels, n_components = ndimage.label(mask, structure=full_connectivity)
    if n_components == 0:
        return mask.copy()
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0  # label 0 is background
    return labels == np.argmax(sizes)


def flip_tta(model: torch.nn.Module, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Average a model's logits on x and on x flipped horizontally.

    Spatial outputs of segmenters, (B, 1, H, W), are flipped back before
    averaging; outputs of classifiers, e.g. (B, 1), are not. The model's
    train/eval mode is left to the caller.

    Args:
        model: Segmenter or classifier returning logits.
        x: Input batch (B, C, H, W).
        out: ``model(x)`` when the caller already has it (saves a forward pass).

    Returns:
        Averaged logits with the model's output shape.
    """
    import torch  # here: largest_component serves pages that run no model, which must not wait for torch

    with torch.no_grad():
        out = model(x) if out is None else out
        out_flipped = model(torch.flip(x, dims=[-1]))
        if out_flipped.ndim == x.ndim:
            out_flipped = torch.flip(out_flipped, dims=[-1])
        return (out + out_flipped) / 2
