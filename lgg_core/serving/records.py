"""What the dashboard shows: catalog entries resolved to artifact folders, their tables, and the one model loader.

Everything here is plain Python (no Streamlit), so pages stay thin and tests need no browser. Every reader turns a
missing or broken file into a message instead of an exception, because the app must keep working while the zoo is
still being trained and evaluated.

Importing this module and reading records does not import torch (see :mod:`lgg_core.serving.checks`): the functions
that run models import it when called, so pages that only show records and tables, such as the Leaderboard, render
without it.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lgg_core.data.cache import LGGData
from lgg_core.serving.artifact_config import ArtifactConfig
from lgg_core.serving.catalog import CatalogEntry, CatalogError, load_catalog, missing_weights_message, resolve_entry
from lgg_core.data.reader import DATA_DIR_ENV
from lgg_core.serving.checks import checked_artifact

if TYPE_CHECKING:
    import torch

    from lgg_core.models import LGGModel
    from lgg_core.serving.onnx_backend import Predictor

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO_ROOT / "demo"
GATED_PREFIX = "gated: "


@dataclass(frozen=True)
class ModelRecord:
    """A catalog entry as the app sees it: usable (``config`` set) or not (``problem`` says why).

    A usable record without weights (``has_weights`` False) is an evaluation record only: its tables and stored
    predictions can be shown, but nothing can run it (see :func:`weights_problem`).
    """

    name: str
    path: Path | None
    config: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    problem: str | None = None
    has_weights: bool = True
    spec: ArtifactConfig | None = field(init=False, hash=False, compare=False)
    """The config parsed once (None for an unusable record): what pages and tables read."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec", ArtifactConfig.parse(self.config) if self.config else None)

    @property
    def ok(self) -> bool:
        """True when the artifact can be loaded."""
        return self.problem is None

    @property
    def task(self) -> str:
        """``"segment"`` or ``"classify"``."""
        return self.spec.task

    @property
    def input_size(self) -> int | None:
        """The input size the model was trained at (None: native 256)."""
        return self.spec.training.input_size

    @property
    def inputs(self) -> str:
        """What the model takes as input (:data:`~lgg_core.data.inputs.INPUTS`)."""
        return self.spec.training.inputs

    @property
    def standardizes(self) -> bool:
        """True when the model z-scores each input slice per channel first (``standardize`` in its arch_kwargs)."""
        return self.spec.standardize


@dataclass(frozen=True)
class EvalTables:
    """The ``eval/`` tables of an artifact written by ``lgg evaluate`` (``patients`` is None for classifiers).

    ``calibration`` is ``eval/calibration.json`` (see :mod:`lgg_core.evaluation.calibration`), None when the
    evaluation predates it.
    """

    summary: dict[str, Any]
    slices: pd.DataFrame
    patients: pd.DataFrame | None
    calibration: dict[str, Any] | None = None


def default_data_dir() -> Path:
    """``$LGG_DATA_DIR`` when set, else the bundled demo set."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEMO_DIR).expanduser()


def _resolve(entry: CatalogEntry) -> ModelRecord:
    try:
        path = resolve_entry(entry)  # local folder, or the Hub repo pulled at its revision (HF cache offline)
    except CatalogError as err:
        return ModelRecord(entry.name, entry.path, problem=str(err))
    try:
        # Config and the weights' header are checked here, once, so that a broken entry is listed as unavailable
        # with its reason instead of failing on every page that touches it.
        config, has_weights, problem = checked_artifact(path)
    except OSError as err:
        problem = str(err)
    if problem is not None:
        return ModelRecord(entry.name, path, problem=f"{entry.name} cannot be loaded: {problem}")
    return ModelRecord(entry.name, path, config, has_weights=has_weights)


def weights_problem(record: ModelRecord) -> str | None:
    """Why the record's model cannot run (not usable, or weights not bundled), or None when it can."""
    if not record.ok:
        return record.problem
    return None if record.has_weights else missing_weights_message(record.path)


def resolve_models(catalog: str | Path | None = None) -> tuple[list[ModelRecord], str | None]:
    """Resolve every catalog entry; returns (records, problem with the catalog itself or None)."""
    try:
        entries = load_catalog(catalog)
    except CatalogError as err:
        return [], str(err)
    return [_resolve(e) for e in entries], None


def load_model(record: ModelRecord, device: str | torch.device = "cpu") -> LGGModel:
    """The single place where the app turns a record into a runnable model (safetensors only).

    Raises:
        ValueError: the record is not usable or the weights do not match the config.
    """
    from lgg_core.serving.artifacts import load_artifact

    if problem := weights_problem(record):
        raise ValueError(problem)
    try:
        model, _ = load_artifact(record.path, device)
    except (OSError, RuntimeError, KeyError, ValueError) as err:
        raise ValueError(f"cannot load {record.name} from {record.path}: {err}") from err
    return model


