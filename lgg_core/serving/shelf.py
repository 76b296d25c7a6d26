"""What the dashboard's pages can show of the catalog, and how each shown model gets its masks; no Streamlit.

A *shelf* sorts the catalog's records into models that run here, models shown from the masks ``lgg evaluate`` stored
(no weights here), and gated pipelines (a classifier deciding whether a segmenter's mask is kept). The app wraps
these functions in its caches (:mod:`lgg_core.app.state`); the logic lives here so it is tested without Streamlit.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from lgg_core.data.cache import LGGData
from lgg_core.serving.predictions import FILE_NAME as PREDICTIONS_FILE, StoredMasks
from lgg_core.serving.records import GATED_PREFIX, Gate, ModelRecord, gated_name, gates, predict_gated

if TYPE_CHECKING:
    from lgg_core.models import LGGModel
    from lgg_core.serving.onnx_backend import Predictor


class MaskSource(Protocol):
    """Masks by (patient, slice number): :class:`~lgg_core.serving.predictions.StoredMasks` or a visitor's scores."""

    def mask(self, patient: str, number: int, variant: str = "raw") -> np.ndarray | None: ...


@dataclass(frozen=True)
class Shelf:
    """The catalog's records as the pages offer them.

    Attributes:
        records: every catalog entry, usable or not (:func:`~lgg_core.serving.records.resolve_models`).
    """

    records: tuple[ModelRecord, ...]

    def usable(self, task: str | None = None) -> dict[str, ModelRecord]:
        """Models that can run here (usable, weights present) by name, optionally of one task."""
        return {r.name: r for r in self.records if r.ok and r.has_weights and (task is None or r.task == task)}

    def stored_only(self) -> dict[str, ModelRecord]:
        """Evaluated segmenters whose weights are not here, by name: shown from the masks ``lgg evaluate`` stored."""
        return {r.name: r for r in self.records if r.ok and not r.has_weights and r.task == "segment"}

    def gated(self) -> dict[str, tuple[ModelRecord, ModelRecord]]:
        """Gated pipelines: every (classifier, segmenter) pair of usable models that take the same inputs."""
        return {gated_name(c, s): (cr, sr) for c, cr in self.usable("classify").items()
                for s, sr in self.usable("segment").items() if gates(cr, sr)}

    def parts(self, name: str) -> tuple[ModelRecord, ...]:
        """The records behind a runnable segmenter or gated pipeline ``name``.

        Raises:
            KeyError: ``name`` is neither; the message lists the valid names.
        """
        found = self.gated().get(name) if name.startswith(GATED_PREFIX) else (self.usable("segment").get(name),)
        if not found or None in found:
            valid = [*self.usable("segment"), *self.gated()]
            raise KeyError(f"{name!r} is not a runnable segmenter or gated pipeline here; valid: {valid}")
        return found

    def inputs_of(self, name: str) -> str:
        """What the segmenter or gated pipeline ``name`` takes (:data:`~lgg_core.data.inputs.INPUTS`)."""
        return self.parts(name)[-1].inputs

    def lone_slice_note(self, name: str) -> str | None:
        """What an uploaded slice gives ``name`` in place of neighbours, for models that take them (else None)."""
        if self.inputs_of(name) == "sequences":
            return None
        return ("Trained on FLAIR of a slice and its two neighbours: a lone slice gives it this slice's FLAIR in their "
                "place, as at a volume's first and last slice (docs: Recipe search, what that costs).")

    def weights_key(self, name: str) -> str:
        """Changes when any file behind ``name``'s masks changes, so cached predictions are not stale."""
        stored = self.stored_only().get(name)
        files = [stored.path / "eval" / PREDICTIONS_FILE] if stored else [r.path / "model.safetensors"
                                                                          for r in self.parts(name)]
        return ",".join(f"{path}:{mtime(path)}" for path in files)


def mtime(path: Path | None) -> float:
    """The file's modification time, 0.0 when it is missing or unreadable (a cache key, never an error)."""
    try:
        return path.stat().st_mtime if path else 0.0
    except OSError:
        return 0.0


