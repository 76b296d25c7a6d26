"""Calibration: reliability diagrams and expected calibration error (ECE) of a model's tumor probabilities.

Statistics are per-bin sums that :meth:`ReliabilityStats.update` accumulates batch by batch, so every pixel of the
held-out slices counts without all of them being held at once. torchmetrics' ``BinaryCalibrationError`` was
considered and left out: it keeps every sample until ``compute`` (tens of millions of pixels here) and returns only
the scalar, not the per-bin numbers a reliability diagram needs; the sums below are three ``np.bincount`` calls.

Levels written to ``eval/calibration.json`` by :func:`lgg_core.evaluation.evaluator.evaluate` (raw predictions):

- ``pixel`` (segmenters): every pixel's tumor probability against its mask label.
- ``slice``: a classifier's tumor probability; for a segmenter the slice's highest pixel probability, because that
  exceeding 0.5 is exactly when the slice gets a non-empty mask (``pred_tumor`` in ``eval/slices.csv``).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

PIXEL_BINS = 20
SLICE_BINS = 10  # a few hundred test slices: wider bins keep each one populated
UNSURE_MIN_PROB = 0.05
"""Lower edge of the pixel level's second ECE, which leaves out confident background (a bin edge of PIXEL_BINS).

Chosen on the prediction only: restricting to tumor pixels as well would select on the label, and then even a
perfectly calibrated model would show an error in the low bins."""
LEVEL_NAMES = {"pixel": "Pixel level", "slice": "Slice level"}


@dataclass
class ReliabilityStats:
    """Per-bin sums over equal-width probability bins ``[b/n, (b+1)/n)`` (the last one closed).

    Attributes:
        n_bins: number of bins.
        count: samples per bin.
        prob_sum: sum of the predicted probabilities per bin.
        positive_sum: positive labels per bin.
        squared_error: sum of (probability - label)² over all samples (the Brier score's numerator).
    """

    n_bins: int = 15
    count: np.ndarray = field(init=False)
    prob_sum: np.ndarray = field(init=False)
    positive_sum: np.ndarray = field(init=False)
    squared_error: float = 0.0

    def __post_init__(self) -> None:
        self.count = np.zeros(self.n_bins, np.int64)
        self.prob_sum = np.zeros(self.n_bins)
        self.positive_sum = np.zeros(self.n_bins, np.int64)

    def update(self, prob: ArrayLike, target: ArrayLike) -> ReliabilityStats:
        """Add samples: probabilities in [0, 1] and binary labels of the same shape (any shape).

        Raises:
            ValueError: shapes differ or a probability is outside [0, 1] (NaN included).
        """
        p = np.asarray(prob, np.float64).ravel()
        y = np.asarray(target).ravel().astype(bool)
        if p.shape != y.shape:
            raise ValueError(f"{p.size} probabilities but {y.size} labels")
        if not np.all((p >= 0) & (p <= 1)):
            raise ValueError("probabilities must lie in [0, 1]")
        bins = np.minimum((p * self.n_bins).astype(np.intp), self.n_bins - 1)
        self.count += np.bincount(bins, minlength=self.n_bins)
        self.prob_sum += np.bincount(bins, weights=p, minlength=self.n_bins)
        self.positive_sum += np.bincount(bins[y], minlength=self.n_bins)
        self.squared_error += float(np.square(p - y).sum())
        return self

    @property
    def edges(self) -> np.ndarray:
        """The n_bins + 1 bin edges."""
        return np.linspace(0.0, 1.0, self.n_bins + 1)

    @property
    def samples(self) -> int:
        """Samples added so far."""
        return int(self.count.sum())

    def mean_prob(self) -> np.ndarray:
        """Mean predicted probability per bin (NaN where empty)."""
        with np.errstate(invalid="ignore"):
            return self.prob_sum / self.count

    def frequency(self) -> np.ndarray:
        """Observed share of positives per bin (NaN where empty)."""
        with np.errstate(invalid="ignore"):
            return self.positive_sum / self.count

    def _first_bin(self, min_prob: float) -> int:
        first = round(min_prob * self.n_bins)
        if not 0 <= first < self.n_bins or abs(first / self.n_bins - min_prob) > 1e-9:
            raise ValueError(f"min_prob {min_prob} is not the lower edge of one of {self.n_bins} bins")
        return first

    def ece(self, min_prob: float = 0.0) -> float:
        """Expected calibration error: the bins' |mean probability - frequency|, weighted by their sample share.

        Args:
            min_prob: only bins from this lower edge up count (their shares renormalised).

        Returns:
            The ECE in [0, 1]; NaN without samples in those bins.
        """
        first = self._first_bin(min_prob)
        n = self.count[first:].sum()
        gap = np.abs(self.prob_sum[first:] - self.positive_sum[first:]).sum()
        return float(gap / n) if n else float("nan")

    def mce(self, min_prob: float = 0.0) -> float:
        """Maximum calibration error: the largest |mean probability - frequency| of a non-empty bin (NaN if none)."""
        first = self._first_bin(min_prob)
        filled = self.count[first:] > 0
        gaps = np.abs(self.mean_prob() - self.frequency())[first:][filled]
        return float(gaps.max()) if gaps.size else float("nan")

    def brier(self) -> float:
        """Mean squared difference between probability and label over all samples (NaN without samples)."""
        return self.squared_error / self.samples if self.samples else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready bins (``null`` for empty ones) and scores."""
        def listed(values: np.ndarray) -> list[float | None]:
            return [None if np.isnan(v) else float(v) for v in values]

        return {"n_bins": self.n_bins, "samples": self.samples, "edges": self.edges.tolist(),
                "count": self.count.tolist(), "mean_prob": listed(self.mean_prob()),
                "frequency": listed(self.frequency()), "ece": self.ece(), "mce": self.mce(), "brier": self.brier()}


def _chunks(n: int, size: int) -> Iterator[slice]:
    return (slice(start, start + size) for start in range(0, n, size))


@dataclass
class SegmentationReliability:
    """Pixel- and slice-level :class:`ReliabilityStats` of a segmenter, fed a few slices at a time.

    A segmenter's slice-level tumor probability is its highest pixel probability.
    """

    pixel: ReliabilityStats = field(default_factory=lambda: ReliabilityStats(PIXEL_BINS))
    slices: ReliabilityStats = field(default_factory=lambda: ReliabilityStats(SLICE_BINS))

    def update(self, probs: np.ndarray, masks: np.ndarray, chunk: int = 32) -> SegmentationReliability:
        """Add (N, H, W) tumor probabilities and their masks (non-zero = tumor).

        Args:
            probs: tumor probabilities.
            masks: ground truth of the same shape.
            chunk: slices per update, which bounds the float64 copies made on the way.
        """
        for part in _chunks(len(probs), chunk):
            p, m = probs[part], masks[part]
            self.pixel.update(p, m)
            self.slices.update(p.max(axis=(1, 2)), m.any(axis=(1, 2)))
        return self

    def to_dict(self) -> dict[str, Any]:
        """``{"levels": {"pixel": ..., "slice": ...}}`` with :meth:`ReliabilityStats.to_dict` per level; the pixel
        level also has ``unsure``: ECE and MCE over the pixels with probability at least :data:`UNSURE_MIN_PROB`."""
        first = self.pixel._first_bin(UNSURE_MIN_PROB)
        unsure = {"min_prob": UNSURE_MIN_PROB, "samples": int(self.pixel.count[first:].sum()),
                  "ece": self.pixel.ece(UNSURE_MIN_PROB), "mce": self.pixel.mce(UNSURE_MIN_PROB)}
        return {"levels": {"pixel": {**self.pixel.to_dict(), "unsure": unsure}, "slice": self.slices.to_dict()}}


def segmentation_calibration(probs: np.ndarray, masks: np.ndarray, chunk: int = 32) -> dict[str, Any]:
    """:meth:`SegmentationReliability.to_dict` of a segmenter's (N, H, W) tumor probabilities against the masks."""
    return SegmentationReliability().update(probs, masks, chunk).to_dict()


def classification_calibration(prob: ArrayLike, target: ArrayLike) -> dict[str, Any]:
    """Slice-level calibration of a classifier's tumor probabilities: ``{"levels": {"slice": ...}}``."""
    return {"levels": {"slice": ReliabilityStats(SLICE_BINS).update(prob, target).to_dict()}}


def format_score(value: Any) -> str:
    """A score to three decimals, "–" when missing."""
    return f"{value:.3f}" if isinstance(value, (int, float)) and np.isfinite(value) else "–"


def _count(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, (int, float)) and np.isfinite(value) else "?"


def calibration_metrics(calibration: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, ECE, tooltip with MCE, Brier score and sample count) for each ECE of a calibration report."""
    out = []
    for name, level in calibration["levels"].items():
        unit = "pixels" if name == "pixel" else "slices"
        label = f"{LEVEL_NAMES.get(name, name)} ECE" + (", all pixels" if name == "pixel" else "")
        out.append((label, format_score(level["ece"]), f"MCE {format_score(level.get('mce'))} · Brier score "
                    f"{format_score(level.get('brier'))} · {_count(level.get('samples'))} {unit}"))
        if name == "pixel" and isinstance(unsure := level.get("unsure"), dict):
            out.append((f"{LEVEL_NAMES[name]} ECE, p ≥ {UNSURE_MIN_PROB:g}", format_score(unsure.get("ece")),
                        f"MCE {format_score(unsure.get('mce'))} · {_count(unsure.get('samples'))} pixels"))
    return out


def calibration_caption(calibration: dict[str, Any]) -> str:
    """What the ECE numbers of a calibration report mean, for the dashboard."""
    text = ("ECE (expected calibration error) is the gap between the predicted tumor probability and how often "
            "there was tumor, averaged over the probability bins weighted by their counts: 0 means the "
            "probabilities can be taken at face value, 0.10 that they are off by 10 points on average. "
            "Held-out (test) patients, raw predictions without post-processing. ")
    if "pixel" in calibration["levels"]:
        text += ("Over all pixels the ECE looks tiny because background pixels predicted at p≈0 make up nearly all "
                 f"of them; the ECE for p ≥ {UNSURE_MIN_PROB:g} leaves those confident background pixels out (the "
                 "cut is made on the prediction, not the mask, so a calibrated model still scores 0). At slice "
                 "level a segmenter's tumor probability is its highest pixel probability: above 0.5 the slice "
                 "gets a mask.")
    return text
