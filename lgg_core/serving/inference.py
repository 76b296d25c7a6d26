"""Batched prediction on full slices, shared by validation, evaluation and the app."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lgg_core.serving.device import autocast
from lgg_core.serving.postprocess import flip_tta
from lgg_core.data.transforms import normalize, resize_input


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    images: np.ndarray,
    task: str,
    batch_size: int = 16,
    input_size: int | None = None,
    tta: bool = False,
    mixed_precision: bool = False,
) -> np.ndarray:
    """Tumor probabilities for uint8 slices (N, H, W, 3).

    Args:
        model: a segmenter or classifier in eval mode.
        images: uint8 slices.
        task: ``"segment"`` returns (N, H, W) pixel probabilities; ``"classify"`` returns (N,) slice probabilities.
        batch_size: slices per forward pass.
        input_size: resize inputs to this size first (the size the model was trained at); segmentation output is
            resized back to the slice size.
        tta: average logits over the slice and its horizontal flip.
        mixed_precision: bf16/fp16 autocast (faster, slightly different numbers; evaluation keeps it off).
    """
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = resize_input(normalize(images[start : start + batch_size]).to(device), input_size)
        with autocast(device, mixed_precision):
            logits = flip_tta(model, x) if tta else model(x)
        logits = logits.float()
        if task == "segment" and logits.shape[-2:] != images.shape[1:3]:
            logits = F.interpolate(logits, size=images.shape[1:3], mode="bilinear", align_corners=False)
        logits = logits[:, 0]
        out.append(torch.sigmoid(logits).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,), np.float32)
