"""Streamlit glue shared by the pages: caching, the data-folder setting and selections that survive page switches.

All model, metric and CAM logic lives in ``lgg_core``; this module only caches its results and keeps state.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from lgg_core.serving.records import (
    EvalTables,
    Gate,
    ModelRecord,
    build_gated,
    default_data_dir,
    load_model,
    load_predictor_for,
    patient_role,
    read_eval,
    resolve_models,
)
from lgg_core.app.external import SESSION_KEY as VISITOR_KEY
from lgg_core.data.cache import LGGData, load_dataset
from lgg_core.data.gallery import with_gallery
from lgg_core.data.inputs import lone_slice_inputs, stack_inputs
from lgg_core.serving.predictions import FILE_NAME as PREDICTIONS_FILE, PredictionsError, StoredMasks, load_masks
from lgg_core.serving.catalog import CatalogError, CrossvalEntry, catalog_path, load_crossval
from lgg_core.serving.shelf import (SharedDatasets, Shelf, half_probs, mask_probs, mtime, stored_masks_problem,
                                    visitor_masks_problem)
from lgg_core.serving.shelf import predict_with_gate as shelf_predict
from lgg_core.data.reader import DatasetError, find_root
from lgg_core.explain.uncertainty import Uncertainty, tta_uncertainty

if TYPE_CHECKING:
    import torch
    from streamlit.delta_generator import DeltaGenerator

    from lgg_core.evaluation.external import Submission

# Selections shared across pages and mirrored into the URL so a view can be shared as a link.
SHARED = ("patient", "slice", "models")
DATA_PARAM = "data"  # the data folder's URL parameter
PAIR_PARAM, PAIR_KEY = "pair", "leaderboard_pair"  # the Leaderboard's chosen pair: in the URL, and remembered
CARD_PARAM, CARD_KEY = "model", "models_page_model"  # the Models page's model: the same
_LINKED = {PAIR_PARAM: PAIR_KEY, CARD_PARAM: CARD_KEY}
SECTION_PARAM, SECTION_KEY = "section", "leaderboard_section"  # the Leaderboard's open tab: the same


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
    from lgg_core.serving.device import pick_device

    return pick_device("auto")


def device_text() -> str:
    """Where models run, in markdown: the device once this process has loaded PyTorch, else the rule that picks it.

    Importing PyTorch only to name the device would cost seconds on pages that run no model, such as the Leaderboard.
    """
    if "torch" in sys.modules:
        return f"**{device()}**"
    return "this server's GPU when it has one (CUDA, Apple MPS), else its CPU"


@st.cache_data(ttl=30, show_spinner=False)
def _records(catalog: str, catalog_mtime: float) -> tuple[list[ModelRecord], str | None]:
    return resolve_models(catalog)


def records() -> tuple[list[ModelRecord], str | None]:
    """All catalog entries (usable or not) and a catalog-level problem; refreshed as artifacts land."""
    path = catalog_path()
    return _records(str(path), mtime(path))


def shelf() -> Shelf:
    """The catalog's records sorted into what the pages can show (:class:`~lgg_core.serving.shelf.Shelf`)."""
    return Shelf(tuple(records()[0]))


def usable(task: str | None = None) -> dict[str, ModelRecord]:
    """Models that can run here (usable, weights present) by name, optionally of one task."""
    return shelf().usable(task)


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _model(record: ModelRecord, weights_mtime: float):
    return load_model(record, device())


def model(record: ModelRecord):
    """The record's model, loaded once per process (reloaded when its weights file changes)."""
    return _model(record, mtime(record.path / "model.safetensors"))


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _predictor(record: ModelRecord, weights_mtime: float):
    return load_predictor_for(record)


def predictor(record: ModelRecord):
    """The record's predictor (ONNX Runtime on CPU hosts when model.onnx is present), loaded once per process."""
    return _predictor(record, mtime(record.path / "model.safetensors"))


@st.cache_resource(show_spinner="Assembling the gated pipeline…", max_entries=8)
def _gated(classifier: ModelRecord, segmenter: ModelRecord, mtimes: tuple[float, float]):
    return build_gated(model(classifier), model(segmenter))


def gated(classifier: ModelRecord, segmenter: ModelRecord):
    """The pipeline of two records, assembled once per process (again when either's weights change)."""
    return _gated(classifier, segmenter, tuple(mtime(r.path / "model.safetensors") for r in (classifier, segmenter)))


