"""Score predictions made elsewhere under the zoo's protocol, and test them against the zoo patient by patient.

The same rules as ``lgg evaluate``: per-slice metrics and per-patient volume Dice from the same code
(:func:`~lgg_core.evaluation.tables.mask_tables`), as predicted (``raw``) and with the largest 3D component kept
(``lcc``); flip TTA needs the model, so predictions have no ``tta`` variant. The patients are exactly those of the
chosen split: fold 0's 22 test patients (the zoo's held-out fold, ``fold0``), or all 110 each counted once (``cv``,
against the cross-validation runs). Every one of them must be there, every slice of each, and nothing else. The zoo's
side comes from its bundled per-patient table (:mod:`lgg_core.evaluation.reference`), so the comparison works from an
installed package as from a checkout.

Comparisons are many-to-one: the predictions against each zoo model (or CV run) on their shared patients, paired
bootstrap CI of the mean difference, Wilcoxon p, Holm over those k tests.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lgg_core.data.cache import LGGData
from lgg_core.data.inputs import stack_inputs
from lgg_core.data.external import Predictions, PredictedMasksError, listing, read_predictions_bytes
from lgg_core.evaluation.reference import fold0_patients, load_reference, others
from lgg_core.evaluation.tables import mask_tables, metrics_markdown, segmentation_summary
from lgg_core.evaluation.stats import (A_BETTER, B_BETTER, NO_DIFFERENCE, NO_PATIENTS, format_p, holm,
                                       paired_difference)
from lgg_core.serving.postprocess import largest_component
from lgg_core.serving.predictions import FILE_NAME as PREDICTIONS_FILE, save_masks
from lgg_core.serving.records import EvalTables, ModelRecord

SPLITS = ("fold0", "cv")
SPLIT_LABELS = {"fold0": "fold 0's 22 test patients, against the zoo's models",
                "cv": "every patient in the data folder, each once, against the cross-validation runs"}
YOURS = "yours: "
VARIANTS = ("raw", "lcc")
RECORD_KIND = "predictions"


@dataclass
class Scored:
    """The eval/ tables of scored predictions: as ``lgg evaluate`` writes them for an artifact."""

    slices: pd.DataFrame
    patients: pd.DataFrame
    summary: dict[str, Any]
    masks: dict[str, np.ndarray]
    meta: pd.DataFrame

    @cached_property
    def _position(self) -> dict[tuple[str, int], int]:
        return {(p, int(n)): i for i, (p, n) in enumerate(zip(self.meta["patient"], self.meta["slice"]))}

    def mask(self, patient: str, number: int, variant: str = "raw") -> np.ndarray | None:
        """The scored mask of one slice, or None when that slice was not scored."""
        position = self._position.get((patient, int(number)))
        return None if position is None else self.masks[variant][position]

    def dice(self, variant: str = "raw") -> pd.DataFrame:
        """Per-patient table (patient, institution, dice) of one variant."""
        table = self.patients[self.patients["variant"] == variant]
        return table[["patient", "institution", "dice"]].reset_index(drop=True)


def split_patients(split: str, data: LGGData, reference: pd.DataFrame) -> list[str]:
    """The patients a split scores: the zoo's held-out patients (fold 0's test fold), or every loaded one (``cv``).

    Args:
        split: ``fold0`` or ``cv``.
        data: the dataset holding the ground truth.
        reference: the zoo's per-patient table (:func:`~lgg_core.evaluation.reference.load_reference`), which
            names fold 0's patients whatever data is loaded.

    Raises:
        ValueError: an unknown split, or data that lacks some of fold 0's patients.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    # Patients of which only some slices are loaded (the dashboard's failure gallery) have no whole volume to score.
    whole = [p for p in data.patients if p not in data.partial]
    if split == "cv":
        if not whole:
            raise ValueError(f"{data.root} holds no whole patient volume to score")
        return whole
    patients = fold0_patients(reference)
    if missing := set(patients) - set(whole):
        raise ValueError(f"{len(missing)} of fold 0's {len(patients)} test patients are not in {data.root}: "
                         f"{listing(missing)}. Point the data folder to the whole kaggle_3m dataset")
    return patients


def default_split(data: LGGData | None) -> str:
    """``fold0`` when ``data`` holds every one of fold 0's test patients whole, else ``cv`` (e.g. the demo set)."""
    try:
        return "fold0" if data is not None and split_patients("fold0", data, load_reference()) else "cv"
    except ValueError:
        return "cv"


