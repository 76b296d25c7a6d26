"""Streamlit glue shared by the pages: caching, the data-folder setting and selections that survive page switches.

All model, metric and CAM logic lives in ``lgg_core``; this module only caches its results and keeps state.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from lgg_core.serving.records import (
    GATED_PREFIX,
    EvalTables,
    ModelRecord,
    build_gated,
    default_data_dir,
    gated_name,
    load_model,
    load_predictor_for,
    patient_role,
    predict_gated,
    read_eval,
    resolve_models,
)
from lgg_core.data.cache import LGGData, load_dataset
from lgg_core.serving.catalog import catalog_path
from lgg_core.data.reader import DatasetError, find_root
from lgg_core.serving.device import pick_device
from lgg_core.explain.uncertainty import Uncertainty, tta_uncertainty

# Selections shared across pages and mirrored into the URL so a view can be shared as a link.
SHARED = ("patient", "slice", "models")


def _leave_legacy_pages_mode() -> None:
    """Have streamlit_app.py's st.navigation serve the request that first imports this module, not the pages/ mode.

    Streamlit turns its legacy ``pages/`` mode on when a server whose script has a ``pages/`` folder opens its first
    session, and off only when a script calls st.navigation. Until then a shared link such as ``/compare?slice=12``
    runs pages/compare.py alone: no sidebar, no :func:`init_state`, and the page's defaults overwrite the link. Every
    page imports this module, so its first import in such a process happens in that mode: switch the process to
    st.navigation and rerun the request, which then runs streamlit_app.py on the same page and query string.
    """
    if getattr(PagesManager, "uses_pages_directory", None) and get_script_run_ctx(suppress_warning=True) is not None:
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_legacy_pages_mode()


@st.cache_resource(show_spinner=False)
def device() -> torch.device:
    """GPU when present, else CPU."""
    return pick_device("auto")


def _mtime(path: Path | None) -> float:
    try:
        return path.stat().st_mtime if path else 0.0
    except OSError:
        return 0.0


@st.cache_data(ttl=30, show_spinner=False)
def _records(catalog: str, catalog_mtime: float) -> tuple[list[ModelRecord], str | None]:
    return resolve_models(catalog)


def records() -> tuple[list[ModelRecord], str | None]:
    """All catalog entries (usable or not) and a catalog-level problem; refreshed as artifacts land."""
    path = catalog_path()
    return _records(str(path), _mtime(path))


def usable(task: str | None = None) -> dict[str, ModelRecord]:
    """Loadable models by name, optionally of one task."""
    return {r.name: r for r in records()[0] if r.ok and (task is None or r.task == task)}


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _model(record: ModelRecord, weights_mtime: float):
    return load_model(record, device())


def model(record: ModelRecord):
    """The record's model, loaded once per process (reloaded when its weights file changes)."""
    return _model(record, _mtime(record.path / "model.safetensors"))


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _predictor(record: ModelRecord, weights_mtime: float):
    return load_predictor_for(record)


def predictor(record: ModelRecord):
    """The record's predictor (ONNX Runtime on CPU hosts when model.onnx is present), loaded once per process."""
    return _predictor(record, _mtime(record.path / "model.safetensors"))


@st.cache_resource(show_spinner="Assembling the gated pipeline…", max_entries=8)
def _gated(classifier: ModelRecord, segmenter: ModelRecord, mtimes: tuple[float, float]):
    return build_gated(model(classifier), model(segmenter))


def gated_options() -> dict[str, tuple[ModelRecord, ModelRecord]]:
    """Gated pipelines: every (classifier, segmenter) pair of usable models, by display name."""
    return {gated_name(c, s): (cr, sr) for c, cr in usable("classify").items() for s, sr in usable("segment").items()}


def segmenter_options() -> list[str]:
    """Names the mask-producing pages offer: segmenters, then gated pipelines."""
    return [*usable("segment"), *gated_options()]


def predict_masks(name: str, images: np.ndarray) -> np.ndarray:
    """Tumor probabilities (N, H, W) of a segmenter or a gated pipeline."""
    if name.startswith(GATED_PREFIX):
        classifier, segmenter = gated_options()[name]
        mtimes = (_mtime(classifier.path / "model.safetensors"), _mtime(segmenter.path / "model.safetensors"))
        return predict_gated(_gated(classifier, segmenter, mtimes), images, classifier.input_size,
                             segmenter.input_size)[0]
    return predictor(usable("segment")[name]).predict(images)