def gated_options() -> dict[str, tuple[ModelRecord, ModelRecord]]:
    """Gated pipelines: every (classifier, segmenter) pair of usable models that take the same inputs, by name."""
    return shelf().gated()


def dataset_inputs(name: str, data: LGGData, rows: np.ndarray) -> np.ndarray:
    """What model ``name`` takes for ``rows`` of the loaded data (2.5D neighbours come from each volume)."""
    return stack_inputs(data.images, data.index, shelf().inputs_of(name), rows)


def upload_inputs(name: str, images: np.ndarray) -> np.ndarray:
    """What model ``name`` takes for uploaded slices, which come without neighbours (:func:`lone_slice_inputs`)."""
    return lone_slice_inputs(images, shelf().inputs_of(name))


def shown_segmenters() -> dict[str, ModelRecord]:
    """Segmenters the pages can show masks of: runnable ones, then those shown from stored masks, then this
    visitor's own predictions."""
    return {**usable("segment"), **stored_only(), **visitor_segmenters()}


def stored_only() -> dict[str, ModelRecord]:
    """Evaluated segmenters whose weights are not here, by name: the pages show the masks ``lgg evaluate`` stored."""
    return shelf().stored_only()


def visitor() -> Submission | None:
    """The predictions this visitor scored on the Leaderboard ("Add your predictions"): held in this session only,
    never in a cache another session reads."""
    return st.session_state.get(VISITOR_KEY)


def visitor_segmenters() -> dict[str, ModelRecord]:
    """This visitor's scored predictions as a segmenter shown from its masks (empty when there are none)."""
    submission = visitor()
    return {submission.label: submission.record()} if submission is not None else {}


def mask_only() -> dict[str, ModelRecord]:
    """Segmenters shown from masks alone (stored or the visitor's): no weights, so no uncertainty or Grad-CAM."""
    return {**stored_only(), **visitor_segmenters()}


def segmenter_options() -> list[str]:
    """Names the mask-producing pages offer: segmenters, those shown from stored masks, then gated pipelines."""
    return [*shown_segmenters(), *gated_options()]


@st.cache_resource(show_spinner=False, max_entries=32)
def _stored_masks(record: ModelRecord, mtime: float) -> StoredMasks | str:
    # Read-only once built, so sessions can share it.
    try:
        return load_masks(record.path / "eval" / PREDICTIONS_FILE)
    except PredictionsError as err:
        return str(err)


def _stored(record: ModelRecord) -> StoredMasks | str:
    return _stored_masks(record, mtime(record.path / "eval" / PREDICTIONS_FILE))


def prediction_problem(name: str, data: LGGData, patient: str) -> str | None:
    """Why ``name`` cannot show the patient's slices of the loaded data (None when it can).

    Only models shown from masks can lack slices: stored masks cover their test patients only, a visitor's the
    patients they were scored on.
    """
    if name in visitor_segmenters():
        scored = visitor().scored
        return visitor_masks_problem(name, scored, len(scored.summary["patients"]), data, patient)
    record = stored_only().get(name)
    return None if record is None else stored_masks_problem(name, _stored(record), data, patient)


def _mask_probs(name: str, data: LGGData, rows: np.ndarray) -> np.ndarray:
    """The stored or visitor's masks of ``rows`` as probabilities 0/1 (:func:`prediction_problem` says when they
    exist)."""
    source = visitor().scored if name in visitor_segmenters() else _stored(stored_only()[name])
    probs = None if isinstance(source, str) else mask_probs(source, data, rows)
    if probs is None:
        raise ValueError(prediction_problem(name, data, str(data.index["patient"].to_numpy()[rows][0])))
    return probs


def lone_slice_note(name: str) -> str | None:
    """:meth:`~lgg_core.serving.shelf.Shelf.lone_slice_note` of the catalog's shelf."""
    return shelf().lone_slice_note(name)


def predict_with_gate(name: str, images: np.ndarray) -> tuple[np.ndarray, Gate | None]:
    """Tumor probabilities (N, H, W) of a segmenter or a gated pipeline and the pipeline's gate, with the models
    this process has loaded (:func:`lgg_core.serving.shelf.predict_with_gate`).

    ``images`` are the model's inputs: :func:`dataset_inputs` or :func:`upload_inputs`.
    """
    return shelf_predict(shelf(), name, images, predictor, gated)


