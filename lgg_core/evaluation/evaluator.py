"""Evaluation on held-out patients: per-slice and per-patient tables plus a summary, stored with the artifact."""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from lgg_core.serving.artifacts import artifact_inputs, artifact_name, load_artifact, render_card, write_json, write_table
from lgg_core.data.cache import LGGData
from lgg_core.data.inputs import stack_inputs
from lgg_core.data.reader import MASK_SHAPE
from lgg_core.serving.artifact_config import ArtifactConfig
from lgg_core.serving.inference import predict, predict_plain_and_tta
from lgg_core.evaluation.calibration import SegmentationReliability, classification_calibration
from lgg_core.evaluation.metrics import classification_metrics
from lgg_core.evaluation.tables import ci_bounds, mask_tables, metrics_markdown, segmentation_summary
from lgg_core.serving.postprocess import largest_component
from lgg_core.serving.predictions import FILE_NAME as PREDICTIONS_FILE, save_masks
from lgg_core.data.splits import load_split

SEG_VARIANTS = ("raw", "lcc", "tta")
"""raw: threshold 0.5; lcc: keep the largest 3D connected component per patient; tta: horizontal-flip averaging."""


def test_patients(artifact_dir: str | Path) -> list[str]:
    """The held-out (test) patients recorded in the artifact's split.json."""
    return sorted(load_split(Path(artifact_dir) / "split.json")["roles"]["test"])


def _patient_probs(
    model: torch.nn.Module, data: LGGData, rows: np.ndarray, batch_size: int, input_size: int | None, inputs: str
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rows, plain, flip-TTA probabilities) of one patient at a time, ``rows`` grouped by patient.

    Only one patient's float maps (plus a batch) are held at once, where the whole test set's took ~430 MB. The
    batches are those of one ``predict_plain_and_tta`` call over all rows, so the numbers are the same.
    """
    patients = data.index["patient"].to_numpy()[rows]
    ends = iter([*(np.flatnonzero(patients[1:] != patients[:-1]) + 1).tolist(), len(rows)])
    end, first = next(ends), 0
    raw = tta = np.zeros((0, *MASK_SHAPE), np.float32)
    for start in range(0, len(rows), batch_size):
        batch_inputs = stack_inputs(data.images, data.index, inputs, rows[start:start + batch_size])
        batch = predict_plain_and_tta(model, batch_inputs, "segment", batch_size, input_size)
        raw, tta = np.concatenate([raw, batch[0]]), np.concatenate([tta, batch[1]])
        while end is not None and end <= start + len(batch[0]):
            k = end - first
            yield rows[first:end], raw[:k], tta[:k]
            raw, tta, first = raw[k:], tta[k:], end
            end = next(ends, None)


def _patient_tables(
    probs: dict[str, np.ndarray], data: LGGData, rows: np.ndarray
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Per variant: one patient's slice table, its per-patient row and its predicted masks."""
    raw = probs["raw"] > 0.5
    return mask_tables({"raw": raw, "lcc": largest_component(raw), "tta": probs["tta"] > 0.5}, data, rows)


def _evaluate_segmenter(
    model: torch.nn.Module, data: LGGData, rows: np.ndarray, batch_size: int, input_size: int | None, inputs: str
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, np.ndarray]]:
    """Slice and patient tables (variant by variant, patients in index order), calibration and predicted masks."""
    slices = {variant: [] for variant in SEG_VARIANTS}
    patients = {variant: [] for variant in SEG_VARIANTS}
    masks = {"raw": [], "tta": []}
    calibration = SegmentationReliability()
    for patient_rows, raw, tta in _patient_probs(model, data, rows, batch_size, input_size, inputs):
        tables, rows_of_patient, predicted = _patient_tables({"raw": raw, "tta": tta}, data, patient_rows)
        for variant in SEG_VARIANTS:
            slices[variant].append(tables[variant])
            patients[variant].append(rows_of_patient[variant])
        for variant, kept in masks.items():
            kept.append(predicted[variant])
        calibration.update(raw, data.masks[patient_rows])
    slice_table = pd.concat([t for variant in SEG_VARIANTS for t in slices[variant]], ignore_index=True)
    patient_table = pd.DataFrame([row for variant in SEG_VARIANTS for row in patients[variant]])
    return slice_table, patient_table, calibration.to_dict(), {v: np.concatenate(m) for v, m in masks.items()}


