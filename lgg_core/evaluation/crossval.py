"""Cross-validation results: pool the held-out patients of one model's K fold artifacts, each patient scored once.

Buda et al.'s protocol: per-patient volume Dice, averaged over patients. Every fold artifact holds its own
``eval/patients.csv`` (written by ``lgg evaluate`` on that fold's test patients); pooling them gives one score per
patient of the dataset, whose mean and median get a bootstrap CI over patients.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from lgg_core.evaluation.metrics import bootstrap_ci
from lgg_core.evaluation.stats import format_p, paired_difference, pairs_table_markdown, pairwise
from lgg_core.serving.artifact_config import ArtifactConfig
from lgg_core.serving.catalog import crossval_command

VARIANT_NAMES = {"raw": "as predicted", "lcc": "largest 3D component", "tta": "flip TTA"}


def read_config(directory: Path) -> dict:
    """A fold artifact's ``config.json``, read as plain JSON: pooling needs no model, so no torch import."""
    config = json.loads((directory / "config.json").read_text())
    if not isinstance(config, dict):
        raise ValueError(f"{directory / 'config.json'} is not a JSON object")
    return config


def fold_dirs(paths: list[str | Path]) -> list[Path]:
    """Fold artifact folders: each path itself, or, for a run folder as ``train/cv.sh`` writes it, its ``fold-*``.

    Raises:
        ValueError: a path is neither an artifact (``config.json``) nor a folder holding ``fold-*`` artifacts.
    """
    folders = []
    for path in map(Path, paths):
        if (path / "config.json").is_file():
            folders.append(path)
            continue
        inside = sorted((d for d in path.glob("fold-*") if (d / "config.json").is_file()),
                        key=lambda d: (len(d.name), d.name))
        if not inside:
            raise ValueError(f"{path} is neither a fold artifact (config.json) nor a run folder with fold-* "
                             "artifacts")
        folders.extend(inside)
    return folders


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
        spec = ArtifactConfig.parse(read_config(directory))
        t, started = spec.training, spec.training.init_from  # a continued run's folds start from one earlier run's
        key = (spec.arch, t.k, t.split_seed, t.dataset_hash, t.epochs, t.input_size,
               started and str(Path(started).parent))
        fold = t.fold
        if fold in seen:
            raise ValueError(f"{directory} and {seen[fold]} are both fold {fold}")
        seen[fold] = directory
        rows = pd.read_csv(table)
        if missing := sorted({"variant", "patient", "dice"} - set(rows.columns)):
            raise ValueError(f"{table} lacks the column(s) {', '.join(missing)}: re-run `lgg evaluate {directory}`")
        parts.append(rows.assign(fold=fold, _key=str(key)))
    pooled = pd.concat(parts, ignore_index=True)
    if pooled["_key"].nunique() > 1:
        raise ValueError("the folds differ in architecture, k, split seed, dataset, epochs, input size or the run "
                         "they continued from: pool "
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
        # The same medians without NaN, but nanmedian goes through masked arrays: 0.6 s of a cold Leaderboard.
        median_ci = bootstrap_ci(dice, n_boot=n_boot, statistic=np.nanmedian if np.isnan(dice).any() else np.median)
        rows.append({"variant": variant, "folds": group["fold"].nunique(), "patients": len(group),
                     "mean": float(np.nanmean(dice)), "mean_low": mean_ci[0], "mean_high": mean_ci[1],
                     "median": float(np.nanmedian(dice)), "median_low": median_ci[0], "median_high": median_ci[1],
                     "reach_085": float(np.mean(dice >= 0.85))})
    return pd.DataFrame(rows)


def expected_folds(fold_artifacts: list[Path]) -> int:
    """K of the split the folds come from (every fold shares it: :func:`fold_patients` checks)."""
    return int(ArtifactConfig.parse(read_config(fold_artifacts[0])).training.k or len(fold_artifacts))


def training_cpu_minutes(fold_artifacts: list[Path]) -> float | None:
    """CPU-minutes of training behind these folds: each fold's own, plus what it started from when that artifact is
    at hand (the classifier ``train/cv.sh`` trains for a fold's encoder, the fold a longer run continues). None when a
    record lacks its CPU time. Measured on whatever shared the cores, so a busy machine adds to it."""
    total = 0.0
    for fold in fold_artifacts:
        seconds = _cpu_seconds(fold, set())
        if seconds is None:
            return None
        total += seconds
    return total / 60


def _cpu_seconds(artifact: Path, seen: set[Path]) -> float | None:
    seen.add(artifact.resolve())
    training = ArtifactConfig.parse(read_config(artifact)).training
    if not isinstance(training.cpu_time_s, (int, float)):
        return None
    total = float(training.cpu_time_s)
    for start in filter(None, (training.init_from, training.encoder_init)):
        source = _located(artifact, start)
        if source is None or source.resolve() in seen:  # a hub id, or a folder not shipped: its cost is unknown
            continue
        if (earlier := _cpu_seconds(source, seen)) is None:
            return None
        total += earlier
    return total


def _located(artifact: Path, start: str) -> Path | None:
    """The artifact folder ``start`` names, as training resolved it: relative to the directory it ran from, which is
    an ancestor of ``artifact`` (the repository root), or absolute."""
    candidates = [Path(start)] if Path(start).is_absolute() else [a / start for a in artifact.resolve().parents]
    return next((c for c in candidates if (c / "config.json").is_file()), None)


def evaluated(fold_artifacts: list[Path]) -> list[Path]:
    """The folds whose ``eval/patients.csv`` exists: a run in progress pools only these."""
    return [d for d in fold_artifacts if (d / "eval" / "patients.csv").is_file()]


def summary_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`summary` as text columns, one row per variant, for a page or a markdown table."""
    return pd.DataFrame({
        "variant": [VARIANT_NAMES.get(v, v) for v in table["variant"]],
        "folds": table["folds"], "patients": table["patients"],
        "mean per-patient Dice (95% CI)": [_mean_text(r) for r in table.itertuples()],
        "median (95% CI)": [_median_text(r) for r in table.itertuples()],
        "patients ≥ 0.85": [f"{share:.0%}" for share in table["reach_085"]],
    })


def _mean_text(row) -> str:
    return f"{row.mean:.3f} ({row.mean_low:.3f}–{row.mean_high:.3f})"


def _median_text(row) -> str:
    return f"{row.median:.3f} ({row.median_low:.3f}–{row.median_high:.3f})"


def markdown(table: pd.DataFrame) -> str:
    """A table of text and numbers as markdown, numbers right-aligned."""
    aligns = ["---:" if pd.api.types.is_numeric_dtype(dtype) else "---" for dtype in table.dtypes]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "|".join(aligns) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def paired_against(pooled: pd.DataFrame, other: pd.DataFrame, n_boot: int = 10_000) -> pd.DataFrame:
    """Per variant, ``pooled`` − ``other`` per-patient Dice on the patients both hold out (e.g. a longer recipe against
    the shorter one): :func:`~lgg_core.evaluation.stats.paired_difference` of each variant."""
    rows = []
    for variant, group in pooled.groupby("variant", sort=False):
        mine = group.set_index("patient")["dice"]
        theirs = other[other["variant"] == variant].set_index("patient")["dice"]
        shared = mine.index.intersection(theirs.index)
        rows.append({"variant": variant,
                     **paired_difference(mine[shared].to_numpy(), theirs[shared].to_numpy(), n_boot=n_boot)})
    return pd.DataFrame(rows)


def paired_markdown(table: pd.DataFrame) -> str:
    """A markdown table of :func:`paired_against`."""
    lines = ["| variant | patients | mean | against | difference (95% CI) | Wilcoxon p |",
             "|---|---:|---:|---:|---|---|"]
    lines += [f"| {VARIANT_NAMES.get(r.variant, r.variant)} | {r.n} | {r.mean_a:.3f} | {r.mean_b:.3f} | "
              f"{r.mean_diff:+.3f} ({r.ci_low:+.3f} to {r.ci_high:+.3f}) | {format_p(r.p)} |"
              for r in table.itertuples()]
    return "\n".join(lines)


def summary_markdown(table: pd.DataFrame) -> str:
    """A markdown table of :func:`summary`."""
    return markdown(summary_display(table))


@dataclass(frozen=True)
class RunReport:
    """What a cross-validation run folder holds so far; ``problem`` set (and no tables) when it cannot be pooled."""

    name: str
    folder: Path
    folds: int
    expected: int
    pooled: pd.DataFrame | None = None
    table: pd.DataFrame | None = None
    problem: str | None = None
    cpu_minutes: float | None = None


def runs_display(reports: list[RunReport]) -> pd.DataFrame:
    """One row per pooled run, best mean first: folds (a run still training says so), patients, mean and median
    per-patient Dice as predicted with their CIs, the share of patients at 0.85 or more, the post-processed variants'
    means, the CPU-minutes of training so far (:func:`training_cpu_minutes`) and the ``train/cv.sh`` call that makes
    it. Runs that could not be pooled are left out."""
    rows = []
    for report in (r for r in reports if r.table is not None):
        variants = report.table.set_index("variant")
        raw = next(variants.loc[["raw"]].itertuples())
        rows.append({"Run": report.name,
                     "Folds": f"{report.folds} of {report.expected}" + (
                         "" if report.folds >= report.expected else " (running)"),
                     "Patients": int(raw.patients), "Mean per-patient Dice (95% CI)": _mean_text(raw),
                     "Median (95% CI)": _median_text(raw), "Patients ≥ 0.85": f"{raw.reach_085:.0%}",
                     **{f"+ {VARIANT_NAMES[v]}": f"{variants.loc[v, 'mean']:.3f}" if v in variants.index else "–"
                        for v in ("lcc", "tta")},
                     "Training (CPU-min)": "–" if report.cpu_minutes is None else f"{report.cpu_minutes:,.0f}",
                     "Reproduce": crossval_command(report.folder), "_mean": raw.mean})
    table = pd.DataFrame(rows)
    return table if table.empty else table.sort_values("_mean", ascending=False).drop(columns="_mean")


def complete(reports: list[RunReport]) -> list[RunReport]:
    """The runs whose every fold is evaluated: only they are compared with each other, so that the family of tests,
    and each Holm-adjusted p, does not change with every fold that lands in a run still training."""
    return [r for r in reports if r.pooled is not None and r.folds >= r.expected]


def compare_runs(reports: list[RunReport], variant: str = "raw", n_boot: int = 10_000) -> pd.DataFrame:
    """Every pair of complete cross-validation runs on the patients both hold out: the paired difference in
    per-patient Dice with a bootstrap CI, the Wilcoxon p and Holm over the pairs
    (:func:`~lgg_core.evaluation.stats.pairwise`).

    Args:
        reports: :func:`run_report`'s reports; runs that could not be pooled or are still training are left out.
        variant: ``raw`` (as predicted), ``lcc`` or ``tta``.
        n_boot: bootstrap resamples per pair.
    """
    parts = [r.pooled.loc[r.pooled["variant"] == variant, ["patient", "dice"]].assign(model=r.name)
             for r in complete(reports)]
    values = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["model", "patient", "dice"])
    return pairwise(values, n_boot=n_boot)


def runs_markdown(reports: list[RunReport], n_boot: int = 10_000) -> str:
    """:func:`compare_runs` as markdown under a line saying what was tested (per-patient Dice as predicted)."""
    pairs = compare_runs(reports, n_boot=n_boot)
    if pairs.empty:
        return "Comparing cross-validation runs needs at least two complete runs."
    heading = ("Complete cross-validation runs against each other, per-patient Dice as predicted, on the patients "
               f"both hold out: mean A − B with a paired bootstrap 95% CI over patients ({n_boot:,} resamples), two-sided "
               f"Wilcoxon signed-rank p, Holm–Bonferroni over all pairs (m = {len(pairs)}), verdict at α = 0.05 "
               "after Holm.")
    return "\n".join([heading, "", *pairs_table_markdown(pairs)])


def pool_run(name: str, folder: Path) -> RunReport:
    """The evaluated folds of ``train/cv.sh``'s run ``folder`` pooled, without the summary table (its bootstraps are
    the costly part); a run in progress reports the folds so far."""
    try:
        folds = fold_dirs([folder])
        done = evaluated(folds)
        if not done:
            return RunReport(name, folder, 0, expected_folds(folds), problem=f"no fold of {folder} is evaluated yet")
        return RunReport(name, folder, len(done), expected_folds(done), fold_patients(done),
                         cpu_minutes=training_cpu_minutes(done))
    except (OSError, ValueError) as err:
        return RunReport(name, folder, 0, 0, problem=f"cross-validation run {name!r}: {err}")


def run_report(name: str, folder: Path, n_boot: int = 10_000) -> RunReport:
    """:func:`pool_run` with its :func:`summary` table."""
    report = pool_run(name, folder)
    return report if report.pooled is None else replace(report, table=summary(report.pooled, n_boot))