def predict_masks(name: str, images: np.ndarray) -> np.ndarray:
    """Tumor probabilities (N, H, W) of a segmenter or a gated pipeline, for its inputs ``images``."""
    return predict_with_gate(name, images)[0]


@st.cache_data(show_spinner=False, max_entries=64)
def _patient_outputs(name: str, dataset_hash: str, patient: str, weights_key: str) -> tuple[np.ndarray, Gate | None]:
    """A patient's predicted probabilities (float16 to save memory) and gate, cached per model, data and patient."""
    data = dataset()
    if name in stored_only():
        return _mask_probs(name, data, data.rows([patient])).astype(np.float16), None
    probs, gate = predict_with_gate(name, dataset_inputs(name, data, data.rows([patient])))
    return half_probs(probs), gate


def weights_key(name: str) -> str:
    """Changes when any weights behind ``name`` change, so cached predictions are not stale."""
    return shelf().weights_key(name)


@st.cache_data(show_spinner=False, max_entries=512)
def _slice_outputs(name: str, dataset_hash: str, row: int, weights_key: str) -> tuple[np.ndarray, Gate | None]:
    data = dataset()
    if name in stored_only():
        return _mask_probs(name, data, np.array([row]))[0].astype(np.float16), None
    probs, gate = predict_with_gate(name, dataset_inputs(name, data, np.array([row])))
    return half_probs(probs[0]), gate


def slice_probs(name: str, data: LGGData, row: int) -> np.ndarray:
    """One slice's predicted probabilities (H, W), cached per model, data and row (the visitor's: never cached)."""
    if name in visitor_segmenters():
        return _mask_probs(name, data, np.array([row]))[0]
    return _slice_outputs(name, data.dataset_hash, row, weights_key(name))[0].astype(np.float32)


def slice_gate(name: str, data: LGGData, row: int) -> Gate | None:
    """A gated pipeline's verdict on one slice (None for a segmenter), from the cache :func:`slice_probs` fills."""
    if name in visitor_segmenters():
        return None
    return _slice_outputs(name, data.dataset_hash, row, weights_key(name))[1]


def patient_probs(name: str, data: LGGData, patient: str) -> np.ndarray:
    """A patient's predicted probabilities (slices, H, W) for the loaded data, cached per model and patient (the
    visitor's: never cached)."""
    if name in visitor_segmenters():
        return _mask_probs(name, data, data.rows([patient]))
    return _patient_outputs(name, data.dataset_hash, patient, weights_key(name))[0].astype(np.float32)


def patient_gate(name: str, data: LGGData, patient: str) -> Gate | None:
    """A gated pipeline's verdict on each of a patient's slices (None for a segmenter), from the same cache."""
    if name in visitor_segmenters():
        return None
    return _patient_outputs(name, data.dataset_hash, patient, weights_key(name))[1]


@st.cache_data(show_spinner=False)
def _eval(name: str, path: str, problem: str | None, summary_mtime: float,
          _record: ModelRecord) -> tuple[EvalTables | None, str | None]:
    # Not keyed by the record itself: hashing every config on each rerun of the Leaderboard costs a quarter second.
    return read_eval(_record)


def eval_tables(record: ModelRecord) -> tuple[EvalTables | None, str | None]:
    """The model's eval tables (re-read when ``lgg evaluate`` rewrites them); the visitor's from this session."""
    if (submission := visitor()) is not None and record.name == submission.label:
        return submission.tables(), None
    return _catalog_tables(record)


def _catalog_tables(record: ModelRecord) -> tuple[EvalTables | None, str | None]:
    summary = mtime(record.path / "eval" / "summary.json") if record.path else 0.0
    return _eval(record.name, str(record.path), record.problem, summary, record)


def warm_up() -> None:
    """Fill what every session shares before the first visitor arrives (``serve.py`` calls it as the server starts):
    the catalog's records, their evaluation tables and the server's default dataset.

    Raises:
        DatasetError, OSError: the default data folder cannot be loaded (the pages say so to each visitor).
    """
    for record in records()[0]:
        _catalog_tables(record)
    _DATASETS.get(str(default_data_dir()), _load_with_progress)


