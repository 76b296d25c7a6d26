"""The recipe search's table: what each lever buys on validation patients, and at what cost.

Every run of ``train/recipes.sh`` records each validation patient's Dice at its chosen epoch
(``training.val_patient_dice``). A run is compared with its fold's *baseline* (the same model and fold, trained on
the three sequences without modality dropout, with the fewest epochs), patient by patient: the paired mean difference
with a bootstrap 95% CI and the Wilcoxon p. Test patients are never read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lgg_core.evaluation.metrics import bootstrap_ci
from lgg_core.serving.artifact_config import ArtifactConfig, TrainingRecord
from lgg_core.evaluation.stats import format_p, paired_difference

LEVERS = ("inputs", "modality_dropout", "epochs", "input_size", "crop", "lr", "batch_size", "loss", "init_from")
"""Training fields a recipe may change; a run's ``changes`` column names those that differ from its baseline."""
_DEFAULTS = {"inputs": "sequences", "modality_dropout": 0.0}


@dataclass(frozen=True)
class RecipeRun:
    """One recipe-search run: its folder name, parsed config.json and each validation patient's Dice."""

    name: str
    spec: ArtifactConfig
    dice: pd.Series
    folder: Path

    @property
    def training(self) -> TrainingRecord:
        return self.spec.training

    def lever(self, field: str) -> Any:
        return getattr(self.training, field)

    @property
    def key(self) -> tuple[str, int]:
        return self.spec.arch, int(self.training.fold)


def read_run(folder: Path) -> RecipeRun:
    """The run recorded in ``folder/config.json``.

    Raises:
        ValueError: the record has no per-patient validation Dice (trained before it was recorded, or a classifier).
    """
    spec = ArtifactConfig.parse(json.loads((folder / "config.json").read_text()))
    if not spec.training.val_patient_dice:
        raise ValueError(f"{folder} records no per-patient validation Dice (train it with train/recipes.sh)")
    return RecipeRun(folder.name, spec, pd.Series(dict(spec.training.val_patient_dice), dtype=float).sort_index(),
                     folder)


def find_runs(paths: list[str | Path]) -> list[RecipeRun]:
    """Runs from artifact folders, or folders of them (``artifacts/recipes``), in name order.

    Raises:
        ValueError: a path holds no run.
    """
    runs = []
    for path in map(Path, paths):
        folders = [path] if (path / "config.json").is_file() else sorted(p.parent for p in path.glob("*/config.json"))
        if not folders:
            raise ValueError(f"{path} holds no recipe run (a folder with config.json, or a folder of them)")
        runs += [read_run(folder) for folder in folders]
    return sorted(runs, key=lambda r: r.name)


def baseline_of(run: RecipeRun, runs: list[RecipeRun]) -> RecipeRun | None:
    """The fold's baseline run for ``run`` (see the module docstring); None if the search has none."""
    plain = [r for r in runs if r.key == run.key and r.lever("inputs") == "sequences"
             and not r.lever("modality_dropout")]
    return min(plain, key=lambda r: (r.lever("epochs"), r.name), default=None)


def _changes(run: RecipeRun, base: RecipeRun | None) -> str:
    if base is None:  # a model the search ran only with levers pulled: name those, so the row still reads
        changed = [f"{f}={run.lever(f)}" for f in _DEFAULTS if run.lever(f) != _DEFAULTS[f]]
        return ", ".join(changed + ["no baseline run of this model"])
    changed = [f"{f}={run.lever(f)}" for f in LEVERS if run.lever(f) != base.lever(f)]
    return ", ".join(changed) or "baseline"


def _counted(epoch: int | None) -> int | None:
    """The 0-based epoch training records, counted from 1 as the table's epochs and :func:`recipe_curve` are."""
    return None if epoch is None else int(epoch) + 1


