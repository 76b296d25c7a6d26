"""Hand-computed checks of lgg_core.evaluation.metrics, including the empty-mask rules."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from lgg_core.evaluation.metrics import (
    batch_slice_metrics,
    bootstrap_ci,
    classification_metrics,
    slice_metrics,
    summarize,
    volume_dice,
)

H, W = 16, 20
DIAGONAL = math.hypot(H, W)


def square(row: int, col: int, size: int = 4, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[row : row + size, col : col + size] = True
    return mask


EMPTY = np.zeros((H, W), dtype=bool)


def test_identical_masks() -> None:
    m = slice_metrics(square(2, 2), square(2, 2))
    assert m["dice"] == m["iou"] == m["precision"] == m["recall"] == 1.0
    assert m["hd95"] == 0.0 and m["assd"] == 0.0
    assert (m["tp"], m["fp"], m["fn"]) == (16, 0, 0)
    assert m["true_tumor"] is True and m["pred_tumor"] is True


def test_single_pixels_use_euclidean_distance() -> None:
    pred, true = np.zeros((H, W), bool), np.zeros((H, W), bool)
    pred[0, 0], true[3, 4] = True, True
    m = slice_metrics(pred, true)
    assert m["hd95"] == pytest.approx(5.0)
    assert m["assd"] == pytest.approx(5.0)


def test_disjoint_squares_at_known_offset() -> None:
    # True occupies columns 2-5, pred columns 10-13, same rows. All 12 border
    # pixels of a 4x4 square are surface; the nearest other surface pixel is
    # in the facing column, so per direction the distances are
    # 4x5 (near column), 2x6, 2x7 (top/bottom middles), 4x8 (far column).
    m = slice_metrics(square(2, 10), square(2, 2))
    assert m["dice"] == 0.0 and m["iou"] == 0.0
    assert m["precision"] == 0.0 and m["recall"] == 0.0
    assert m["hd95"] == pytest.approx(8.0)
    assert m["assd"] == pytest.approx((4 * 5 + 2 * 6 + 2 * 7 + 4 * 8) / 12)


def test_hd95_is_max_of_directed_percentiles() -> None:
    # Pred = true plus one far pixel: true->pred distances are all 0, pred->true
    # distances are 0 for the 12 shared surface pixels and 10 for the extra one.
    true = square(2, 2)
    pred = true.copy()
    pred[2, 15] = True
    m = slice_metrics(pred, true)
    assert m["hd95"] == pytest.approx(np.percentile([0.0] * 12 + [10.0], 95))
    assert m["assd"] == pytest.approx(10.0 / 25)


def test_half_overlap() -> None:
    m = slice_metrics(square(2, 4), square(2, 2))
    assert m["dice"] == pytest.approx(0.5)
    assert m["iou"] == pytest.approx(1 / 3)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert (m["tp"], m["fp"], m["fn"]) == (8, 8, 8)


def test_counts_with_unequal_masks() -> None:
    # 4x4 pred inside a 6x6 truth: 16 tp, 0 fp, 36 - 16 = 20 fn.
    m = slice_metrics(square(3, 3), square(2, 2, size=6))
    assert (m["tp"], m["fp"], m["fn"]) == (16, 0, 20)
    assert m["precision"] == 1.0
    assert m["recall"] == pytest.approx(16 / 36)


def test_both_empty() -> None:
    m = slice_metrics(EMPTY, EMPTY)
    assert m["dice"] == m["iou"] == m["precision"] == m["recall"] == 1.0
    assert math.isnan(m["hd95"]) and math.isnan(m["assd"])
    assert (m["tp"], m["fp"], m["fn"]) == (0, 0, 0)
    assert m["true_tumor"] is False and m["pred_tumor"] is False


def test_pred_empty_true_not() -> None:
    m = slice_metrics(EMPTY, square(2, 2))
    assert m["dice"] == m["iou"] == m["precision"] == m["recall"] == 0.0
    assert m["hd95"] == pytest.approx(DIAGONAL) and m["assd"] == pytest.approx(DIAGONAL)
    assert (m["tp"], m["fp"], m["fn"]) == (0, 0, 16)
    assert m["true_tumor"] is True and m["pred_tumor"] is False


def test_true_empty_pred_not() -> None:
    m = slice_metrics(square(2, 2), EMPTY)
    assert m["dice"] == m["iou"] == m["precision"] == m["recall"] == 0.0
    assert m["hd95"] == pytest.approx(DIAGONAL) and m["assd"] == pytest.approx(DIAGONAL)
    assert (m["tp"], m["fp"], m["fn"]) == (0, 16, 0)
    assert m["true_tumor"] is False and m["pred_tumor"] is True


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        slice_metrics(EMPTY, np.zeros((H, W + 1), bool))


def test_volume_dice_by_hand() -> None:
    # Slice 0: both 16 px, overlap 8. Slice 1: pred 16 px, true empty.
    # Slice 2: both empty. Dice = 2*8 / (32 + 16) = 1/3.
    pred = np.stack([square(2, 4), square(2, 2), EMPTY])
    true = np.stack([square(2, 2), EMPTY, EMPTY])
    assert volume_dice(pred, true) == pytest.approx(1 / 3)
    assert volume_dice(np.zeros((3, H, W), bool), np.zeros((3, H, W), bool)) == 1.0
    assert volume_dice(pred, np.zeros_like(pred)) == 0.0


def test_batch_matches_slice_metrics() -> None:
    pred = np.stack([square(2, 4), EMPTY, square(2, 2), square(2, 10), EMPTY])
    true = np.stack([square(2, 2), square(2, 2), EMPTY, square(2, 2), EMPTY])
    df = batch_slice_metrics(pred, true)
    assert len(df) == len(pred)
    for i, (p, t) in enumerate(zip(pred, true)):
        expected = slice_metrics(p, t)
        assert list(df.columns) == list(expected)
        for key, value in expected.items():
            got = df.loc[i, key]
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(got)
            else:
                assert got == value, (i, key)


def test_bootstrap_contains_mean_and_narrows() -> None:
    rng = np.random.default_rng(1)
    small = rng.normal(0.7, 0.2, size=30)
    large = rng.normal(0.7, 0.2, size=3000)
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s < small.mean() < hi_s
    assert lo_l < large.mean() < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 3


def test_bootstrap_ignores_nan_and_is_seeded() -> None:
    values = np.array([0.2, 0.4, np.nan, 0.6, 0.8, 0.3, 0.7, 0.5, 0.5])
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    lo, hi = bootstrap_ci(values)
    assert 0.2 <= lo < 0.5 < hi <= 0.8


def test_bootstrap_singleton_groups_equal_item_resampling() -> None:
    values = np.random.default_rng(2).random(50)
    assert bootstrap_ci(values, groups=np.arange(50)) == bootstrap_ci(values)


def test_bootstrap_group_resampling_differs_with_unequal_groups() -> None:
    # One large patient with uniformly low values and many small ones with
    # high values: slices look plentiful, but the patient-level uncertainty
    # hinges on whether the large patient is drawn, so the CI is much wider.
    sizes = [40] + [2] * 10
    groups = np.repeat(np.arange(len(sizes)), sizes)
    noise = np.random.default_rng(3).normal(0, 0.01, groups.size)
    values = np.where(groups == 0, 0.1, 0.9) + noise
    lo_i, hi_i = bootstrap_ci(values)
    lo_g, hi_g = bootstrap_ci(values, groups=groups)
    assert lo_g < values.mean() < hi_g
    assert hi_g - lo_g > 2 * (hi_i - lo_i)


def test_classification_by_hand() -> None:
    y = np.array([1, 1, 1, 0, 0, 0])
    s = np.array([0.9, 0.6, 0.4, 0.7, 0.3, 0.2])
    m = classification_metrics(y, s)
    # Predicted positive: 0.9, 0.6 (tp) and 0.7 (fp); 0.4 is a fn.
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (2, 1, 1, 2)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    # Positive-over-negative pairs: 0.9 beats 3, 0.6 beats 2, 0.4 beats 2 -> 7/9.
    assert m["auroc"] == pytest.approx(7 / 9)


def test_classification_threshold_is_inclusive() -> None:
    m = classification_metrics(np.array([1, 0]), np.array([0.5, 0.49]))
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (1, 0, 0, 1)


def test_classification_single_class() -> None:
    m = classification_metrics(np.zeros(4, int), np.array([0.1, 0.2, 0.3, 0.4]))
    assert math.isnan(m["auroc"])
    assert m["accuracy"] == 1.0
    # No positives anywhere: the empty rule gives 1.0.
    assert m["precision"] == m["recall"] == m["f1"] == 1.0
    m = classification_metrics(np.ones(3, int), np.array([0.9, 0.8, 0.1]))
    assert math.isnan(m["auroc"])
    assert m["precision"] == 1.0 and m["recall"] == pytest.approx(2 / 3)


def test_classification_false_alarms_only() -> None:
    m = classification_metrics(np.zeros(3, int), np.array([0.9, 0.1, 0.1]))
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0


def test_summarize_ignores_nan() -> None:
    s = summarize(np.array([1.0, np.nan, 2.0, 6.0]))
    assert s["mean"] == pytest.approx(3.0)
    assert s["median"] == pytest.approx(2.0)
    assert s["std"] == pytest.approx(np.std([1.0, 2.0, 6.0], ddof=1))
    assert s["n"] == 3


def test_summarize_all_nan_is_nan_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = summarize(np.array([np.nan, np.nan]))
    assert math.isnan(s["mean"]) and math.isnan(s["median"]) and math.isnan(s["std"])
    assert s["n"] == 0