def catalog_key(items: list[tuple[ModelRecord, EvalTables | None, str | None]]) -> tuple:
    """A cheap fingerprint of the catalog's entries and their eval tables, for cache keys: each entry's name, folder,
    problem and evaluation time (the tables are re-read when that changes, see :func:`eval_tables`)."""
    return tuple((record.name, str(record.path), problem, record.path is not None and
                  mtime(record.path / "eval" / "summary.json")) for record, _, problem in items)


def crossval_runs() -> tuple[list[tuple[CrossvalEntry, tuple[float, ...]]], str | None]:
    """The catalog's cross-validation runs, each with its folds' ``eval/patients.csv`` times (a cache key that changes
    as folds are evaluated), and a catalog problem."""
    try:
        entries = load_crossval(catalog_path())
    except CatalogError as err:
        return [], str(err)
    return [(e, tuple(mtime(d / "eval" / "patients.csv") for d in sorted(e.path.glob("fold-*"))))
            for e in entries], None


# Each full dataset holds ~1 GB: the bundled demo set and one kaggle_3m at a time.
_DATASETS = SharedDatasets(max_entries=2)


def _dataset(path: str) -> LGGData:
    """The decoded dataset of ``path``, loaded once per process and shared read-only by every session.

    Not ``st.cache_resource``: the first load draws a progress bar for the visitor who triggers it, and Streamlit
    replays a cached function's elements on every later call. A second visitor waits for that load instead of
    decoding the same files again.
    """
    return _DATASETS.get(path, _load_with_progress)


def _load_with_progress(path: str) -> LGGData:
    bar = st.empty()

    def report(done: int, total: int) -> None:
        bar.progress(done / total, text=f"First load of `{path}`: decoding slices {done:,} / {total:,}. Later "
                                        "loads, also after a restart, read the cache.")

    try:
        # The bundled demo set comes with the failure gallery's slices, so that its default cases show images.
        return with_gallery(load_dataset(path, progress=False, on_progress=report), progress=False,
                            on_progress=report)
    finally:
        bar.empty()


def data_dir() -> str:
    """The data folder chosen in the sidebar (default: $LGG_DATA_DIR, else the bundled demo set).

    Another folder than the server's default is mirrored into the URL (``data=``), so a reload, a new tab or a shared
    link opens the same data; the default is left out of it.
    """
    if not str(st.session_state.get("data_dir", "")).strip():
        st.session_state["data_dir"] = str(default_data_dir())
    folder = st.session_state["data_dir"].strip()
    if folder != str(default_data_dir()):
        if st.query_params.get(DATA_PARAM) != folder:
            st.query_params[DATA_PARAM] = folder
    elif DATA_PARAM in st.query_params:
        del st.query_params[DATA_PARAM]
    return folder


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
    if params.get(DATA_PARAM, "").strip():
        st.session_state["data_dir"] = params[DATA_PARAM].strip()
    for param, key in _LINKED.items():
        if param in params:
            st.session_state[key] = params[param]
    st.session_state["_state_ready"] = True


def _url_value(value: str | int | list[str]) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)


def share(**values) -> None:
    """Store shared selections and mirror them into the URL."""
    for key, value in values.items():
        st.session_state[key] = value
        st.query_params[key] = _url_value(value)


def pick_patient(data: LGGData, label: str = "Patient") -> str:
    """Patient selector that remembers the choice across pages; whole patients first, partial ones marked."""
    patients = sorted(data.patients, key=lambda p: p in data.partial)
    current = st.session_state.get("patient")
    if current is not None and current not in patients:
        st.warning(f"{current} is not in the loaded data folder, so {patients[0]} is shown instead. To see it, set "
                   "the sidebar's data folder to a kaggle_3m copy that holds it (the link keeps that folder).")
    patient = follow(st.selectbox, "patient", current if current in patients else patients[0], label, patients,
                     valid=patients.__contains__,
                     format_func=lambda p: f"{p} (gallery slices only)" if p in data.partial else p)
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
        asked, current = current, (numbers[int(np.argmax(data.index["tumor_pixels"].to_numpy()[rows]))]
                                   if tumor.any() else numbers[0])
        if asked is not None and patient in data.partial:
            st.warning(f"Slice {asked} of {patient} is not bundled (only the failure gallery's slices of this "
                       f"patient are), so slice {current} is shown instead.")
    number = follow(st.select_slider, "slice", current, label, numbers, valid=numbers.__contains__)
    share(slice=number)
    return number, int(rows[numbers.index(number)])


