"""Segmentation and classification metrics with explicit empty-mask rules.

Masks are boolean arrays (any nonzero value counts as foreground). Most LGG
slices contain no tumor, so every metric needs a rule for empty masks:

* Ratios (Dice, IoU, precision, recall, F1) whose denominator is 0 are 1.0
  when both masks are empty and 0.0 otherwise. ``classification_metrics``
  applies the same rule, treating the label vectors as 1D masks.
* Distances (HD95, ASSD) are in pixels. Both masks empty gives NaN ("no
  distance"; excluded from means by the NaN-ignoring summaries); exactly one
  empty gives the image diagonal ``sqrt(H**2 + W**2)``, the largest possible
  in-image distance.

Distances are measured between mask surfaces: the mask minus its binary
erosion (4-connected structuring element, pixels outside the image count as
background). HD95 is the MONAI/medpy-style symmetric definition, the maximum
of the two directed 95th percentiles of surface-to-surface distances. ASSD is
the mean over the pooled distances of both directions (Heimann et al. 2009).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


def _ratio(num: int, den: int, both_empty: bool) -> float:
    """Divide, applying the empty-mask rule when the denominator is 0."""
    if den == 0:
        return 1.0 if both_empty else 0.0
    return num / den


def _as_masks(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cast both masks to bool and check that their shapes agree."""
    pred, true = np.asarray(pred, dtype=bool), np.asarray(true, dtype=bool)
    if pred.shape != true.shape:
        raise ValueError(f"shape mismatch: pred {pred.shape} vs true {true.shape}")
    return pred, true


def _surface(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a mask: the mask minus its erosion."""
    from scipy import ndimage  # ~0.3 s, which a Leaderboard that only reads tables need not pay

    return mask & ~ndimage.binary_erosion(mask)


def _surface_distances(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances pred->true and true->pred for non-empty masks."""
    from scipy import ndimage

    pred_surface, true_surface = _surface(pred), _surface(true)
    # The EDT of a surface's complement is, per pixel, the distance to that surface.
    to_true = ndimage.distance_transform_edt(~true_surface)
    to_pred = ndimage.distance_transform_edt(~pred_surface)
    return to_true[pred_surface], to_pred[true_surface]


def _distances(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """HD95 and ASSD in pixels, with the empty-mask rules."""
    pred_any, true_any = bool(pred.any()), bool(true.any())
    if not pred_any and not true_any:
        return float("nan"), float("nan")
    if pred_any != true_any:
        diagonal = float(np.hypot(*pred.shape))
        return diagonal, diagonal
    d_pt, d_tp = _surface_distances(pred, true)
    hd95 = max(np.percentile(d_pt, 95), np.percentile(d_tp, 95))
    assd = np.concatenate([d_pt, d_tp]).mean()
    return float(hd95), float(assd)


def slice_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float | int | bool]:
    """Overlap and surface-distance metrics for one 2D slice.

    Args:
        pred: Predicted (H, W) mask.
        true: Ground-truth (H, W) mask.

    Returns:
        dice, iou, precision, recall, hd95, assd (floats; distances in pixels),
        tp, fp, fn (pixel counts) and true_tumor, pred_tumor (non-empty flags).
    """
    pred, true = _as_masks(pred, true)
    if pred.ndim != 2:
        raise ValueError(f"expected 2D masks, got shape {pred.shape}")
    tp = int(np.count_nonzero(pred & true))
    n_pred, n_true = int(np.count_nonzero(pred)), int(np.count_nonzero(true))
    fp, fn = n_pred - tp, n_true - tp
    both_empty = n_pred == 0 and n_true == 0
    hd95, assd = _distances(pred, true)
    return {
        "dice": _ratio(2 * tp, n_pred + n_true, both_empty),
        "iou": _ratio(tp, tp + fp + fn, both_empty),
        "precision": _ratio(tp, n_pred, both_empty),
        "recall": _ratio(tp, n_true, both_empty),
        "hd95": hd95,
        "assd": assd,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "true_tumor": n_true > 0,
        "pred_tumor": n_pred > 0,
    }


def volume_dice(pred: np.ndarray, true: np.ndarray) -> float:
    """3D Dice over a patient's stacked (slices, H, W) masks, as in Buda et al.

    Both volumes empty gives 1.0, exactly one empty 0.0.
    """
    pred, true = _as_masks(pred, true)
    tp = int(np.count_nonzero(pred & true))
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(true))
    return _ratio(2 * tp, total, both_empty=total == 0)