def load_predictor_for(record: ModelRecord) -> Predictor:
    """The record's predictor: on CPU hosts the path its serving.json chose on this host (fastest measured), else
    ONNX Runtime when an up-to-date model.onnx is present, else PyTorch (see :func:`load_predictor`).

    Grad-CAM and the gated pipeline need the PyTorch model itself: use :func:`load_model` for those.

    Raises:
        ValueError: the record is not usable or its files cannot be loaded.
    """
    from lgg_core.serving.onnx_backend import load_predictor

    if problem := weights_problem(record):
        raise ValueError(problem)
    try:
        return load_predictor(record.path)
    except (OSError, RuntimeError, KeyError, ValueError) as err:
        raise ValueError(f"cannot load {record.name} from {record.path}: {err}") from err


def row_of(data: LGGData, patient: str, number: int) -> int | None:
    """Dataset row of a patient's slice number, or None when the loaded data lacks it."""
    index = data.index
    hits = np.flatnonzero((index["patient"] == patient).to_numpy() & (index["slice"] == number).to_numpy())
    return int(hits[0]) if len(hits) else None


def gateable(record: ModelRecord) -> bool:
    """Whether a classifier may gate this model: a segmenter, but not the gated composite, which has its gate."""
    return record.task == "segment" and not record.spec.gated


def gates(classifier: ModelRecord, segmenter: ModelRecord) -> bool:
    """Whether ``classifier`` may gate ``segmenter``: a gateable segmenter taking the same inputs, so that one slice's
    input feeds both."""
    return classifier.task == "classify" and gateable(segmenter) and classifier.inputs == segmenter.inputs


def gated_name(classifier: str, segmenter: str) -> str:
    """Display name of the in-memory gated pipeline."""
    return f"{GATED_PREFIX}{classifier} → {segmenter}"


def build_gated(classifier: LGGModel, segmenter: LGGModel) -> LGGModel:
    """The classifier-gated segmenter, assembled in memory from two trained models (never saved)."""
    from lgg_core.models import assemble

    device = next(segmenter.parameters()).device
    return assemble("gated", [classifier, segmenter]).to(device)


