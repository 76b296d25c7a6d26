"""How the Leaderboard's tables read on screen: column headers, tooltips and widths, the table styled with rounded
numbers, CIs and "–" for empty cells, and the per-institution table in words. The numbers come from
:mod:`lgg_core.evaluation.leaderboard`.
"""
from __future__ import annotations

import pandas as pd
from pandas.io.formats.style import Styler

from lgg_core.evaluation.leaderboard import CI_METRICS, EARLIER, EMPTY, is_missing, params_text, value_ci

# The columns the page shows, in this order (the latency next to the headline metric, so it is in view without
# scrolling, and the protocol, since rows trained under different ones compare budgets, not only architectures),
# with their headers and tooltips. Columns left out stay in the data for sorting and the figures.
LABELS = {
    "model": "Model",
    "patient_dice": "Per-patient Dice (95% CI)",
    "latency_ms": "Latency (ms/slice)",
    "timed_on": "Timed on",
    "protocol": "Protocol",
    "hd95": "HD95 (px)",
    "tumor_slice_dice": "Tumor-slice Dice (95% CI)",
    "accuracy": "Slice accuracy",
    "auroc": "AUROC (95% CI)",
    "patients": "Patients (n)",
    "params": "Parameters",
    "iou": "Tumor-slice IoU",
    "assd": "ASSD (px)",
    "kind": "Kind",
    "arch": "Architecture",
    "fold": "Fold",
    "train_cpu_min": "Training (CPU-min)",
    "status": "Status",
}
HELP = {
    "patient_dice": "3D volume Dice of each held-out patient, averaged over patients; percentile bootstrap 95% CI "
                    "over patients",
    "latency_ms": "One 256² slice per call, median of 5 calls after a warm-up, with the backend this server serves "
                  "the model through; shared by every session",
    "timed_on": "The engine, its precision and the device that were timed",
    "hd95": "95th-percentile Hausdorff distance in pixels, mean over tumor slices; a missed tumor slice counts as "
            "the image diagonal (362 px)",
    "tumor_slice_dice": "Dice averaged over slices with tumor; CI resamples patients",
    "accuracy": "Segmenters: how often the mask is empty exactly when the slice has no tumor. Classifiers: accuracy",
    "auroc": "Classifiers: area under the ROC curve of tumor presence; CI resamples patients",
    "patients": "Held-out patients the row was evaluated on",
    "iou": "Intersection over union averaged over slices with tumor",
    "assd": "Average symmetric surface distance in pixels, mean over tumor slices",
    "protocol": "The shared recipe and budget the model was trained under (docs/training.md): lgg-zoo-v1, the three "
                "sequences for 8 epochs; lgg-zoo-v2, FLAIR of slices n−1, n, n+1 for 16 epochs. "
                f"'{EARLIER}': trained before them under its own config, so its budget is not comparable",
    "train_cpu_min": "Process CPU time of training (all threads), in minutes; composites add up their parts",
    "kind": "model; post-processing of a model's masks (largest 3D component per patient, horizontal-flip TTA); "
            "gated pipeline (a classifier decides which slices keep the segmenter's mask)",
}
# Column widths in pixels where the automatic width would cut the text ("ONNX Runtime int8 · CPU").
WIDTHS = {"timed_on": 180}
LATENCY_COLUMNS = ("latency_ms", "timed_on")
"""Columns filled only once latency has been measured on this server."""


def _latency_text(ms: float) -> str:
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


_FORMATS = {
    "params": params_text, "fold": "{:.0f}", "patients": "{:.0f}", "train_cpu_min": "{:.0f}",
    "latency_ms": _latency_text, "hd95": "{:.1f}", "assd": "{:.1f}", "iou": "{:.3f}", "accuracy": "{:.3f}",
}


def styled(table: pd.DataFrame) -> Styler:
    """The leaderboard for display: numbers rounded, each CI metric shown as "value (low–high)", empty cells "–".

    The cells keep their numbers underneath, so sorting a column sorts by value; only the shown text changes. Show
    :data:`LABELS`' columns under its headers.
    """
    table = table.reset_index(drop=True)
    style = table.style.format(_FORMATS, na_rep=EMPTY, subset=[c for c in _FORMATS if c in table])
    style = style.format(na_rep=EMPTY, subset=[c for c in table if c not in _FORMATS])
    for metric in CI_METRICS:
        for i, (value, low, high) in table[[metric, f"{metric}_low", f"{metric}_high"]].iterrows():
            if not is_missing(value):
                style = style.format(lambda _, text=value_ci(value, low, high): text, subset=([i], [metric]))
    return style


def institution_display(breakdown: pd.DataFrame) -> pd.DataFrame:
    """The per-institution table in words: Institution, Model, Patients (n), Per-patient Dice (95% CI)."""
    return pd.DataFrame({
        "Institution": breakdown["institution"], "Model": breakdown["model"],
        "Patients (n)": breakdown["patients"],
        "Per-patient Dice (95% CI)": [value_ci(d, lo, hi) for d, lo, hi in
                                      breakdown[["dice", "ci_low", "ci_high"]].itertuples(index=False)],
    })