def predict_with_gate(shelf: Shelf, name: str, images: np.ndarray, predictor: Callable[[ModelRecord], Predictor],
                      gated_model: Callable[[ModelRecord, ModelRecord], LGGModel]) -> tuple[np.ndarray, Gate | None]:
    """Tumor probabilities (N, H, W) of a segmenter or a gated pipeline, and the pipeline's gate (None otherwise).

    The gate comes from the same forward pass as the mask, so saying why a mask was dropped costs nothing more.

    Args:
        shelf: where ``name`` is looked up.
        name: a runnable segmenter or gated pipeline (:meth:`Shelf.parts`).
        images: the model's inputs (``lgg_core.data.inputs``: a volume's rows or lone uploaded slices).
        predictor: a segmenter record's predictor (the app's is loaded once per process).
        gated_model: the assembled pipeline of a (classifier, segmenter) pair of records.
    """
    parts = shelf.parts(name)
    if len(parts) == 1:
        return predictor(parts[0]).predict(images), None
    classifier, segmenter = parts
    gated = gated_model(classifier, segmenter)
    probs, verdict = predict_gated(gated, images, classifier.input_size, segmenter.input_size)
    return probs, Gate(classifier.name, verdict, float(gated.net.threshold))


def mask_probs(source: MaskSource, data: LGGData, rows: np.ndarray) -> np.ndarray | None:
    """The source's masks of ``rows`` of ``data`` as 0/1 probabilities (N, H, W), or None when one is missing."""
    index = data.index
    masks = [source.mask(p, int(n)) for p, n in zip(index["patient"].to_numpy()[rows],
                                                   index["slice"].to_numpy()[rows])]
    if any(m is None for m in masks):
        return None
    return np.stack(masks).astype(np.float32)


def covers(source: MaskSource, data: LGGData, patient: str) -> bool:
    """Whether the source holds a mask for every loaded slice of ``patient``."""
    numbers = data.index["slice"].to_numpy()[data.rows([patient])]
    return all(source.mask(patient, int(n)) is not None for n in numbers)


def stored_masks_problem(name: str, stored: StoredMasks | str, data: LGGData, patient: str) -> str | None:
    """Why a model shown from the masks ``lgg evaluate`` stored cannot show the patient's loaded slices (None when it
    can); ``stored`` is the masks, or why they could not be read."""
    if isinstance(stored, str):
        return f"{name} has no weights here and no usable stored predictions: {stored}"
    if covers(stored, data, patient):
        return None
    return (f"{name} has no weights here: it shows the masks stored when it was evaluated, which cover its "
            f"{len(set(stored.patients))} test patients and not all of {patient}'s loaded slices.")


def visitor_masks_problem(name: str, scored: MaskSource, patients: int, data: LGGData, patient: str) -> str | None:
    """Why a visitor's scored masks (of ``patients`` patients) cannot show the patient's loaded slices (None when they
    can)."""
    if covers(scored, data, patient):
        return None
    return (f"{name} holds the masks you scored, on {patients} patients, and not all of {patient}'s loaded "
            "slices.")


def half_probs(probs: np.ndarray) -> np.ndarray:
    """float16 probabilities that still threshold like the float32 ones: a value just above 0.5 would round to
    0.5 and drop out of the mask, so it becomes the next float16 above 0.5."""
    half = probs.astype(np.float16)
    half[(probs > 0.5) & (half <= 0.5)] = np.nextafter(np.float16(0.5), np.float16(1))
    return half


class SharedDatasets:
    """Decoded datasets by folder, loaded once per process and shared read-only by every session (LRU).

    A second caller asking for a folder being loaded waits for that load instead of decoding the same files again.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._held: OrderedDict[str, LGGData] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, folder: str, load: Callable[[str], LGGData]) -> LGGData:
        """The dataset of ``folder``, from ``load(folder)`` the first time (evicting the least recently used)."""
        with self._lock:
            if folder in self._held:
                self._held.move_to_end(folder)
                return self._held[folder]
            data = load(folder)
            self._held[folder] = data
            while len(self._held) > self.max_entries:
                self._held.popitem(last=False)
            return data