def check_coverage(pred: Predictions, data: LGGData, patients: list[str]) -> None:
    """Every patient of the split with every slice, and nothing else.

    Raises:
        PredictedMasksError: the missing or extra patients or slices, listed.
    """
    missing, extra = set(patients) - set(pred.masks), set(pred.masks) - set(patients)
    if missing:
        raise PredictedMasksError(f"{len(missing)} of the split's {len(patients)} patients have no predictions: "
                                  f"{listing(missing)}")
    if extra:
        raise PredictedMasksError(f"{len(extra)} patients are not in the split ({listing(extra)}): score only its "
                                  f"{len(patients)} patients, so that no training patient is counted")
    slices = data.index.groupby("patient")["slice"].apply(set)
    for patient in patients:
        given = set(pred.masks[patient])
        if lost := slices[patient] - given:
            raise PredictedMasksError(f"{patient} lacks predictions for {len(lost)} of its {len(slices[patient])} "
                                      f"slices: {listing({str(n) for n in lost})}")
        if unknown := given - slices[patient]:
            raise PredictedMasksError(f"{patient} has no slices numbered {listing({str(n) for n in unknown})} (it has "
                                      f"{len(slices[patient])})")


def predict_split(predictor: Any, data: LGGData, patients: list[str], batch_size: int = 16,
                  progress: Callable[[int, int], None] | None = None) -> Predictions:
    """Masks of a segmenter on ``patients``' slices: anything with ``inputs`` (what it takes:
    :data:`~lgg_core.data.inputs.INPUTS`) and ``predict(uint8 inputs) -> probabilities``.

    A model given by reference (e.g. :class:`~lgg_core.serving.onnx_backend.ForeignOnnxSegmenter`) is scored by
    :func:`score` like predictions made elsewhere, thresholded at 0.5 as the zoo's models are.

    Args:
        progress: Called with (slices done, slices in all) after each batch; it may raise to stop.
    """
    masks = {}
    numbers = data.index["slice"].to_numpy()
    total, done = len(data.rows(patients)), 0
    for patient in patients:
        rows = data.rows([patient])
        inputs = stack_inputs(data.images, data.index, predictor.inputs, rows)
        probs = []
        for start in range(0, len(rows), batch_size):
            probs.append(predictor.predict(inputs[start : start + batch_size], batch_size=batch_size))
            done += len(probs[-1])
            if progress is not None:
                progress(done, total)
        masks[patient] = {int(n): p > 0.5 for n, p in zip(numbers[rows], np.concatenate(probs))}
    return Predictions(masks)


def score(pred: Predictions, data: LGGData, patients: list[str]) -> Scored:
    """Score predictions on ``patients`` (checked first with :func:`check_coverage`)."""
    check_coverage(pred, data, patients)
    slices, table, masks = [], [], {v: [] for v in VARIANTS}
    for patient in sorted(patients):
        rows = data.rows([patient])
        raw = np.stack([pred.masks[patient][n] for n in data.index["slice"].to_numpy()[rows]])
        tables, per_patient, predicted = mask_tables({"raw": raw, "lcc": largest_component(raw)}, data, rows)
        slices += [tables[v] for v in VARIANTS]
        table += [per_patient[v] for v in VARIANTS]
        for v in VARIANTS:
            masks[v].append(predicted[v])
    slice_table = pd.concat(slices, ignore_index=True).sort_values("variant", kind="stable", key=_variant_order)
    patient_table = pd.DataFrame(table).sort_values("variant", kind="stable", key=_variant_order)
    meta = data.index.iloc[data.rows(sorted(patients))][["patient", "slice"]].reset_index(drop=True)
    summary = {"task": "segment", "variants": segmentation_summary(slice_table, patient_table),
               "dataset_hash": data.dataset_hash, "patients": sorted(patients)}
    return Scored(slice_table.reset_index(drop=True), patient_table.reset_index(drop=True), summary,
                  {v: np.concatenate(m) for v, m in masks.items()}, meta)


def _variant_order(column: pd.Series) -> pd.Series:
    return column.map(VARIANTS.index)


def write_record(out_dir: str | Path, scored: Scored, name: str, split: str, source: str,
                 notes: list[str]) -> Path:
    """Write the eval/ record of scored predictions (tables, summary, masks) and a config.json saying what it is."""
    from lgg_core.serving.artifacts import write_json, write_table  # imports torch, which scoring alone never needs

    out_dir = Path(out_dir)
    write_json(out_dir / "config.json", {"kind": RECORD_KIND, "name": name, "task": "segment", "split": split,
                                         "source": source, "notes": notes,
                                         "dataset_hash": scored.summary["dataset_hash"]})
    write_table(out_dir / "eval" / "patients.csv", scored.patients)
    write_table(out_dir / "eval" / "slices.csv", scored.slices)
    save_masks(out_dir / "eval" / PREDICTIONS_FILE, scored.meta["patient"].to_numpy(), scored.meta["slice"].to_numpy(),
               scored.masks)
    write_json(out_dir / "eval" / "summary.json", scored.summary)
    return out_dir