@st.cache_data(show_spinner=False, max_entries=64)
def volume_probs(name: str, dataset_hash: str, patient: str, weights_key: str) -> np.ndarray:
    """A patient's predicted probabilities, cached per model, data and patient (float16 to save memory)."""
    data = dataset()
    return predict_masks(name, data.images[data.rows([patient])]).astype(np.float16)


def weights_key(name: str) -> str:
    """Changes when any weights behind ``name`` change, so cached predictions are not stale."""
    parts = gated_options()[name] if name.startswith(GATED_PREFIX) else (usable("segment")[name],)
    return ",".join(f"{r.path}:{_mtime(r.path / 'model.safetensors')}" for r in parts)


@st.cache_data(show_spinner=False, max_entries=512)
def _slice_probs(name: str, dataset_hash: str, row: int, weights_key: str) -> np.ndarray:
    data = dataset()
    return predict_masks(name, data.images[row : row + 1])[0].astype(np.float16)


def slice_probs(name: str, data: LGGData, row: int) -> np.ndarray:
    """One slice's predicted probabilities (H, W), cached per model, data and row."""
    return _slice_probs(name, data.dataset_hash, row, weights_key(name)).astype(np.float32)


def patient_probs(name: str, data: LGGData, patient: str) -> np.ndarray:
    """Cached :func:`volume_probs` for the loaded data."""
    return volume_probs(name, data.dataset_hash, patient, weights_key(name)).astype(np.float32)


@st.cache_data(show_spinner=False)
def _eval(record: ModelRecord, summary_mtime: float) -> tuple[EvalTables | None, str | None]:
    return read_eval(record)


def eval_tables(record: ModelRecord) -> tuple[EvalTables | None, str | None]:
    """The model's eval tables (re-read when ``lgg evaluate`` rewrites them)."""
    return _eval(record, _mtime(record.path / "eval" / "summary.json") if record.path else 0.0)


@st.cache_resource(show_spinner="Loading the dataset (the first time decodes every slice)…", max_entries=2)
def _dataset(path: str) -> LGGData:
    return load_dataset(path, progress=False)


def data_dir() -> str:
    """The data folder chosen in the sidebar (default: $LGG_DATA_DIR, else the bundled demo set)."""
    if not str(st.session_state.get("data_dir", "")).strip():
        st.session_state["data_dir"] = str(default_data_dir())
    return st.session_state["data_dir"].strip()


def dataset() -> LGGData | None:
    """The loaded dataset, or None after showing why it cannot be loaded.

    Any visitor can type a path into the sidebar: until the path holds patient folders, every failure reads the same,
    so the box cannot tell which server paths exist, are files or are unreadable.
    """
    folder = data_dir()
    try:
        find_root(folder)
    except (DatasetError, OSError):
        st.error(f"No `kaggle_3m` dataset at `{folder}`: give the folder holding the `TCGA_*` patient folders (or "
                 "its parent) in the sidebar, or clear it to use the bundled demo set.")
        return None
    try:
        return _dataset(folder)
    except DatasetError as err:
        st.error(f"Cannot load the MRI data from `{folder}`: {err}. Set another folder in the sidebar "
                 "(a `kaggle_3m` copy) or clear it to use the bundled demo set.")
    except OSError as err:
        st.error(f"Cannot read the MRI data from `{folder}`: {err.strerror or 'unreadable file'}.")
    return None


def require_models(options, kind: str = "model") -> None:
    """Stop the page with a pointer to the Models page when the catalog has no usable ``kind`` yet."""
    if not options:
        st.warning(f"No usable {kind} in the catalog yet; see the Models page for what is missing.")
        st.stop()


def require_data() -> LGGData:
    """The loaded dataset; stops the page when there is none (``dataset`` has already said why)."""
    data = dataset()
    if data is None:
        st.stop()
    return data


def init_state() -> None:
    """Seed the shared selections from the URL once per session."""
    if st.session_state.get("_state_ready"):
        return
    params = st.query_params
    if "patient" in params:
        st.session_state["patient"] = params["patient"]
    if "slice" in params and params["slice"].isdigit():
        st.session_state["slice"] = int(params["slice"])
    if "models" in params:
        st.session_state["models"] = [m for m in params["models"].split(",") if m]
    st.session_state["_state_ready"] = True


def share(**values) -> None:
    """Store shared selections and mirror them into the URL."""
    for key, value in values.items():
        st.session_state[key] = value
        st.query_params[key] = ",".join(value) if isinstance(value, list) else str(value)