def _auroc_ci(y: np.ndarray, prob: np.ndarray, groups: np.ndarray, n_boot: int = 1000, seed: int = 0) -> list[float]:
    """Percentile bootstrap of AUROC over patients (resamples that hold one class only are skipped)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in ids]
    stats = []
    for _ in range(n_boot):
        idx = np.concatenate([members[i] for i in rng.integers(len(ids), size=len(ids))])
        if 0 < y[idx].sum() < len(idx):
            stats.append(roc_auc_score(y[idx], prob[idx]))
    return [float(v) for v in np.percentile(stats, [2.5, 97.5])] if stats else [float("nan")] * 2


def _classification_outputs(prob: np.ndarray, data: LGGData, rows: np.ndarray) -> tuple[pd.DataFrame, dict]:
    table = data.index.iloc[rows][["patient", "institution", "slice"]].reset_index(drop=True)
    y = data.index["has_tumor"].to_numpy()[rows].astype(int)
    table["true_tumor"], table["prob"], table["pred_tumor"] = y.astype(bool), prob, prob > 0.5
    groups = table["patient"].to_numpy()
    m = classification_metrics(y, prob)
    m["accuracy_ci"] = ci_bounds((table["pred_tumor"] == table["true_tumor"]).to_numpy(float), groups)
    m["auroc_ci"] = _auroc_ci(y, prob, groups)
    m.update(patients=int(len(np.unique(groups))), slices=int(len(y)), tumor_slices=int(y.sum()))
    return table, {"raw": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in m.items()}}


def headline(task: str, variants: dict[str, Any]) -> dict[str, float]:
    """The numbers that go into the card's model-index and the results tables (no post-processing)."""
    raw = variants["raw"]
    if task == "segment":
        return {k: raw[k] for k in ("patient_dice", "tumor_slice_dice", "hd95")}
    return {k: raw[k] for k in ("accuracy", "auroc", "f1")}


# What the tables and the card need from config.json's training record (written by training).
TRAINING_KEYS = ("dataset_hash", "fold", "patients", "wall_time_s")


def _require_training_record(config: dict[str, Any], artifact_dir: Path) -> None:
    training = ArtifactConfig.parse(config).training
    counts = (training.train_patients, training.val_patients, training.test_patients)
    if missing := [k for k in TRAINING_KEYS if (counts if k == "patients" else getattr(training, k)) is None]:
        raise ValueError(f"{artifact_dir}/config.json lacks training.{', training.'.join(missing)}: only artifacts "
                         "written by training can be evaluated")
    if None in counts:
        raise ValueError(f"{artifact_dir}/config.json training.patients must count train, val and test patients")


def evaluate(
    artifact_dir: str | Path,
    data: LGGData,
    patients: list[str] | None = None,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Evaluate an artifact on held-out patients and store ``eval/`` tables and the updated card in its folder.

    Args:
        artifact_dir: the artifact folder.
        data: the dataset holding those patients.
        patients: defaults to the test fold recorded in the artifact's split.json.
        batch_size: slices per forward pass.

    Also writes ``eval/calibration.json``: reliability bins and ECE of the raw probabilities
    (:mod:`lgg_core.evaluation.calibration`).

    Returns:
        The summary written to ``eval/summary.json``: ``task``, ``headline`` (the card's model-index numbers),
        ``variants`` (``raw``, and for segmenters ``lcc`` and ``tta``; see :data:`SEG_VARIANTS`), ``dataset_hash``
        and the evaluated ``patients``.
    """
    artifact_dir = Path(artifact_dir)
    model, config = load_artifact(artifact_dir)
    _require_training_record(config, artifact_dir)
    patients = patients or test_patients(artifact_dir)
    missing = sorted(set(patients) - set(data.patients))
    if missing:
        raise ValueError(f"{len(missing)} held-out patients are not in {data.root}: {', '.join(missing[:5])}")
    spec = ArtifactConfig.parse(config)
    if data.dataset_hash != spec.training.dataset_hash:
        warnings.warn("the data differs from the data the model was trained on (dataset hash mismatch)")
    rows = data.rows(patients)
    task, size, inputs = spec.task, spec.training.input_size, artifact_inputs(config)
    if task == "segment":
        slices, per_patient, calibration, masks = _evaluate_segmenter(model, data, rows, batch_size, size, inputs)
        variants = segmentation_summary(slices, per_patient)
        write_table(artifact_dir / "eval" / "patients.csv", per_patient)
        meta = data.index.iloc[rows]
        save_masks(artifact_dir / "eval" / PREDICTIONS_FILE, meta["patient"].to_numpy(), meta["slice"].to_numpy(),
                   masks)
    else:
        probs = predict(model, stack_inputs(data.images, data.index, inputs, rows), task, batch_size, size)
        slices, variants = _classification_outputs(probs, data, rows)
        calibration = classification_calibration(slices["prob"], slices["true_tumor"])
    summary = {"task": task, "headline": headline(task, variants), "variants": variants,
               "dataset_hash": data.dataset_hash, "patients": sorted(patients)}
    write_table(artifact_dir / "eval" / "slices.csv", slices)
    # Before summary.json: the app re-reads eval/ when that file's mtime changes.
    write_json(artifact_dir / "eval" / "calibration.json", calibration)
    write_json(artifact_dir / "eval" / "summary.json", summary)
    card = render_card(config, summary, metrics_markdown(summary), artifact_name(artifact_dir))
    (artifact_dir / "README.md").write_text(card)
    return summary