def compare(ours: pd.DataFrame, others: dict[str, pd.DataFrame], n_boot: int = 10_000,
            alpha: float = 0.05, name: str = "predictions") -> pd.DataFrame:
    """One set of per-patient scores against each other model on their shared patients, Holm over the k tests.

    Args:
        ours: per-patient (patient, dice) of the predictions (or of the model everything is compared with).
        others: name -> per-patient (patient, dice) of each model or CV run.
        n_boot: bootstrap resamples per comparison.
        alpha: significance level of the Holm-adjusted p-values.
        name: what ``ours`` is called in the verdicts.

    Returns:
        One row per model, best first: ``model``, ``n``, ``mean_ours``, ``mean_model``, ``mean_diff`` (ours − model),
        ``ci_low``, ``ci_high``, ``p``, ``p_holm``, ``verdict`` ("<name> better", "<model> better", "no significant
        difference", "no shared patients").
    """
    mine = ours.set_index("patient")["dice"]
    rows = []
    for model, table in others.items():
        theirs = table.set_index("patient")["dice"]
        shared = mine.index.intersection(theirs.index)
        diff = paired_difference(mine[shared].to_numpy(), theirs[shared].to_numpy(), n_boot=n_boot)
        rows.append({"model": model, "n": diff["n"], "mean_ours": diff["mean_a"], "mean_model": diff["mean_b"],
                     "mean_diff": diff["mean_diff"], "ci_low": diff["ci_low"], "ci_high": diff["ci_high"],
                     "p": diff["p"], "leaning": diff["leaning"]})
    table = pd.DataFrame(rows, columns=["model", "n", "mean_ours", "mean_model", "mean_diff", "ci_low", "ci_high",
                                        "p", "leaning"])
    table["p_holm"] = holm(table["p"])
    verdict = np.where(table["p_holm"] < alpha, np.where(table["leaning"] > 0, A_BETTER, B_BETTER), NO_DIFFERENCE)
    verdict = np.where(table["n"] == 0, NO_PATIENTS, verdict)
    table["verdict"] = [{A_BETTER: f"{name} better", B_BETTER: f"{m} better"}.get(v, v)
                        for v, m in zip(verdict, table["model"])]
    table = table.drop(columns="leaning").sort_values("mean_model", ascending=False, kind="stable")
    return table.reset_index(drop=True)


def scores_markdown(scored: Scored) -> str:
    """The summary's markdown table, as ``lgg evaluate`` prints it, with the variants named."""
    return metrics_markdown(scored.summary).replace("| lcc |", "| largest 3D component |")


def patients_markdown(scored: Scored) -> str:
    """Per-patient markdown table: Dice as predicted and with the largest 3D component, voxels, slices."""
    wide = scored.patients.pivot(index="patient", columns="variant", values="dice")
    raw = scored.patients[scored.patients["variant"] == "raw"].set_index("patient")
    lines = ["| patient | institution | slices | tumor voxels | predicted voxels | Dice | Dice, largest component |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {p} | {r.institution} | {r.slices} | {r.true_voxels} | {r.pred_voxels} | {wide.loc[p, 'raw']:.3f} "
              f"| {wide.loc[p, 'lcc']:.3f} |" for p, r in raw.iterrows()]
    return "\n".join(lines)


def compare_markdown(table: pd.DataFrame, ours: str = "yours") -> str:
    """A markdown table of :func:`compare`, the compared scores headed ``ours``."""
    lines = [f"| against | patients | theirs | {ours} | {ours} − theirs (95% CI) | Wilcoxon p | Holm p | verdict |",
             "|---|---:|---:|---:|---|---|---|---|"]
    lines += [f"| {r.model} | {r.n} | {r.mean_model:.3f} | {r.mean_ours:.3f} | {r.mean_diff:+.3f} "
              f"({r.ci_low:+.3f} to {r.ci_high:+.3f}) | {format_p(r.p)} | {format_p(r.p_holm)} | {r.verdict} |"
              for r in table.itertuples()]
    return "\n".join(lines)


