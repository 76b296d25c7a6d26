"""The pages' model logic without Streamlit: which models show, how each gets its masks, the shared dataset cache."""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lgg_core.data.cache import LGGData
from lgg_core.serving.records import Gate, build_gated, load_model, load_predictor_for, resolve_models
from lgg_core.serving.shelf import (
    SharedDatasets,
    Shelf,
    covers,
    half_probs,
    mask_probs,
    mtime,
    predict_with_gate,
    stored_masks_problem,
    visitor_masks_problem,
)
from lgg_core.serving.predictions import StoredMasks


@pytest.fixture(scope="module")
def shelf(zoo_catalog: Path) -> Shelf:
    """The tiny zoo, plus one of its segmenters as an evaluation record without weights."""
    records, problem = resolve_models(zoo_catalog)
    assert problem is None
    unet = next(r for r in records if r.name == "unet-mini")
    return Shelf((*records, dataclasses.replace(unet, name="record-only", has_weights=False)))


def test_the_shelf_sorts_runnable_stored_and_gated_models(shelf: Shelf) -> None:
    assert set(shelf.usable("segment")) == {"cnn-encdec", "unet-mini", "unet-mini-2.5d", "not-evaluated"}
    assert set(shelf.usable("classify")) == {"resnet18"}
    assert set(shelf.stored_only()) == {"record-only"}
    # The 2.5D segmenter takes other inputs than the classifier, so no pipeline pairs them.
    assert set(shelf.gated()) == {f"gated: resnet18 → {s}" for s in ("cnn-encdec", "unet-mini", "not-evaluated")}
    assert shelf.inputs_of("unet-mini-2.5d") == "flair-2.5d"
    assert shelf.inputs_of("gated: resnet18 → unet-mini") == "sequences"


@pytest.mark.parametrize("name", ["record-only", "resnet18", "nope"])
def test_a_name_that_cannot_run_is_a_key_error_listing_valid_ones(shelf: Shelf, name: str) -> None:
    with pytest.raises(KeyError, match="valid: .*unet-mini-2.5d.*gated: resnet18"):
        shelf.parts(name)


def test_the_weights_key_follows_every_file_behind_a_name(shelf: Shelf) -> None:
    key = shelf.weights_key("gated: resnet18 → unet-mini")
    assert all(f"{shelf.usable()[n].path / 'model.safetensors'}:" in key for n in ("resnet18", "unet-mini"))
    assert "predictions" in shelf.weights_key("record-only")
    assert mtime(Path("/no/such/file")) == 0.0


def test_a_gated_pipeline_predicts_with_the_verdict_of_its_classifier(shelf: Shelf, sample_data: LGGData) -> None:
    images = sample_data.images[:6]
    probs, gate = predict_with_gate(shelf, "gated: resnet18 → unet-mini", images, load_predictor_for,
                                    lambda c, s: build_gated(load_model(c), load_model(s)))
    alone, none = predict_with_gate(shelf, "unet-mini", images, load_predictor_for, build_gated)
    assert isinstance(gate, Gate) and none is None and gate.classifier == "resnet18"
    assert probs.shape == alone.shape == (6, 256, 256)
    assert np.allclose(probs[gate.kept], alone[gate.kept], atol=1e-5)  # kept: the segmenter's own mask
    assert not probs[~gate.kept].any()  # dropped: nothing


class _Masks:
    """A mask source holding one slice."""

    def __init__(self, patient: str, number: int, mask: np.ndarray) -> None:
        self.key, self.held = (patient, number), mask

    def mask(self, patient: str, number: int, variant: str = "raw") -> np.ndarray | None:
        return self.held if (patient, number) == self.key else None


def test_masks_become_probabilities_only_where_the_source_holds_every_slice(sample_data: LGGData) -> None:
    patient = sample_data.patients[0]
    rows = sample_data.rows([patient])
    source = _Masks(patient, int(sample_data.index["slice"].to_numpy()[rows[0]]), np.eye(256, dtype=bool))
    probs = mask_probs(source, sample_data, rows[:1])
    assert probs.dtype == np.float32 and np.array_equal(probs[0], np.eye(256))
    assert mask_probs(source, sample_data, rows[:2]) is None
    assert not covers(source, sample_data, patient)


def test_a_model_shown_from_masks_says_why_a_patient_cannot_be_shown(sample_data: LGGData) -> None:
    patient = sample_data.patients[0]
    numbers = sample_data.index["slice"].to_numpy()[sample_data.rows([patient])]
    packed = np.zeros((len(numbers), 256 * 256 // 8), np.uint8)
    full = StoredMasks(np.array([patient] * len(numbers)), numbers, (256, 256), {"raw": packed})
    part = StoredMasks(full.patients[:1], full.slices[:1], (256, 256), {"raw": packed[:1]})
    assert stored_masks_problem("unet", full, sample_data, patient) is None
    assert stored_masks_problem("unet", part, sample_data, patient) == (
        f"unet has no weights here: it shows the masks stored when it was evaluated, which cover its 1 test "
        f"patients and not all of {patient}'s loaded slices.")
    assert stored_masks_problem("unet", "predictions.npz is damaged", sample_data, patient).endswith("damaged")
    assert visitor_masks_problem("mine", full, 22, sample_data, patient) is None
    assert "the masks you scored, on 22 patients" in visitor_masks_problem("mine", part, 22, sample_data, patient)


def test_only_a_model_that_takes_neighbours_gets_a_lone_slice_note(shelf: Shelf) -> None:
    assert "FLAIR of a slice and its two neighbours" in shelf.lone_slice_note("unet-mini-2.5d")
    assert shelf.lone_slice_note("unet-mini") is None


def test_cached_half_precision_probabilities_keep_the_mask() -> None:
    probs = np.array([0.5, 0.50001, 0.49999, 0.9, 0.1], dtype=np.float32)
    assert np.array_equal(half_probs(probs) > 0.5, probs > 0.5)


def test_concurrent_visitors_share_one_load_and_the_oldest_folder_leaves_first() -> None:
    loads: list[str] = []

    def load(folder: str) -> LGGData:
        loads.append(folder)
        time.sleep(0.05)  # long enough for the other threads to arrive during the load
        return object()  # type: ignore[return-value]

    datasets = SharedDatasets(max_entries=2)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(datasets.get("a", load))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == ["a"] and all(g is got[0] for g in got)
    datasets.get("b", load)
    datasets.get("a", load)  # "a" is now the most recent, so "b" leaves when "c" arrives
    datasets.get("c", load)
    datasets.get("a", load)
    datasets.get("b", load)
    assert loads == ["a", "b", "c", "b"]