def predict_gated(
    gated: LGGModel, images: np.ndarray, classifier_size: int | None, segmenter_size: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Gated tumor probabilities (N, H, W) and classifier probabilities (N,).

    Each part sees the input size it was trained at (the classifier often 128², the segmenter 256²), which
    ``GatedSegmenter.forward`` cannot do because it feeds both the same tensor.
    """
    from lgg_core.serving.inference import predict

    net = gated.net
    cls_prob = predict(net.classifier, images, "classify", input_size=classifier_size)
    seg_prob = predict(net.segmenter, images, "segment", input_size=segmenter_size)
    return np.where((cls_prob >= net.threshold)[:, None, None], seg_prob, 0.0).astype(np.float32), cls_prob


@dataclass(frozen=True, eq=False)
class Gate:
    """Why a gated pipeline kept or dropped its segmenter's mask: the classifier's verdict on each slice.

    Attributes:
        classifier: the classifier's name.
        prob: its tumor probability per slice, (N,).
        threshold: the probability at or above which the segmenter's mask is kept.
    """

    classifier: str
    prob: np.ndarray
    threshold: float

    @property
    def kept(self) -> np.ndarray:
        """Per slice, whether the mask was kept."""
        return self.prob >= self.threshold

    def describe(self, i: int) -> str:
        """The verdict on slice ``i`` in words, e.g. "resnet18: tumor probability 0.213 < 0.5, mask dropped"."""
        p, kept = float(self.prob[i]), bool(self.kept[i])
        shown = f"{p:.3f}"
        if float(shown) == self.threshold != p:  # 0.4996 must not read as "0.500 < 0.5"
            shown = f"{p:.6f}"
        return (f"{self.classifier}: tumor probability {shown} {'≥' if kept else '<'} {self.threshold:g}, "
                f"mask {'kept' if kept else 'dropped'}")


# What the pages read from the eval files; files written by another version that lack them are reported, not used.
SUMMARY_KEYS = {"segment": ("patient_dice", "tumor_slice_dice", "tumor_slice_iou", "hd95", "assd"),
                "classify": ("accuracy", "auroc")}
SLICE_COLUMNS = {"segment": {"variant", "patient", "institution", "slice", "dice", "hd95", "tp", "fp", "fn",
                             "true_tumor", "pred_tumor"},
                 "classify": {"patient", "institution", "slice", "true_tumor", "prob", "pred_tumor"}}
PATIENT_COLUMNS = {"variant", "patient", "institution", "dice"}
CALIBRATION_LEVELS = {"segment": ("pixel", "slice"), "classify": ("slice",)}
MAX_CALIBRATION_BINS = 1000  # the file may come from an untrusted Hub artifact


def _check_columns(table: pd.DataFrame, required: set[str], name: str) -> None:
    if missing := sorted(required - set(table.columns)):
        raise ValueError(f"{name} lacks columns {missing}")


def _numbers(values: Any, allow_none: bool = False) -> bool:
    return isinstance(values, list) and all(
        (isinstance(v, (int, float)) and not isinstance(v, bool)) or (allow_none and v is None) for v in values)


def _read_calibration(path: Path, task: str) -> dict[str, Any] | None:
    """``eval/calibration.json`` checked for what the Models page draws, or None when there is none."""
    if not path.is_file():
        return None
    calibration = json.loads(path.read_text())
    levels = calibration.get("levels") if isinstance(calibration, dict) else None
    for name in CALIBRATION_LEVELS[task]:
        level = levels.get(name) if isinstance(levels, dict) else None
        if not isinstance(level, dict) or not isinstance(level.get("ece"), (int, float)):
            raise ValueError(f"calibration.json lacks levels.{name}.ece")
        n = len(level["count"]) if _numbers(level.get("count")) and min(level["count"], default=0) >= 0 else 0
        if not (0 < n <= MAX_CALIBRATION_BINS and _numbers(level.get("edges")) and len(level["edges"]) == n + 1
                and all(_numbers(level.get(k), allow_none=True) and len(level[k]) == n
                        for k in ("mean_prob", "frequency"))):
            raise ValueError(f"calibration.json levels.{name} has malformed bins")
    return {**calibration, "levels": {name: levels[name] for name in CALIBRATION_LEVELS[task]}}


def read_eval(record: ModelRecord) -> tuple[EvalTables | None, str | None]:
    """The artifact's eval tables, or (None, why not)."""
    if not record.ok:
        return None, record.problem
    folder = record.path / "eval"
    if not (folder / "summary.json").is_file() or not (folder / "slices.csv").is_file():
        return None, f"{record.name} has not been evaluated yet (run `lgg evaluate {record.path}`)"
    try:
        summary = json.loads((folder / "summary.json").read_text())
        raw = summary["variants"]["raw"] if isinstance(summary, dict) else None
        if not isinstance(raw, dict):
            raise ValueError("summary.json has no variants.raw (written by an older lgg evaluate?)")
        if missing := [k for k in SUMMARY_KEYS[record.task] if not isinstance(raw.get(k), (int, float))]:
            raise ValueError(f"summary.json lacks variants.raw.{', '.join(missing)}")
        slices = pd.read_csv(folder / "slices.csv")
        _check_columns(slices, SLICE_COLUMNS[record.task], "slices.csv")
        patients = pd.read_csv(folder / "patients.csv") if (folder / "patients.csv").is_file() else None
        if patients is not None:
            _check_columns(patients, PATIENT_COLUMNS, "patients.csv")
        calibration = _read_calibration(folder / "calibration.json", record.task)
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
        return None, f"eval tables of {record.name} are unreadable: {err}"
    return EvalTables(summary, slices, patients, calibration), None


def read_epochs(record: ModelRecord) -> pd.DataFrame | None:
    """The per-epoch training log, or None when missing, unreadable or without an ``epoch`` column."""
    try:
        epochs = pd.read_csv(record.path / "epochs.csv")
    except (OSError, ValueError, TypeError):
        return None
    return epochs if "epoch" in epochs.columns else None


def read_split(record: ModelRecord) -> dict[str, Any] | None:
    """split.json of the artifact, or None when missing or without ``roles`` lists of patients."""
    try:
        split = json.loads((record.path / "split.json").read_text())
    except (OSError, ValueError, TypeError, RecursionError):
        return None
    roles = split.get("roles") if isinstance(split, dict) else None
    if not isinstance(roles, dict) or not all(isinstance(v, list) for v in roles.values()):
        return None
    return split


def patient_role(record: ModelRecord, patient: str) -> str | None:
    """``"train"``, ``"val"`` or ``"test"``: the patient's role in the record's split (None when not in it)."""
    roles = (read_split(record) or {}).get("roles", {})
    return next((role for role, patients in roles.items() if patient in patients), None)


# Markdown images, inline ``![alt](url)`` and reference ``![alt][ref]``: a card comes from whoever published the
# model, and rendering its images would make every visitor's browser fetch URLs of that person's choosing.
_CARD_IMAGE = re.compile(r"!\[([^\]]*)\](?:\([^)]*\)|\[[^\]]*\])")


def read_card(record: ModelRecord) -> str | None:
    """The model card's markdown body (YAML front matter removed, images replaced by their alt text), or None."""
    try:
        text = (record.path / "README.md").read_text()
    except (OSError, TypeError, UnicodeDecodeError):
        return None
    if text.startswith("---"):
        _, _, rest = text[3:].partition("\n---")
        text = rest.lstrip("\n")
    return _CARD_IMAGE.sub(lambda m: f"[image: {m.group(1) or 'no description'}]", text)
