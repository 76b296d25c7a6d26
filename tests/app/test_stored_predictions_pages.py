"""Pages with a model whose weights are not bundled: its stored test-patient masks stand in for predictions."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from lgg_core.serving.predictions import load_masks

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
RECORD = "cnn-encdec-record"


@pytest.fixture
def catalog(zoo_catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny zoo's runnable models plus a copy of cnn-encdec without its weights."""
    for name in ("cnn-encdec", "unet-mini", "resnet18"):
        shutil.copytree(zoo_catalog.parent / name, tmp_path / name)
    shutil.copytree(zoo_catalog.parent / "cnn-encdec", tmp_path / RECORD)
    (tmp_path / RECORD / "model.safetensors").unlink()
    path = tmp_path / "models.toml"
    path.write_text("".join(f'[[model]]\nname = "{n}"\npath = "{n}"\n\n'
                            for n in ("cnn-encdec", RECORD, "unet-mini", "resnet18")))
    monkeypatch.setenv("LGG_CATALOG", str(path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return path


def roles(catalog: Path) -> dict[str, list[str]]:
    return json.loads((catalog.parent / RECORD / "split.json").read_text())["roles"]


def open_page(page: str, query: dict) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query)
    at.run()
    return at.switch_page(f"pages/{page}.py").run()


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def test_compare_shows_the_stored_mask_of_a_test_patient(catalog: Path) -> None:
    patient = roles(catalog)["test"][0]
    stored = load_masks(catalog.parent / RECORD / "eval" / "predictions.npz")
    number = int(stored.slices[stored.rows(patient)][np.argmax([m.sum() for m in stored.volume(patient)])])
    at = open_page("compare", {"patient": patient, "slice": str(number), "models": f"cnn-encdec,{RECORD}"})
    assert not at.exception, [e.value for e in at.exception]
    captions = [c for image in at.get("image") for c in image.captions]
    # The stored mask is the same model's prediction: both panels score the same Dice.
    dice = {c.split(" · ")[0]: c.split(" · ")[1] for c in captions if "Dice" in c}
    assert dice[RECORD] == dice["cnn-encdec"]
    assert "weights not bundled" in texts(at.caption)
    at.toggle[0].set_value(True).run()  # uncertainty needs weights: said, not crashed
    assert not at.exception
    assert f"No uncertainty for {RECORD}" in texts(at.caption)


def test_a_patient_without_stored_masks_is_explained(catalog: Path) -> None:
    patient = roles(catalog)["train"][0]
    at = open_page("compare", {"patient": patient, "slice": "1", "models": f"cnn-encdec,{RECORD}"})
    assert not at.exception
    assert "cover its 1 test patients" in texts(at.warning)
    at = open_page("patient", {"patient": patient, "models": RECORD})
    assert not at.exception
    assert "Pick one of its test patients" in texts(at.warning)


def test_patient_viewer_and_models_page_for_a_record_without_weights(catalog: Path) -> None:
    patient = roles(catalog)["test"][0]
    at = open_page("patient", {"patient": patient, "models": RECORD})
    assert not at.exception, [e.value for e in at.exception]
    assert at.get("image") and "Volume Dice" in " ".join(m.label for m in at.metric)
    at = open_page("models", {})
    next(s for s in at.selectbox if s.label == "Model").set_value(RECORD).run()
    assert not at.exception
    assert f"train/zoo.sh {RECORD}" in texts(at.info)


def test_explain_and_upload_offer_only_models_with_weights(catalog: Path) -> None:
    for page in ("explain", "upload"):
        at = open_page(page, {})
        assert not at.exception
        offered = [o for box in [*at.selectbox, *at.multiselect] for o in box.options]
        assert "cnn-encdec" in offered and RECORD not in offered, page