def batch_slice_metrics(preds: np.ndarray, trues: np.ndarray) -> pd.DataFrame:
    """`slice_metrics` for each slice of (N, H, W) stacks, one row per slice.

    Distance transforms are only computed for slices where both masks are
    non-empty; the empty-mask rules decide the rest.
    """
    preds, trues = _as_masks(preds, trues)
    if preds.ndim != 3:
        raise ValueError(f"expected (N, H, W) stacks, got shape {preds.shape}")
    return pd.DataFrame([slice_metrics(p, t) for p, t in zip(preds, trues)])


def bootstrap_ci(
    values: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    statistic: Callable[..., np.ndarray] = np.nanmean,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a statistic.

    Args:
        values: 1D per-item values (e.g. per-slice Dice); NaN allowed.
        groups: Optional group id per item (e.g. patient id per slice). When
            given, whole groups are resampled with replacement and their values
            pooled, giving a CI over patients rather than over slices.
        n_boot: Number of bootstrap replicates.
        alpha: Two-sided miss rate; 0.05 gives a 95 % interval.
        seed: Seed for the random generator.
        statistic: NumPy-style reduction accepting ``axis=`` (nanmean,
            nanmedian, ...).

    Returns:
        (low, high) percentiles of the bootstrap distribution. Replicates whose
        statistic is NaN (e.g. an all-NaN resample) are ignored.
    """
    values = np.asarray(values, dtype=float).ravel()
    rng = np.random.default_rng(seed)
    if groups is None:
        samples = values[rng.integers(0, values.size, size=(n_boot, values.size))]
        stats = statistic(samples, axis=1)
    else:
        ids, inverse = np.unique(np.asarray(groups).ravel(), return_inverse=True)
        by_group = [values[inverse == k] for k in range(ids.size)]
        picks = rng.integers(0, ids.size, size=(n_boot, ids.size))
        # Resamples have different lengths, so they cannot share one array.
        stats = np.array(
            [statistic(np.concatenate([by_group[k] for k in row]), axis=0) for row in picks]
        )
    low, high = np.nanpercentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def classification_metrics(
    y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5
) -> dict[str, float | int]:
    """Tumor-presence classification metrics from predicted probabilities.

    Args:
        y_true: Binary labels (1 = tumor).
        scores: Predicted tumor probabilities.
        threshold: Scores at or above it are predicted positive.

    Returns:
        accuracy, precision, recall, f1, auroc (NaN when y_true holds a single
        class), and the confusion counts tn, fp, fn, tp.
    """
    # Imported here: scikit-learn takes ~1.8 s to import, a third of a cold Leaderboard that never computes AUROC.
    from sklearn.metrics import confusion_matrix, roc_auc_score

    y_true = np.asarray(y_true).astype(bool).ravel()
    scores = np.asarray(scores, dtype=float).ravel()
    y_pred = scores >= threshold
    counts = confusion_matrix(y_true, y_pred, labels=[False, True]).ravel()
    tn, fp, fn, tp = (int(c) for c in counts)
    both_empty = tp + fp + fn == 0
    single_class = y_true.all() or not y_true.any()
    return {
        "accuracy": _ratio(tp + tn, y_true.size, both_empty),
        "precision": _ratio(tp, tp + fp, both_empty),
        "recall": _ratio(tp, tp + fn, both_empty),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "auroc": float("nan") if single_class else float(roc_auc_score(y_true, scores)),
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "tp": tp,
    }


def summarize(values: np.ndarray) -> dict[str, float | int]:
    """Mean, median and sample std (ddof=1) ignoring NaN, plus n non-NaN values.

    Statistics that are undefined for the available n (mean of nothing, std
    of one value) are NaN.
    """
    kept = np.asarray(values, dtype=float).ravel()
    kept = kept[~np.isnan(kept)]
    n = kept.size
    return {
        "mean": float(kept.mean()) if n else float("nan"),
        "median": float(np.median(kept)) if n else float("nan"),
        "std": float(kept.std(ddof=1)) if n > 1 else float("nan"),
        "n": int(n),
    }
