"""Store an artifact's weights as int8 per channel, kept only when its held-out scores do not move.

int8 per channel (:func:`lgg_core.models.hub_model.save_weights`) halves a float16 file, so more trained models fit
the repository's weight budget. It ships only when evaluation on the artifact's held-out test patients proves it
harmless: both the original and the int8 weights are evaluated there with the same code, and the int8 ones are kept
when each headline score (segmenters: mean per-patient Dice; classifiers: slice accuracy and AUROC) stays within a
tolerance of the original's. The artifact then holds the int8 weights, the ``eval/`` tables and card of those
weights, and both scores in ``config.json`` under ``training.weights_quantization``; otherwise it is left as it was.

Example::

    result = quantize_artifact("artifacts/unet", load_dataset("/data/kaggle_3m"))
    result.accepted, result.scores["patient_dice"]
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.constants import SAFETENSORS_SINGLE_FILE

from lgg_core.data.cache import LGGData
from lgg_core.evaluation.evaluator import evaluate
from lgg_core.evaluation.tables import metrics_markdown
from lgg_core.models.hub_model import INT8_PER_CHANNEL, save_weights, stored_quantization
from lgg_core.serving.artifact_config import ArtifactConfig
from lgg_core.serving.artifacts import (artifact_name, commit_copy, load_artifact, read_config, render_card,
                                       staged_copy)
from lgg_core.serving.cpu_paths import INT8_FILE, QUALITY_TOLERANCE, SERVING_FILE
from lgg_core.serving.hub import ONNX_FILE

# Headline scores that must not move, per task (keys of eval/summary.json's "headline").
SCORES = {"segment": ("patient_dice",), "classify": ("accuracy", "auroc")}
# Files computed from the old weights: they would be stale (never served, see onnx_status), so they are not kept.
DERIVED_FILES = (ONNX_FILE, INT8_FILE, SERVING_FILE)


@dataclasses.dataclass
class QuantizeResult:
    """What :func:`quantize_artifact` did.

    Attributes:
        path: The artifact that holds the int8 weights when accepted (the original, or ``out``).
        accepted: Whether every score stayed within the tolerance (the int8 weights were written).
        scores: Score name -> (original, int8) on the held-out patients.
        tolerance: The largest change allowed.
        bytes: (original, int8) size of model.safetensors.
        dropped: Files derived from the old weights that the int8 artifact no longer has.
        referrers: Sibling artifacts assembled from this one, whose evaluation still describes the old weights.
    """

    path: Path
    accepted: bool
    scores: dict[str, tuple[float, float]]
    tolerance: float
    bytes: tuple[int, int]
    dropped: list[str]
    referrers: list[str]


def referrers(folder: str | Path) -> list[str]:
    """Names of the sibling reference artifacts (ensemble, gated) that name ``folder`` among their parts."""
    folder = Path(folder).resolve()
    names = []
    for sibling in sorted(p for p in folder.parent.iterdir() if p.is_dir() and p != folder):
        try:
            parts = ArtifactConfig.parse(read_config(sibling)).parts
        except (OSError, ValueError):  # not an artifact, or a broken one: it refers to nothing
            continue
        if parts is not None and f"../{folder.name}" in parts:
            names.append(sibling.name)
    return names


def quantize_artifact(
    artifact_dir: str | Path,
    data: LGGData,
    tolerance: float = QUALITY_TOLERANCE,
    out: str | Path | None = None,
    batch_size: int = 16,
) -> QuantizeResult:
    """Convert an artifact's weights to int8 per channel if its held-out scores stay within ``tolerance``.

    Works on a temp copy beside the destination: the copy is evaluated with the original weights, then with the
    int8 ones (:func:`lgg_core.evaluation.evaluator.evaluate`, on the test patients of its split.json). Accepted,
    the copy (int8 weights, their eval/ tables and card, the scores in ``training.weights_quantization``) replaces
    ``out`` (default: the artifact itself) in one move; rejected, it is deleted and nothing else changes.

    Args:
        artifact_dir: A trained artifact folder with its own weights.
        data: The dataset holding its test patients.
        tolerance: Largest allowed |int8 score - original score| of each of :data:`SCORES`.
        out: Write the int8 artifact here instead (a new folder); the original is never changed then.
        batch_size: Slices per forward pass.

    Raises:
        ValueError: a reference artifact (no weights of its own), weights already int8, ``out`` exists, or
            the data lacks its test patients.
        FileNotFoundError: the artifact's weights are not there.
        ArtifactError: the artifact fails its checks.
    """
    folder = Path(artifact_dir)
    dest = Path(out) if out is not None else folder
    if (parts := ArtifactConfig.parse(read_config(folder)).parts) is not None:
        raise ValueError(f"{folder} has no weights of its own (it is assembled from {list(parts)}); "
                         "quantize its parts")
    weights = folder / SAFETENSORS_SINGLE_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: there are no weights to quantize")
    if stored_quantization(weights) == INT8_PER_CHANNEL:
        raise ValueError(f"{weights} is already stored {INT8_PER_CHANNEL}")
    if out is not None and dest.exists():
        raise ValueError(f"{dest} already exists; choose a new folder")
    dropped = [name for name in DERIVED_FILES if (folder / name).exists()]
    with staged_copy(folder, dest, skip=DERIVED_FILES) as tmp:
        before = evaluate(tmp, data, batch_size=batch_size)
        model, _ = load_artifact(tmp)
        save_weights(model.state_dict(), tmp / SAFETENSORS_SINGLE_FILE, torch.int8)
        after = evaluate(tmp, data, batch_size=batch_size)
        scores = {name: (before["headline"][name], after["headline"][name]) for name in SCORES[before["task"]]}
        accepted = all(_unchanged(old, new, tolerance) for old, new in scores.values())
        size = (weights.stat().st_size, (tmp / SAFETENSORS_SINGLE_FILE).stat().st_size)
        if accepted:
            _record(tmp, after, {
                "scheme": INT8_PER_CHANNEL, "tolerance": tolerance, "bytes": {"before": size[0], "after": size[1]},
                "scores": {name: {"before": old, "after": new} for name, (old, new) in scores.items()},
                "patients": len(after["patients"]), "dataset_hash": data.dataset_hash,
            }, artifact_name(dest))
            commit_copy(tmp, dest)
    return QuantizeResult(dest if accepted else folder, accepted, scores, tolerance, size,
                          dropped if accepted else [], referrers(folder) if accepted and out is None else [])


def _unchanged(old: float, new: float, tolerance: float) -> bool:
    """Whether a score moved by at most ``tolerance``; an undefined one (AUROC on test patients of one class) is
    unchanged when it stays undefined."""
    return abs(new - old) <= tolerance or (math.isnan(old) and math.isnan(new))


def _record(folder: Path, summary: dict[str, Any], record: dict[str, Any], name: str) -> None:
    """Add the quantization record to config.json and render the card (titled ``name``) from it and the int8
    evaluation."""
    config = read_config(folder)
    config["training"]["weights_quantization"] = record
    # The layout LGGModel.save_pretrained writes, so the diff of a converted artifact shows only the record.
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    (folder / "README.md").write_text(render_card(config, summary, metrics_markdown(summary), name))