@dataclass
class Submission:
    """A visitor's predictions scored on the dashboard: what ``lgg score-predictions`` prints, kept in memory."""

    name: str
    split: str
    scored: Scored
    comparison: pd.DataFrame
    notes: list[str]
    source: str = "predictions"  # or "model": a model run on this server (:mod:`lgg_core.evaluation.by_reference`)

    @property
    def label(self) -> str:
        """The row name on the page, marked as the visitor's own."""
        return YOURS + self.name

    def record(self) -> ModelRecord:
        """A record for the leaderboard's row builders: a segmenter with stored masks and no weights."""
        return ModelRecord(self.label, None, {"arch": f"your {self.source}", "task": "segment",
                                              "training": {"fold": 0 if self.split == "fold0" else None,
                                                           "protocol": f"your {self.source} (this session only)"}},
                           has_weights=False)

    def tables(self) -> EvalTables:
        return EvalTables(self.scored.summary, self.scored.slices, self.scored.patients)

    def scores_markdown(self) -> str:
        return scores_markdown(self.scored)


def score_submission(name: str, content: bytes, split: str, data: LGGData) -> Submission:
    """Score an uploaded .zip or .npz on ``split``'s patients of ``data`` and compare it with the zoo's table.

    Raises:
        ValueError: the file, the split or the data cannot be scored; the message is meant for the visitor
            (:class:`~lgg_core.data.external.PredictedMasksError` is one).
    """
    predictions = read_predictions_bytes(name, content)
    return submission(name.rsplit(".", 1)[0], predictions, split, data)


def submission(name: str, predictions: Predictions, split: str, data: LGGData,
               source: str = "predictions") -> Submission:
    """Score ``predictions`` on ``split``'s patients of ``data`` and compare them with the zoo's table.

    Raises:
        ValueError: the predictions do not cover the split's patients, or ``data`` lacks them.
    """
    reference = load_reference()
    scored = score(predictions, data, split_patients(split, data, reference))
    return Submission(name[:60] or "predictions", split, scored, compare(scored.dice(), others(reference, split)),
                      predictions.notes, source)


def comparison_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`compare`'s table with readable column names."""
    return pd.DataFrame({
        "Against": table["model"], "Patients": table["n"], "Theirs": table["mean_model"].round(3),
        "Yours": table["mean_ours"].round(3),
        "Yours − theirs (95% CI)": [f"{r.mean_diff:+.3f} ({r.ci_low:+.3f} to {r.ci_high:+.3f})"
                                    for r in table.itertuples()],
        "Holm p": [format_p(p) for p in table["p_holm"]], "Verdict": table["verdict"]})


def patients_display(scored: Scored) -> pd.DataFrame:
    """Per-patient table, worst first: Dice as predicted and with the largest 3D component, voxels."""
    raw = scored.patients[scored.patients["variant"] == "raw"].set_index("patient")
    lcc = scored.dice("lcc").set_index("patient")["dice"]
    table = pd.DataFrame({"Patient": raw.index, "Institution": raw["institution"], "Slices": raw["slices"],
                          "Dice": raw["dice"].round(3), "Dice, largest component": lcc[raw.index].round(3),
                          "Tumor voxels": raw["true_voxels"], "Predicted voxels": raw["pred_voxels"]})
    return table.sort_values("Dice", kind="stable").reset_index(drop=True)


def per_patient_csv(scored: Scored) -> bytes:
    """``patient,dice`` as ``lgg score-predictions --out`` writes it."""
    return scored.dice()[["patient", "dice"]].to_csv(index=False).encode()


@dataclass(frozen=True)
class WorstSlice:
    """One of the worst patients and its slice with the most wrong pixels (``row`` in the data, ``mask`` predicted)."""

    patient: str
    slice: int
    dice: float
    row: int
    mask: np.ndarray


def worst_slices(scored: Scored, data: LGGData, count: int = 3) -> list[WorstSlice]:
    """The ``count`` patients with the lowest Dice, each with its slice of most false positive + negative pixels."""
    slices = scored.slices[scored.slices["variant"] == "raw"].reset_index(drop=True)  # aligned with masks["raw"]
    worst = scored.dice().nsmallest(count, "dice")
    shown = []
    for patient, dice in zip(worst["patient"], worst["dice"]):
        i = int((slices["fp"] + slices["fn"]).where(slices["patient"] == patient).idxmax())
        number = int(slices.at[i, "slice"])
        rows = data.rows([patient])
        row = int(rows[data.index["slice"].to_numpy()[rows] == number][0])
        shown.append(WorstSlice(patient, number, float(dice), row, scored.masks["raw"][i]))
    return shown
