"""The evaluation's tables from predicted masks, and their markdown: numpy, pandas and scipy only.

Shared by ``lgg evaluate`` (:mod:`lgg_core.evaluation.evaluator`, which runs the model) and the scoring of predictions
made elsewhere (:mod:`lgg_core.evaluation.external`), which the dashboard does without importing torch.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lgg_core.data.cache import LGGData
from lgg_core.evaluation.metrics import batch_slice_metrics, bootstrap_ci, classification_metrics, volume_dice


def ci_bounds(values: np.ndarray, groups: np.ndarray | None = None) -> list[float]:
    """The percentile bootstrap 95% CI of the mean as a JSON-ready list (resampling ``groups`` when given)."""
    return [float(v) for v in bootstrap_ci(np.asarray(values, float), groups)]


def mask_tables(
    predicted: dict[str, np.ndarray], data: LGGData, rows: np.ndarray
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Per variant: one patient's slice table, its per-patient row and its masks, from bool masks of its ``rows``."""
    meta = data.index.iloc[rows][["patient", "institution", "slice"]].reset_index(drop=True)
    true = data.masks[rows]
    slices, patient, masks = {}, {}, {}
    for variant, pred in predicted.items():
        slices[variant] = pd.concat([meta, batch_slice_metrics(pred, true)], axis=1)
        slices[variant].insert(0, "variant", variant)
        patient[variant] = {
            "variant": variant, "patient": meta["patient"].iloc[0], "institution": meta["institution"].iloc[0],
            "dice": volume_dice(pred, true), "slices": len(rows),
            "tumor_slices": int(true.any(axis=(1, 2)).sum()),
            "true_voxels": int(true.sum()), "pred_voxels": int(pred.sum()),
        }
        masks[variant] = pred
    return slices, patient, masks


def segmentation_summary(slices: pd.DataFrame, patients: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant, s in slices.groupby("variant", sort=False):
        p = patients[patients["variant"] == variant]
        tumor = s[s["true_tumor"]]
        presence = classification_metrics(s["true_tumor"].to_numpy(), s["pred_tumor"].to_numpy().astype(float))
        out[variant] = {
            "patient_dice": float(p["dice"].mean()), "patient_dice_ci": ci_bounds(p["dice"]),
            "tumor_slice_dice": float(tumor["dice"].mean()),
            "tumor_slice_dice_ci": ci_bounds(tumor["dice"], tumor["patient"].to_numpy()),
            "tumor_slice_iou": float(tumor["iou"].mean()),
            "hd95": float(tumor["hd95"].mean()), "assd": float(tumor["assd"].mean()),
            "slice_dice": float(s["dice"].mean()),
            "presence_accuracy": presence["accuracy"], "presence_sensitivity": presence["recall"],
            "presence_specificity": float((~s["pred_tumor"] & ~s["true_tumor"]).sum() / max((~s["true_tumor"]).sum(), 1)),
            "false_positive_slices": int((s["pred_tumor"] & ~s["true_tumor"]).sum()),
            "false_negative_slices": int((~s["pred_tumor"] & s["true_tumor"]).sum()),
            "patients": int(len(p)), "slices": int(len(s)), "tumor_slices": int(len(tumor)),
        }
    return out


def metrics_markdown(summary: dict[str, Any]) -> str:
    """A markdown table of the summary, for the model card and the CLI."""
    if summary["task"] == "classify":
        r = summary["variants"]["raw"]
        return ("| accuracy (95% CI) | AUROC (95% CI) | precision | recall | F1 |\n|---|---|---|---|---|\n"
                f"| {r['accuracy']:.3f} ({r['accuracy_ci'][0]:.3f}–{r['accuracy_ci'][1]:.3f}) "
                f"| {r['auroc']:.3f} ({r['auroc_ci'][0]:.3f}–{r['auroc_ci'][1]:.3f}) "
                f"| {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |")
    lines = ["| variant | per-patient Dice (95% CI) | tumor-slice Dice (95% CI) | IoU | HD95 px | ASSD px |",
             "|---|---|---|---|---|---|"]
    for v, r in summary["variants"].items():
        lines.append(
            f"| {v} | {r['patient_dice']:.3f} ({r['patient_dice_ci'][0]:.3f}–{r['patient_dice_ci'][1]:.3f}) "
            f"| {r['tumor_slice_dice']:.3f} ({r['tumor_slice_dice_ci'][0]:.3f}–{r['tumor_slice_dice_ci'][1]:.3f}) "
            f"| {r['tumor_slice_iou']:.3f} | {r['hd95']:.1f} | {r['assd']:.1f} |")
    return "\n".join(lines)
