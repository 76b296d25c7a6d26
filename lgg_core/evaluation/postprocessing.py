"""Which post-processing, and what a 2.5D model loses on a lone slice: both measured on validation patients only.

For each recipe-search run (a trained artifact whose ``split.json`` names its validation patients), the validation
patients' volumes are predicted once and every :data:`~lgg_core.serving.postprocess.POSTPROCESSING` option is
applied to each patient's thresholded volume; a model that takes neighbours (``flair-2.5d``) is also run as the
Upload page runs it, each slice alone (:func:`~lgg_core.data.inputs.lone_slice_inputs`). Each variant is compared
with plain thresholding, patient by patient (paired bootstrap CI, Wilcoxon p). An option is worth adopting only when
it gains on every draw (every fold's validation patients) given. Test patients are never read.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from lgg_core.data.cache import LGGData
from lgg_core.data.inputs import lone_slice_inputs, stack_inputs
from lgg_core.data.splits import load_split
from lgg_core.evaluation.metrics import volume_dice
from lgg_core.evaluation.stats import format_p, paired_difference
from lgg_core.serving.artifact_config import ArtifactConfig
from lgg_core.serving.artifacts import artifact_inputs, load_artifact
from lgg_core.serving.inference import predict
from lgg_core.serving.postprocess import POSTPROCESSING

LONE = "lone slices"
"""The variant of a 2.5D run fed each slice alone, as an upload is."""


def validation_patients(folder: str | Path, data: LGGData) -> list[str]:
    """The run's validation patients (``split.json``), all of which must be in ``data``.

    Raises:
        ValueError: some are missing from the data.
    """
    patients = sorted(load_split(Path(folder) / "split.json")["roles"]["val"])
    if missing := sorted(set(patients) - set(data.patients)):
        raise ValueError(f"{len(missing)} validation patients of {folder} are not in {data.root}: "
                         f"{', '.join(missing[:5])}")
    return patients


def variant_dice(folder: str | Path, data: LGGData, batch_size: int = 16) -> pd.DataFrame:
    """Per validation patient (rows) and variant (columns: each post-processing option, and for a 2.5D model
    :data:`LONE`): the volume Dice of the run's masks, thresholded at 0.5."""
    model, config = load_artifact(folder)
    inputs, size = artifact_inputs(config), ArtifactConfig.parse(config).training.input_size
    table = {}
    for patient in validation_patients(folder, data):
        rows = data.rows([patient])
        truth = data.masks[rows] > 0
        mask = predict(model, stack_inputs(data.images, data.index, inputs, rows), "segment", batch_size, size) > 0.5
        table[patient] = {name: volume_dice(apply(mask), truth) for name, apply in POSTPROCESSING.items()}
        if inputs != "sequences":
            lone = predict(model, lone_slice_inputs(data.images[rows], inputs), "segment", batch_size, size) > 0.5
            table[patient][LONE] = volume_dice(lone, truth)
    return pd.DataFrame.from_dict(table, orient="index")


def variant_table(dice: dict[str, pd.DataFrame], n_boot: int = 10_000) -> pd.DataFrame:
    """One row per run and variant: mean validation Dice, and the paired difference with ``none`` (its CI, p).

    Args:
        dice: :func:`variant_dice` of each run, by run name.
        n_boot: bootstrap resamples.
    """
    rows = []
    for run, table in dice.items():
        for variant in table.columns:
            diff = paired_difference(table[variant].to_numpy(), table["none"].to_numpy(), n_boot=n_boot)
            rows.append({"run": run, "variant": variant, "patients": len(table), "dice": table[variant].mean(),
                         "diff": diff["mean_diff"], "diff_low": diff["ci_low"], "diff_high": diff["ci_high"],
                         "p": diff["p"]})
    return pd.DataFrame(rows)


def holds_everywhere(table: pd.DataFrame) -> pd.Series:
    """Per variant: whether it gains over ``none`` in every run given (every draw of validation patients)."""
    return table.groupby("variant", sort=False)["diff"].apply(lambda d: bool((d > 0).all()))


def variant_markdown(table: pd.DataFrame) -> str:
    """A markdown table of :func:`variant_table`, with whether each variant gains on every run."""
    holds = holds_everywhere(table)
    lines = ["| run | variant | patients | validation per-patient Dice | vs none (95% CI) | Wilcoxon p | "
             "gains on every run |", "|---|---|---:|---:|---|---|---|"]
    for r in table.to_dict("records"):
        versus = "" if r["variant"] == "none" else (
            f"{r['diff']:+.3f} ({r['diff_low']:+.3f} to {r['diff_high']:+.3f})")
        p = "" if r["variant"] == "none" else format_p(r["p"])
        gains = "" if r["variant"] == "none" else ("yes" if holds[r["variant"]] else "no")
        lines.append(f"| {r['run']} | {r['variant']} | {r['patients']} | {r['dice']:.3f} | {versus} | {p} | {gains} |")
    return "\n".join(lines)
