"""Calibration: ECE from streamed per-bin sums against known answers and brute force, and eval/calibration.json."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lgg_core.app.charts import reliability_figure
from lgg_core.data.cache import load_dataset
from lgg_core.evaluation.calibration import (
    PIXEL_BINS,
    SLICE_BINS,
    UNSURE_MIN_PROB,
    ReliabilityStats,
    calibration_metrics,
    classification_calibration,
    segmentation_calibration,
)
from lgg_core.evaluation import evaluator
from lgg_core.serving.artifacts import load_artifact
from lgg_core.serving.inference import predict
from lgg_core.serving.records import DEMO_DIR, ModelRecord, read_eval


def brute_force_ece(prob: np.ndarray, target: np.ndarray, n_bins: int) -> float:
    """ECE the textbook way: bin by bin, |mean probability - share of positives| weighted by the bin's share."""
    prob, target = prob.ravel().astype(np.float64), target.ravel().astype(bool)
    total = 0.0
    for b in range(n_bins):
        low, high = b / n_bins, (b + 1) / n_bins
        inside = (prob >= low) & ((prob < high) if b < n_bins - 1 else (prob <= high))
        if inside.any():
            total += inside.sum() / prob.size * abs(prob[inside].mean() - target[inside].mean())
    return total


def test_perfectly_calibrated_scores_zero() -> None:
    # Each probability q shared by 1000 samples of which exactly q·1000 are positive.
    q = np.repeat(np.arange(0.05, 1, 0.1), 1000)
    y = np.concatenate([np.arange(1000) < round(v * 1000) for v in np.arange(0.05, 1, 0.1)])
    stats = ReliabilityStats(10).update(q, y)
    assert stats.ece() == pytest.approx(0, abs=1e-12) and stats.mce() == pytest.approx(0, abs=1e-12)
    np.testing.assert_allclose(stats.frequency(), stats.mean_prob())


def test_known_miscalibration() -> None:
    # 100 samples at 0.9 of which half are positive (gap 0.4), 300 at 0.1 of which a tenth are (gap 0).
    prob = np.r_[np.full(100, 0.9), np.full(300, 0.1)]
    target = np.r_[np.arange(100) < 50, np.arange(300) < 30]
    stats = ReliabilityStats(10).update(prob, target)
    assert stats.ece() == pytest.approx(100 / 400 * 0.4)
    assert stats.mce() == pytest.approx(0.4)
    assert stats.brier() == pytest.approx(np.mean((prob - target) ** 2))
    assert stats.ece(min_prob=0.5) == pytest.approx(0.4)  # only the 0.9 bin counts
    overconfident = ReliabilityStats(15).update(np.full(50, 0.8), np.arange(50) < 30)
    assert overconfident.ece() == pytest.approx(0.2) and overconfident.brier() == pytest.approx(0.28)


def test_matches_brute_force_and_edge_values() -> None:
    rng = np.random.default_rng(0)
    prob = np.r_[rng.random(5000) ** 3, np.linspace(0, 1, 21)]  # every bin edge, 0 and 1 included
    target = rng.random(prob.size) < prob ** 0.5
    for n_bins in (10, 15, 20):
        stats = ReliabilityStats(n_bins).update(prob, target)
        assert stats.samples == prob.size
        assert stats.ece() == pytest.approx(brute_force_ece(prob, target, n_bins), abs=1e-12)
    stats = ReliabilityStats(20).update(prob, target)
    above = prob >= 0.25
    assert stats.ece(0.25) == pytest.approx(brute_force_ece(prob[above], target[above], 20), abs=1e-12)


def test_streaming_equals_one_shot() -> None:
    rng = np.random.default_rng(1)
    prob = rng.random((12, 32, 32)).astype(np.float32)
    target = rng.random(prob.shape) < prob
    once = ReliabilityStats(20).update(prob, target)
    streamed = ReliabilityStats(20)
    for part in np.array_split(np.arange(12), [1, 2, 7]):
        streamed.update(prob[part], target[part])
    np.testing.assert_array_equal(streamed.count, once.count)
    np.testing.assert_array_equal(streamed.positive_sum, once.positive_sum)
    np.testing.assert_allclose(streamed.prob_sum, once.prob_sum)
    assert streamed.ece() == pytest.approx(once.ece()) and streamed.brier() == pytest.approx(once.brier())
    by_slice, at_once = segmentation_calibration(prob, target, chunk=1), segmentation_calibration(prob, target)
    for level in ("pixel", "slice"):
        assert by_slice["levels"][level]["count"] == at_once["levels"][level]["count"]
        assert by_slice["levels"][level]["ece"] == pytest.approx(at_once["levels"][level]["ece"])


