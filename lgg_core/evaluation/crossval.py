"""Cross-validation results: pool the held-out patients of one model's K fold artifacts, each patient scored once.

Buda et al.'s protocol: per-patient volume Dice, averaged over patients. Every fold artifact holds its own
``eval/patients.csv`` (written by ``lgg evaluate`` on that fold's test patients); pooling them gives one score per
patient of the dataset, whose mean and median get a bootstrap CI over patients.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lgg_core.evaluation.metrics import bootstrap_ci
from lgg_core.serving.artifacts import read_config

VARIANT_NAMES = {"raw": "as predicted", "lcc": "largest 3D component", "tta": "flip TTA"}


def fold_patients(artifact_dirs: list[str | Path]) -> pd.DataFrame:
    """Per-patient rows of every fold's ``eval/patients.csv`` with a ``fold`` column.

    Raises:
        ValueError: a fold is not evaluated, two artifacts are the same fold, the folds come from different split
            settings or models, or a patient is held out by more than one fold (a leak between folds).
    """
    parts, seen = [], {}
    for directory in map(Path, artifact_dirs):
        table = directory / "eval" / "patients.csv"
        if not table.is_file():
            raise ValueError(f"{directory} is not evaluated: run `lgg evaluate {directory}` first")
        config = read_config(directory)
        training = config.get("training", {})
        key = (config.get("arch"), *(training.get(k) for k in ("k", "split_seed", "dataset_hash", "epochs",
                                                               "input_size")))
        fold = training.get("fold")
        if fold in seen:
            raise ValueError(f"{directory} and {seen[fold]} are both fold {fold}")
        seen[fold] = directory
        parts.append(pd.read_csv(table).assign(fold=fold, _key=str(key)))
    pooled = pd.concat(parts, ignore_index=True)
    if pooled["_key"].nunique() > 1:
        raise ValueError("the folds differ in architecture, k, split seed, dataset, epochs or input size: pool "
                         "one model's folds of one recipe only")
    twice = pooled[pooled["variant"] == "raw"]["patient"].duplicated(keep=False)
    if twice.any():
        names = sorted(set(pooled[pooled["variant"] == "raw"]["patient"][twice]))
        raise ValueError(f"{len(names)} patients are held out by more than one fold: {', '.join(names[:5])}")
    return pooled.drop(columns="_key")


def summary(pooled: pd.DataFrame, n_boot: int = 10_000) -> pd.DataFrame:
    """Mean and median per-patient Dice per variant with 95% bootstrap CIs over patients.

    Args:
        pooled: :func:`fold_patients`' table.
        n_boot: bootstrap resamples.

    Returns:
        One row per variant: ``variant``, ``folds``, ``patients``, ``mean``, ``mean_low``, ``mean_high``,
        ``median``, ``median_low``, ``median_high``, and ``reach_085`` (the share of patients whose Dice reaches 0.85).
    """
    rows = []
    for variant, group in pooled.groupby("variant", sort=False):
        dice = group["dice"].to_numpy(float)
        mean_ci = bootstrap_ci(dice, n_boot=n_boot)
        median_ci = bootstrap_ci(dice, n_boot=n_boot, statistic=np.nanmedian)
        rows.append({"variant": variant, "folds": group["fold"].nunique(), "patients": len(group),
                     "mean": float(np.nanmean(dice)), "mean_low": mean_ci[0], "mean_high": mean_ci[1],
                     "median": float(np.nanmedian(dice)), "median_low": median_ci[0], "median_high": median_ci[1],
                     "reach_085": float(np.mean(dice >= 0.85))})
    return pd.DataFrame(rows)


def summary_markdown(table: pd.DataFrame) -> str:
    """A markdown table of :func:`summary`."""
    lines = ["| variant | folds | patients | mean per-patient Dice (95% CI) | median (95% CI) | patients ≥ 0.85 |",
             "|---|---:|---:|---|---|---:|"]
    for r in table.itertuples(index=False):
        lines.append(f"| {VARIANT_NAMES.get(r.variant, r.variant)} | {r.folds} | {r.patients} | "
                     f"{r.mean:.3f} ({r.mean_low:.3f}–{r.mean_high:.3f}) | "
                     f"{r.median:.3f} ({r.median_low:.3f}–{r.median_high:.3f}) | {r.reach_085:.0%} |")
    return "\n".join(lines)