def recipe_table(runs: list[RecipeRun], apart: list[str] = (), n_boot: int = 10_000) -> pd.DataFrame:
    """One row per run: model, fold, changes, cost, validation Dice with its CI, the paired difference.

    Args:
        runs: :func:`find_runs`' runs.
        apart: patients whose scores are also shown on their own (those lacking a contrast sequence); each paired
            difference is then also given without them.
        n_boot: bootstrap resamples.
    """
    rows = []
    for run in runs:
        base = baseline_of(run, runs)
        low, high = bootstrap_ci(run.dice.to_numpy(), n_boot=n_boot)
        row = {"run": run.name, "model": run.key[0], "fold": run.key[1], "changes": _changes(run, base),
               "epochs": run.training.epochs_run, "best_epoch": _counted(run.training.best_epoch),
               "cpu_min": (run.training.cpu_time_s or np.nan) / 60, "patients": len(run.dice),
               "dice": float(run.dice.mean()), "dice_low": low, "dice_high": high,
               "apart": ", ".join(f"{p} {run.dice[p]:.2f}" for p in apart if p in run.dice.index)}
        if base is not None and base is not run:
            shared = run.dice.index.intersection(base.dice.index)
            diff = paired_difference(run.dice[shared].to_numpy(), base.dice[shared].to_numpy(), n_boot=n_boot)
            row.update(diff=diff["mean_diff"], diff_low=diff["ci_low"], diff_high=diff["ci_high"], p=diff["p"])
            if apart:  # does the lever help beyond the patients whose input lacks a sequence?
                whole = shared.difference(apart)
                diff = paired_difference(run.dice[whole].to_numpy(), base.dice[whole].to_numpy(), n_boot=n_boot)
                row.update(whole_diff=diff["mean_diff"], whole_low=diff["ci_low"], whole_high=diff["ci_high"])
        rows.append(row)
    return pd.DataFrame(rows)


def recipe_curve(runs: list[RecipeRun]) -> pd.DataFrame:
    """Validation per-patient Dice after every epoch of every run, against the CPU-minutes spent so far.

    ``epochs.csv`` times each epoch (wall seconds); the run's measured process CPU time (``training.cpu_time_s``) is
    shared out over its epochs in proportion, so the last epoch of a run lands on its recorded cost. One row per run
    and epoch: run, model, fold, changes (as in :func:`recipe_table`), epoch (1-based), cpu_min, dice.
    """
    rows = []
    for run in runs:
        epochs = pd.read_csv(run.folder / "epochs.csv")
        elapsed = epochs["seconds"].cumsum()
        cpu_s = run.training.cpu_time_s or run.training.wall_time_s or float(elapsed.iloc[-1])
        changes = _changes(run, baseline_of(run, runs))
        for (_, epoch), spent in zip(epochs.iterrows(), elapsed / elapsed.iloc[-1] * cpu_s / 60):
            rows.append({"run": run.name, "model": run.key[0], "fold": run.key[1], "changes": changes,
                         "epoch": int(epoch["epoch"]) + 1, "cpu_min": float(spent), "dice": float(epoch["val_score"])})
    return pd.DataFrame(rows)


def curve_markdown(curve: pd.DataFrame) -> str:
    """A markdown table of :func:`recipe_curve`."""
    return "\n".join(["| run | changes | epoch | CPU-min | validation per-patient Dice |", "|---|---|---:|---:|---:|",
                      *(f"| {r.run} | {r.changes} | {r.epoch} | {r.cpu_min:.1f} | {r.dice:.3f} |"
                        for r in curve.itertuples())])


def recipe_markdown(table: pd.DataFrame) -> str:
    """A markdown table of :func:`recipe_table`."""
    apart = "whole_diff" in table.columns
    lines = ["| run | model | fold | changes | epochs (best) | CPU-min | validation per-patient Dice (95% CI) | "
             "vs baseline (95% CI) | Wilcoxon p | patients lacking a sequence |"
             + (" vs baseline without them (95% CI) |" if apart else ""),
             "|---|---|---:|---|---:|---:|---|---|---|---|" + ("---|" if apart else "")]
    for r in table.to_dict("records"):
        p = format_p(r["p"]) if pd.notna(r.get("p")) else ""
        lines.append(f"| {r['run']} | {r['model']} | {r['fold']} | {r['changes']} | {r['epochs']} ({r['best_epoch']}) "
                     f"| {r['cpu_min']:.0f} | {r['dice']:.3f} ({r['dice_low']:.3f}–{r['dice_high']:.3f}) | "
                     f"{_versus(r, 'diff', 'diff_low', 'diff_high')} | {p} | {r['apart'] or '—'} |"
                     + (f" {_versus(r, 'whole_diff', 'whole_low', 'whole_high')} |" if apart else ""))
    return "\n".join(lines)


def _versus(row: dict, mean: str, low: str, high: str) -> str:
    return f"{row[mean]:+.3f} ({row[low]:+.3f} to {row[high]:+.3f})" if pd.notna(row.get(mean)) else ""