def pick_linked(label: str, options: list[str], param: str) -> str:
    """A choice (the Leaderboard's pair, the Models page's model) remembered across pages and kept in the URL under
    ``param`` (once it is not the first option), so that a reload or a shared link opens the same one."""
    key = _LINKED[param]
    selected = follow(st.selectbox, key, remembered(key, options), label, options, valid=options.__contains__)
    st.session_state[key] = selected
    if selected != options[0]:
        st.query_params[param] = selected
    elif param in st.query_params:
        del st.query_params[param]
    return selected


def pick_section(sections: list[str], linked: dict[str, str] | None = None) -> tuple[str, DeltaGenerator]:
    """The Leaderboard's tabs, of which only the open one is drawn (each tab the browser draws adds to every visit).

    The open tab is kept in the URL (once it is not the first) and remembered across pages, as the pair is.

    Args:
        sections: the tabs' labels, the first open by default.
        linked: URL parameter -> the tab that shows it, for a link that names a selection but no tab (links made
            before the tabs existed carried only ``pair``).

    Returns:
        The open tab's label and its container.
    """
    remembered = f"_{SECTION_KEY}"
    # The tabs' own state is dropped on pages that do not draw them: seed it from the link, else from the last visit.
    if SECTION_KEY not in st.session_state:
        implied = next((tab for param, tab in (linked or {}).items() if param in st.query_params), None)
        wanted = st.query_params.get(SECTION_PARAM) or implied or st.session_state.get(remembered)
        if wanted in sections:
            st.session_state[SECTION_KEY] = wanted
    tabs = st.tabs(sections, key=SECTION_KEY, on_change="rerun")
    # Not bind="query-params": a page whose URL holds a bound widget cannot st.switch_page (Streamlit 1.67).
    section = st.session_state[SECTION_KEY]
    st.session_state[remembered] = section
    if section != sections[0]:
        st.query_params[SECTION_PARAM] = section
    elif SECTION_PARAM in st.query_params:
        del st.query_params[SECTION_PARAM]
    return section, tabs[sections.index(section)]


def remembered(key: str, options: list) -> Any:
    """The option stored under ``key`` in session state (the first when none or no longer offered)."""
    value = st.session_state.get(key)
    return value if value in options else options[0]


def follow(draw: Callable[..., Any], key: str, shared: Any, *args: Any, valid: Callable[[Any], bool],
           **kwargs: Any) -> Any:
    """Draw a widget (``draw(*args, key=..., **kwargs)``) whose value is a choice shared in session state.

    The widget keeps one fixed key. One without a key, whose default follows the shared choice, changes identity with
    it: the browser replaces it in the next rerun, and input made meanwhile can be lost (every other arrow-key step
    on the slice slider was). Its value is
    ``shared``, except in the run that follows a move of the widget itself: Streamlit forgets a widget's value on a
    page that did not draw it, so it is set again every other time.

    Args:
        draw: a Streamlit widget function (``st.selectbox``, a column's ``slider``...).
        key: names the widget's state (``_<key>_box``) and the value it last showed (``_<key>_shown``).
        shared: the choice as the rest of the app knows it (from the URL, another page, a default).
        valid: whether a value the widget holds is still among its options.
    """
    box, shown = f"_{key}_box", f"_{key}_shown"
    moved = (box in st.session_state and valid(st.session_state[box]) and st.session_state.get(shown) == shared
             and st.session_state[box] != shared)
    if not moved:
        st.session_state[box] = shared
    value = draw(*args, key=box, **kwargs)
    st.session_state[shown] = value
    return value


def pick_models(options: list[str], label: str, max_selections: int, default_count: int = 2) -> list[str]:
    """Multiselect of models, remembering the choice across pages."""
    kept = [m for m in st.session_state.get("models", []) if m in options][:max_selections]
    chosen = follow(st.multiselect, "models", kept or options[:default_count], label, options,
                    valid=lambda value: set(value) <= set(options), max_selections=max_selections)
    share(models=chosen)
    return chosen