def pick_patient(data: LGGData, label: str = "Patient") -> str:
    """Patient selector that remembers the choice across pages."""
    patients = data.patients
    current = st.session_state.get("patient")
    if current is not None and current not in patients:
        st.warning(f"{current} is not in the loaded data folder, so {patients[0]} is shown instead.")
    patient = st.selectbox(label, patients, index=patients.index(current) if current in patients else 0)
    if current is not None and patient != current:
        st.session_state.pop("slice", None)  # another patient opens on its largest tumor, not the old slice number
    share(patient=patient)
    return patient


def pick_slice(data: LGGData, patient: str, label: str = "Slice") -> tuple[int, int]:
    """Slice slider for ``patient``; returns (slice number, dataset row). Starts on a tumor slice."""
    rows = data.rows([patient])
    numbers = data.index["slice"].to_numpy()[rows].tolist()
    current = st.session_state.get("slice")
    if current not in numbers:
        tumor = data.index["has_tumor"].to_numpy()[rows]
        current = numbers[int(np.argmax(data.index["tumor_pixels"].to_numpy()[rows]))] if tumor.any() else numbers[0]
    number = st.select_slider(label, numbers, value=current)
    share(slice=number)
    return number, int(rows[numbers.index(number)])


def remembered_index(key: str, options: list) -> int:
    """Index of the option stored under ``key`` in session state (0 when none or no longer offered)."""
    remembered = st.session_state.get(key)
    return options.index(remembered) if remembered in options else 0


def pick_models(options: list[str], label: str, max_selections: int, default_count: int = 2) -> list[str]:
    """Multiselect of models, remembering the choice across pages."""
    remembered = [m for m in st.session_state.get("models", []) if m in options]
    chosen = st.multiselect(label, options, default=remembered or options[:default_count],
                            max_selections=max_selections)
    share(models=chosen)
    return chosen


def open_slice(page: str, patient: str, number: int, models: list[str] | None = None) -> None:
    """Jump to ``page`` showing that slice (used by the failure gallery)."""
    share(patient=patient, slice=number, **({"models": models} if models else {}))
    st.switch_page(page)


def show_model_problems() -> None:
    """List catalog entries that cannot be shown, without stopping the page."""
    recs, problem = records()
    if problem:
        st.error(problem)
    broken = [r for r in recs if not r.ok]
    if broken:
        with st.expander(f"{len(broken)} catalog model(s) unavailable"):
            for r in broken:
                st.markdown(f"- **{r.name}**: {r.problem}")


def show_patient_roles(patient: str, names: list[str]) -> None:
    """Say, per model, whether ``patient`` was among its training, validation or held-out patients.

    Scores on a model's own training patients look good and prove nothing, so those get a warning.
    """
    found = usable()
    roles = {name: patient_role(found[name], patient) for name in names if name in found}
    trained = [name for name, role in roles.items() if role in ("train", "val")]
    if trained:
        st.warning(f"{patient} was a training or validation patient of {', '.join(trained)}: "
                   "its scores there are not a fair test.")
    words = {"train": "training", "val": "validation", "test": "held-out test", None: "not in its split"}
    st.caption(" · ".join(f"{name}: {words[role]}" for name, role in roles.items()))


def _half(result: Uncertainty) -> Uncertainty:
    """The maps in float16, to halve what the caches hold."""
    return Uncertainty(result.pixel.astype(np.float16), result.slice)


@st.cache_data(show_spinner=False, max_entries=128)
def _slice_uncertainty(name: str, dataset_hash: str, row: int, weights_key: str) -> Uncertainty:
    data = dataset()
    # The unmirrored view is the cached prediction the page already shows: TTA costs one more forward pass.
    return _half(tta_uncertainty(partial(predict_masks, name), data.images[row : row + 1],
                                 probs=slice_probs(name, data, row)[None]))


def slice_uncertainty(name: str, data: LGGData, row: int) -> Uncertainty:
    """One slice's flip-TTA uncertainty (:func:`~lgg_core.explain.uncertainty.tta_uncertainty`), cached per row."""
    return _slice_uncertainty(name, data.dataset_hash, row, weights_key(name))


@st.cache_data(show_spinner=False, max_entries=8)
def _patient_uncertainty(name: str, dataset_hash: str, patient: str, weights_key: str) -> Uncertainty:
    data = dataset()
    return _half(tta_uncertainty(partial(predict_masks, name), data.images[data.rows([patient])],
                                 probs=patient_probs(name, data, patient)))


def patient_uncertainty(name: str, data: LGGData, patient: str) -> Uncertainty:
    """Flip-TTA uncertainty of every slice of ``patient``, cached per model, data and patient."""
    return _patient_uncertainty(name, data.dataset_hash, patient, weights_key(name))