@pytest.mark.parametrize(("prob", "target", "message"), [
    ([0.2, 0.4], [1], "2 probabilities but 1 labels"),
    ([0.2, 1.5], [1, 0], r"\[0, 1\]"),
    ([0.2, np.nan], [1, 0], r"\[0, 1\]"),
])
def test_bad_input_is_rejected(prob: list, target: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReliabilityStats().update(prob, target)


def test_min_prob_must_be_a_bin_edge() -> None:
    with pytest.raises(ValueError, match="not the lower edge"):
        ReliabilityStats(20).update([0.5], [1]).ece(0.07)


def test_segmenter_levels() -> None:
    probs = np.zeros((3, 8, 8), np.float32)
    probs[0, 2, 2], probs[1, 4, 4] = 0.7, 0.3  # slice 2: nothing above 0
    masks = np.zeros((3, 8, 8), bool)
    masks[0, 2, 2] = True
    report = segmentation_calibration(probs, masks)
    pixel, slices = report["levels"]["pixel"], report["levels"]["slice"]
    assert pixel["n_bins"] == PIXEL_BINS and pixel["samples"] == 3 * 64 and slices["n_bins"] == SLICE_BINS
    # Slice probability = the highest pixel's: 0.7 (tumor), 0.3 (none), 0 (none).
    assert slices["samples"] == 3 and slices["ece"] == pytest.approx((0.3 + 0.3 + 0) / 3)
    assert pixel["unsure"] == {"min_prob": UNSURE_MIN_PROB, "samples": 2, "ece": pytest.approx(0.3),
                               "mce": pytest.approx(0.3)}
    labels = [label for label, _, _ in calibration_metrics(report)]
    assert labels == ["Pixel level ECE, all pixels", "Pixel level ECE, p ≥ 0.05", "Slice level ECE"]
    json.dumps(report, allow_nan=False)  # empty bins are null, not NaN


def test_reliability_figure_has_diagonal_and_counts() -> None:
    level = classification_calibration([0.1, 0.15, 0.9, 0.95], [0, 1, 1, 1])["levels"]["slice"]
    fig = reliability_figure(level, "Slice level")
    diagonal, model, counts = fig.data
    assert list(diagonal.x) == [0, 1] and list(diagonal.y) == [0, 1]
    assert list(model.x) == pytest.approx([0.125, 0.925]) and list(model.y) == [0.5, 1.0]
    assert list(counts.y) == [2, 2] and fig.layout.yaxis2.type == "log"
    assert fig.layout.yaxis2.dtick == 1  # powers of ten only: 1, 2, 3 … 9 tick labels overlap on a short axis
    assert fig.layout.title.text == f"Slice level · ECE {level['ece']:.3f}"
    # The legend sits above the plot, in the theme's colours, never over the data.
    assert fig.layout.legend.y > 1 and fig.layout.legend.bgcolor is None


def test_evaluate_writes_calibration_that_matches_the_predictions(zoo_catalog: Path) -> None:
    artifact = zoo_catalog.parent / "cnn-encdec"
    report = json.loads((artifact / "eval" / "calibration.json").read_text())
    data = load_dataset(DEMO_DIR, progress=False)
    rows = data.rows(evaluator.test_patients(artifact))
    model, config = load_artifact(artifact)
    probs = predict(model, data.images[rows], "segment", input_size=config["training"].get("input_size"))
    masks = data.masks[rows]
    pixel, slices = report["levels"]["pixel"], report["levels"]["slice"]
    assert pixel["samples"] == masks.size and slices["samples"] == len(rows)
    assert pixel["ece"] == pytest.approx(brute_force_ece(probs, masks, PIXEL_BINS), abs=1e-5)
    assert slices["ece"] == pytest.approx(
        brute_force_ece(probs.max(axis=(1, 2)), masks.any(axis=(1, 2)), SLICE_BINS), abs=1e-5)

    classifier = json.loads((zoo_catalog.parent / "resnet18" / "eval" / "calibration.json").read_text())
    assert set(classifier["levels"]) == {"slice"} and classifier["levels"]["slice"]["samples"] == len(rows)


def _record(artifact: Path) -> ModelRecord:
    return ModelRecord(artifact.name, artifact, json.loads((artifact / "config.json").read_text()))


def test_read_eval_reports_a_broken_calibration_file(zoo_catalog: Path, tmp_path: Path) -> None:
    artifact = shutil.copytree(zoo_catalog.parent / "cnn-encdec", tmp_path / "cnn-encdec")
    path = artifact / "eval" / "calibration.json"
    report = json.loads(path.read_text())
    tables, problem = read_eval(_record(artifact))
    assert problem is None and tables.calibration["levels"].keys() == report["levels"].keys() == {"pixel", "slice"}
    path.unlink()
    tables, problem = read_eval(_record(artifact))
    assert problem is None and tables.calibration is None  # evaluated before calibration existed
    broken = {"levels": {"pixel": report["levels"]["pixel"]}}
    path.write_text(json.dumps(broken))
    assert read_eval(_record(artifact)) == (None, "eval tables of cnn-encdec are unreadable: calibration.json lacks "
                                            "levels.slice.ece")
    broken["levels"]["slice"] = {**report["levels"]["slice"], "mean_prob": ["0.5"] * SLICE_BINS}
    path.write_text(json.dumps(broken))
    assert "levels.slice has malformed bins" in read_eval(_record(artifact))[1]
