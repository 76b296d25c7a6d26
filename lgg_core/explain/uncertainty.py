"""Test-time-augmentation (TTA) uncertainty of a segmenter, per pixel and per slice, and how it relates to errors.

A model sees a slice in several views (the slice itself, its mirror image, optionally quarter turns); each view's
tumor probabilities are mapped back onto the slice. The per-pixel uncertainty is the **variance of those
probabilities over the views**: 0 exactly when every view agrees, whatever the model's confidence, and at most
0.25, when half the views say tumor with certainty and half say background. (The binary entropy of the mean would
also be high where every view agrees on 0.5: that is the model's calibration, not its sensitivity to the view.)

The per-slice score is the mean variance over the pixels that at least one view calls tumor (probability > 0.5),
and 0 when no view sees tumor. It needs no ground truth, so it can be shown on uploads too and relating it to Dice
does not leak the answer; averaging over the whole slice instead would mostly measure how big the tumor is.

Flips are the default views: the models were trained with horizontal flips and rotations of at most 15°, so a
mirror image is a view they know, while quarter turns are not (on the demo tumor slices attention-unet's Dice
drops from 0.65 to 0.36 under a 90° turn), and each view is one more forward pass.

Example::

    from functools import partial
    from lgg_core.serving.inference import predict
    result = tta_uncertainty(partial(predict, model, task="segment"), slices_uint8)   # or a Predictor's .predict
    result.pixel, result.slice                                                         # (N, H, W), (N,)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

# uint8 slices (N, H, W, 3) -> tumor probabilities (N, H, W), e.g. ``Predictor.predict``.
Predict = Callable[[np.ndarray], np.ndarray]

# Each view as (quarter turns counter-clockwise, then a left-right mirror); the 8 symmetries of a square.
VIEWS = {
    "identity": (0, False), "hflip": (0, True), "rot90": (1, False), "rot90+hflip": (1, True),
    "rot180": (2, False), "rot180+hflip": (2, True), "rot270": (3, False), "rot270+hflip": (3, True),
}
FLIP = ("identity", "hflip")
THRESHOLD = 0.5


class Uncertainty(NamedTuple):
    """TTA uncertainty of N slices.

    Attributes:
        pixel: (N, H, W) variance of the tumor probability over the views, in [0, 0.25].
        slice: (N,) mean of ``pixel`` over the pixels any view calls tumor (0 when none does).
    """

    pixel: np.ndarray
    slice: np.ndarray


class Correlation(NamedTuple):
    """Spearman rank correlation of per-slice uncertainty with per-slice Dice.

    Attributes:
        rho: in [-1, 1]; negative when more uncertain slices are segmented worse. NaN when undefined (fewer than 3
            slices, or either quantity constant).
        p_value: two-sided p-value of rho (NaN when rho is).
        n: number of slices used.
    """

    rho: float
    p_value: float
    n: int


def _to_view(array: np.ndarray, view: str) -> np.ndarray:
    turns, mirror = VIEWS[view]
    out = np.rot90(array, turns, axes=(1, 2))
    return out[:, :, ::-1] if mirror else out


def _from_view(array: np.ndarray, view: str) -> np.ndarray:
    turns, mirror = VIEWS[view]
    out = array[:, :, ::-1] if mirror else array
    return np.rot90(out, -turns, axes=(1, 2))


def view_probabilities(
    predict: Predict, images: np.ndarray, views: Sequence[str] = FLIP, probs: np.ndarray | None = None
) -> np.ndarray:
    """Tumor probabilities of every view, mapped back onto the slices.

    Args:
        predict: uint8 slices (N, H, W, 3) -> probabilities (N, H, W).
        images: uint8 slices (N, H, W, 3); square when ``views`` has quarter turns.
        views: names from :data:`VIEWS`.
        probs: the identity view's probabilities if already computed, (N, H, W): saves one forward pass.

    Returns:
        (len(views), N, H, W) float32.
    """
    known = {"identity": np.asarray(probs, np.float32)} if probs is not None and "identity" in views else {}
    todo = [v for v in views if v not in known]
    if todo:
        # One call for all views, so the predictor batches them; concatenate also copies away the negative strides
        # of flipped views, which torch cannot take.
        out = predict(np.concatenate([_to_view(images, v) for v in todo])).reshape(len(todo), *images.shape[:3])
        known |= {v: _from_view(p, v) for v, p in zip(todo, out)}
    return np.stack([known[v] for v in views]).astype(np.float32)


def tta_uncertainty(
    predict: Predict, images: np.ndarray, views: Sequence[str] = FLIP, probs: np.ndarray | None = None
) -> Uncertainty:
    """Per-pixel and per-slice TTA uncertainty (see the module docstring); arguments as :func:`view_probabilities`."""
    stack = view_probabilities(predict, images, views, probs)
    # In float64, identical views give exactly 0 (float32 sums of 3 or more equal values can round).
    pixel = stack.var(axis=0, dtype=np.float64).astype(np.float32)
    region = (stack > THRESHOLD).any(axis=0)
    area = region.sum(axis=(1, 2))
    score = np.where(area > 0, (pixel * region).sum(axis=(1, 2)) / np.maximum(area, 1), 0.0)
    return Uncertainty(pixel, score.astype(np.float32))


def uncertainty_vs_dice(uncertainty: np.ndarray, dice: np.ndarray, tumor: np.ndarray) -> Correlation:
    """Spearman correlation between per-slice uncertainty and Dice over the slices with true tumor.

    Tumor-free slices are left out: their Dice is 1 or 0 depending only on whether any pixel is predicted.

    Args:
        uncertainty: (N,) per-slice scores (``Uncertainty.slice``).
        dice: (N,) per-slice Dice.
        tumor: (N,) bool, the slice has tumor in the ground truth.
    """
    keep = np.asarray(tumor, bool)
    x, y = np.asarray(uncertainty, float)[keep], np.asarray(dice, float)[keep]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(float("nan"), float("nan"), len(x))
    from scipy.stats import spearmanr  # ~1 s to import: every page imports this module, few call this

    rho, p_value = spearmanr(x, y)
    return Correlation(float(rho), float(p_value), len(x))
