"""Batched prediction on full slices, shared by validation, evaluation and the app."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lgg_core.serving.device import autocast
from lgg_core.serving.postprocess import flip_tta
from lgg_core.data.transforms import normalize, resize_input


def probabilities(logits: torch.Tensor, task: str, size: tuple[int, int]) -> np.ndarray:
    """Sigmoid of (B, 1, h, w) or (B, 1) logits: (B, H, W) at the slice ``size`` for segmenters, (B,) otherwise."""
    logits = logits.float()
    if task == "segment" and logits.shape[-2:] != size:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return torch.sigmoid(logits[:, 0]).cpu().numpy()


def _inputs(images: np.ndarray, batch_size: int, input_size: int | None, device: torch.device):
    for start in range(0, len(images), batch_size):
        yield resize_input(normalize(images[start : start + batch_size]).to(device), input_size)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


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
    for x in _inputs(images, batch_size, input_size, device):
        with autocast(device, mixed_precision):
            logits = flip_tta(model, x) if tta else model(x)
        out.append(probabilities(logits, task, images.shape[1:3]))
    return _concat(out)


@torch.no_grad()
def predict_plain_and_tta(
    model: torch.nn.Module, images: np.ndarray, task: str, batch_size: int = 16, input_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``predict`` without and with ``tta``, from two forward passes per slice instead of three: the same numbers."""
    device = next(model.parameters()).device
    plain, tta = [], []
    for x in _inputs(images, batch_size, input_size, device):
        logits = model(x)
        plain.append(probabilities(logits, task, images.shape[1:3]))
        tta.append(probabilities(flip_tta(model, x, logits), task, images.shape[1:3]))
    return _concat(plain), _concat(tta)