def open_slice(page: str, patient: str, number: int, models: list[str] | None = None) -> None:
    """Jump to ``page`` showing that slice (failure gallery, the Leaderboard's pairs, Compare's Explain button).

    The new page's URL carries the selection from the start: the browser gets a history entry for every change of the
    URL, and one set afterwards, a parameter at a time, would take Back several presses to leave the page.
    """
    st.session_state.update(patient=patient, slice=number, **({"models": models} if models else {}))
    params = {key: _url_value(st.session_state[key]) for key in SHARED if key in st.session_state}
    if DATA_PARAM in st.query_params:
        params[DATA_PARAM] = st.query_params[DATA_PARAM]
    st.switch_page(page, query_params=params)


def _open_clicked_slice(key: str) -> None:
    """``on_select`` callback of :func:`slice_chart`: the clicked point's slice becomes the shown one."""
    points = st.session_state[key]["selection"]["points"]
    if points and points[0].get("x") is not None:
        st.session_state["slice"] = int(points[0]["x"])


def slice_chart(figure: go.Figure, key: str) -> None:
    """Draw a figure whose x axis is a patient's slice numbers; clicking a point opens that slice.

    The callback runs before the rerun, so the slice slider is drawn at the clicked slice straight away.
    """
    st.plotly_chart(figure, key=key, on_select=partial(_open_clicked_slice, key), selection_mode="points")


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


# A patient's role in a model's split (:func:`~lgg_core.serving.records.patient_role`), in words.
ROLE_WORDS = {"train": "training", "val": "validation", "test": "held-out test", None: "not in its split"}


def show_patient_roles(patient: str, names: list[str]) -> None:
    """Say, per model, whether ``patient`` was among its training, validation or held-out patients.

    Scores on a model's own training patients look good and prove nothing, so those get a warning.
    """
    found = {r.name: r for r in records()[0] if r.ok}
    # A gated pipeline's masks come from its segmenter: that model's patients are what matters.
    found |= {name: pair[1] for name, pair in gated_options().items()}
    roles = {name: patient_role(found[name], patient) for name in names if name in found}
    trained = [name for name, role in roles.items() if role in ("train", "val")]
    if trained:
        st.warning(f"{patient} was a training or validation patient of {', '.join(trained)}: "
                   "its scores there are not a fair test.")
    st.caption(" · ".join(f"{name}: {ROLE_WORDS[role]}" for name, role in roles.items()))
    if stored := [name for name in names if name in stored_only()]:
        st.caption(f"{', '.join(stored)}: weights not bundled, so the masks shown are those `lgg evaluate` stored on "
                   "the test patients (no uncertainty or Grad-CAM; see the Models page for how to get the weights).")
    if yours := [name for name in names if name in visitor_segmenters()]:
        st.caption(f"{yours[0]}: the masks you scored on the Leaderboard, shown to you only (no uncertainty or "
                   "Grad-CAM: there is no model to run).")


def _half(result: Uncertainty) -> Uncertainty:
    """The maps in float16, to halve what the caches hold."""
    return Uncertainty(result.pixel.astype(np.float16), result.slice)


@st.cache_data(show_spinner=False, max_entries=128)
def _slice_uncertainty(name: str, dataset_hash: str, row: int, weights_key: str) -> Uncertainty:
    data = dataset()
    # The unmirrored view is the cached prediction the page already shows: TTA costs one more forward pass.
    return _half(tta_uncertainty(partial(predict_masks, name), dataset_inputs(name, data, np.array([row])),
                                 probs=slice_probs(name, data, row)[None]))


def slice_uncertainty(name: str, data: LGGData, row: int) -> Uncertainty:
    """One slice's flip-TTA uncertainty (:func:`~lgg_core.explain.uncertainty.tta_uncertainty`), cached per row."""
    return _slice_uncertainty(name, data.dataset_hash, row, weights_key(name))


@st.cache_data(show_spinner=False, max_entries=8)
def _patient_uncertainty(name: str, dataset_hash: str, patient: str, weights_key: str) -> Uncertainty:
    data = dataset()
    return _half(tta_uncertainty(partial(predict_masks, name), dataset_inputs(name, data, data.rows([patient])),
                                 probs=patient_probs(name, data, patient)))


def patient_uncertainty(name: str, data: LGGData, patient: str) -> Uncertainty:
    """Flip-TTA uncertainty of every slice of ``patient``, cached per model, data and patient."""
    return _patient_uncertainty(name, data.dataset_hash, patient, weights_key(name))
