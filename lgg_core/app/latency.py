"""Latency of what this server really runs, measured once and shown to every session.

Each model is timed through the predictor the pages use (:func:`lgg_core.app.state.predictor`: ONNX Runtime or
PyTorch, on the device picked for the app), a gated pipeline through :func:`lgg_core.app.state.predict_masks`, and
each post-processing variant as its own call (flip TTA: two passes; largest component: the pass plus the component
search). Measurements live in one :class:`~lgg_core.serving.latency.LatencyStore` per process, keyed by model,
variant and the weights' modification times, so retrained weights are never shown with an old time.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from lgg_core.app import state
from lgg_core.serving.latency import Latency, LatencyStore, backend_label
from lgg_core.serving.postprocess import largest_component
from lgg_core.serving.records import ModelRecord

# One 256² slice, batch 1: what a page asks for when a visitor moves to another slice.
SLICE = np.random.default_rng(0).integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
REPEATS = 5


@st.cache_resource(show_spinner=False)
def store() -> LatencyStore:
    """The process-wide store: one per server, shared by every session and thread."""
    return LatencyStore()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _version(*records: ModelRecord) -> tuple[tuple[str, float], ...]:
    return tuple((str(r.path), _mtime(r.path / "model.safetensors")) for r in records)


def _largest_component(predictor: Any) -> None:
    largest_component(predictor.predict(SLICE)[0] > 0.5)


def _calls(predictor: Any) -> dict[str, Callable[[], Any]]:
    """The call timed for each variant of a segmenter (``raw`` alone for a classifier)."""
    return {"raw": partial(predictor.predict, SLICE), "tta": partial(predictor.predict, SLICE, tta=True),
            "lcc": partial(_largest_component, predictor)}


def _jobs(load: bool) -> dict[tuple[str, str], tuple[tuple, Callable[[], Any] | None, str | None]]:
    """(model or pipeline, variant) -> (store key, call, backend label) of everything this host can run.

    Without ``load`` only the keys are built (call and label None), so reading the store never loads a model.
    """
    jobs = {}
    for task, variants in (("segment", ("raw", "lcc", "tta")), ("classify", ("raw",))):
        for name, record in state.usable(task).items():
            predictor = state.predictor(record) if load else None
            calls, label = (_calls(predictor), backend_label(predictor)) if load else ({}, None)
            for variant in variants:
                jobs[(name, variant)] = ((name, variant, _version(record)), calls.get(variant), label)
    # Gated pipelines run on the PyTorch models (the gate needs both parts), on the app's device.
    label = f"PyTorch fp32 · {state.device().type.upper()}" if load else None
    for name, parts in state.gated_options().items():
        call = partial(state.predict_masks, name, SLICE) if load else None
        jobs[(name, "raw")] = ((name, "raw", _version(*parts)), call, label)
    return jobs


def latencies() -> dict[tuple[str, str], Latency]:
    """The stored measurements of the current weights, by (model or pipeline name, variant)."""
    found = {entry: store().get(key) for entry, (key, _, _) in _jobs(load=False).items()}
    return {entry: latency for entry, latency in found.items() if latency is not None}


def measure_all() -> dict[tuple[str, str], Latency]:
    """Time every model, variant and gated pipeline this host can run (:data:`REPEATS` calls each) and store them.

    Another session's measurement in progress is waited for, not run alongside.
    """
    return {entry: store().measure(key, call, label, REPEATS) for entry, (key, call, label) in _jobs(load=True).items()}
