"""AppTest of the Upload page with odd and hostile files: the visitor gets the app's own words, never a traceback."""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from streamlit.testing.v1 import AppTest
from uploads import (MRI, animated_gif, assert_own_message, deflated, deflated_dicom, dicom_bytes, mr_dataset,
                     pil_bytes, png_claiming, tif_bytes, tiff_claiming, zeros)

import lgg_core.data.upload
from lgg_core.app.state import lone_slice_note
from lgg_core.evaluation.metrics import slice_metrics
from lgg_core.serving.records import ModelRecord, load_predictor_for, resolve_models

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


pytestmark = pytest.mark.usefixtures("app_env")


def upload_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    return at.switch_page("pages/upload.py").run()


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, (name, [e.value for e in at.exception])
    return at


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


# Each is refused before any model runs, so one AppTest goes through all of them quickly.
REFUSED = {
    "blank.bmp": pil_bytes(np.zeros((64, 64), np.uint8), "BMP"),
    "blank.gif": pil_bytes(np.zeros((64, 64), np.uint8), "GIF"),
    "blank.webp": pil_bytes(np.zeros((64, 64, 3), np.uint8), "WEBP"),
    "brain.nii": bytes(range(256)) * 40,
    "claims-6300.tif": tiff_claiming(6300, 6300, zlib.compress(bytes(1000))),
    "claims-100000.png": png_claiming(100_000, 100_000),
    "claims-8000.dcm": deflated_dicom(mr_dataset(8000, 8000), zeros(1 << 20), 1 << 20),
    "bomb.tif": tiff_claiming(64, 64, deflated(zeros(16 << 20), zlib.MAX_WBITS), bits=8),
    "cut.tif": tif_bytes(MRI)[:8],
    "text.png": b"this is not an image",
    "ct.dcm": dicom_bytes(MRI[..., 0], modality="CT"),
    "stack.tif": tif_bytes(np.zeros((3, 64, 64, 3), np.uint8)),
    "animated.gif": animated_gif(),
    "complex128.tif": tif_bytes(np.ones((64, 64), np.complex128)),
}


def test_every_refused_upload_gets_the_apps_own_message() -> None:
    at = upload_page()
    for name, data in REFUSED.items():
        upload(at, name, data)
        assert len(at.error) == 1, (name, texts(at.error))
        message = texts(at.error)
        assert f"**{name}** cannot be used: " in message, message
        assert_own_message(message)
    at.switch_page("pages/models.py").run()
    assert not at.exception


def test_any_extension_reaches_the_decoder_and_a_doubtful_slice_is_predicted_with_a_warning() -> None:
    mask = np.where(MRI[..., 0] > 128, 255, 0).astype(np.uint8)
    at = upload(upload_page(), "mask.webp", pil_bytes(mask, "WEBP", lossless=True))
    assert not at.error, texts(at.error)
    assert "segmentation mask" in texts(at.warning) and "mask.webp" in texts(at.warning)
    assert {b.label for b in at.get("download_button")} >= {"Overlay PNG", "Mask PNG"}


def test_an_unforeseen_failure_shows_a_message_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(name: str, data: bytes) -> None:
        raise RuntimeError(f"decoder crashed in {Path(__file__)} at 0xdeadbeef")

    monkeypatch.setattr(lgg_core.data.upload, "read_upload", fail)
    at = upload(upload_page(), "slice.png", pil_bytes(MRI, "PNG"))
    message = texts(at.error)
    assert "**slice.png** could not be read" in message and "crashed" not in message
    assert_own_message(message)


GATED = "gated: resnet18 → unet-mini"


def demo_slice(number: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A bundled slice with tumor and its ground-truth mask."""
    path = next((Path(APP).parent / "demo/kaggle_3m").glob(f"TCGA_HT_7855_*/*_{number}.tif"))
    return tifffile.imread(path), tifffile.imread(path.with_name(f"{path.stem}_mask.tif"))


def with_mask(mask_name: str, mask: bytes, models: list[str]) -> AppTest:
    image, _ = demo_slice()
    at = upload_page()
    at.file_uploader[0].set_value(("slice.tif", tif_bytes(image), "image/tiff"))
    at.file_uploader[1].set_value((mask_name, mask, "application/octet-stream"))
    at.multiselect[0].set_value(models).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_page_explains_standardisation_and_offers_gated_pipelines() -> None:
    at = upload_page()
    assert "Per-slice standardisation: what some models do to your slice first" in [e.label for e in at.expander]
    explained = texts(at.markdown)
    assert "brightening, darkening or stretching a whole" in explained and "A tight crop" in explained
    assert "**Standardise each slice:** none" in explained  # no tiny-zoo model standardises
    assert ("**Use the intensities as they are:** cnn-encdec, unet-mini, resnet18, unet-mini-2.5d, not-evaluated"
            in explained)
    assert {GATED, "gated: resnet18 → cnn-encdec"} <= set(at.multiselect[0].options)
    assert at.file_uploader[1].label == "Ground-truth mask (optional)"


def test_standardisation_is_read_from_the_model_config() -> None:
    model = {"arch": "unet", "task": "segment"}
    assert ModelRecord("std", None, {**model, "arch_kwargs": {"standardize": True}}).standardizes
    assert not ModelRecord("plain", None, {**model, "arch_kwargs": {"base_width": 8}}).standardizes


def test_a_ground_truth_mask_scores_each_model_and_colours_its_errors(app_env: Path) -> None:
    image, truth = demo_slice()
    at = with_mask("truth.png", pil_bytes(truth, "PNG"), ["cnn-encdec", "unet-mini", GATED, "resnet18"])
    assert not at.error, texts(at.error)
    scores = at.dataframe[0].value.set_index("model")
    assert list(scores.index) == ["cnn-encdec", "unet-mini", GATED]  # the classifier has no mask to score
    records = {r.name: r for r in resolve_models(app_env)[0]}
    for name in ("cnn-encdec", "unet-mini"):
        expected = slice_metrics(load_predictor_for(records[name]).predict(image[None])[0] > 0.5, truth > 0)
        assert scores.loc[name, "dice"] == pytest.approx(expected["dice"])
        assert scores.loc[name, "hd95"] == pytest.approx(expected["hd95"], nan_ok=True)
        assert [scores.loc[name, k] for k in ("tp", "fp", "fn")] == [expected[k] for k in ("tp", "fp", "fn")]
    captions = [c for image in at.get("image") for c in image.captions]
    assert f"Ground truth (truth.png): {int((truth > 0).sum())} tumor pixels" in captions
    assert sum("· Dice" in c and "HD95" in c for c in captions) == 3
    verdict = next(c.value for c in at.caption if c.value.startswith("resnet18: tumor probability"))
    if verdict.endswith("mask dropped"):  # the gate empties the mask: nothing found, nothing falsely drawn
        assert scores.loc[GATED, "tp"] == scores.loc[GATED, "fp"] == 0
    else:
        assert verdict.endswith("mask kept")
    assert "256×256 grid" in texts(at.caption)
    next(r for r in at.radio if r.label == "Colours").set_value("TP / FP / FN").run()
    assert not at.exception
    assert all(label in texts(at.markdown) for label in ("TP: tumor found", "FP: false alarm", "FN: missed tumor"))


def test_a_model_taking_neighbours_gets_the_slices_flair_in_their_place_and_says_so(app_env: Path) -> None:
    image, _ = demo_slice()
    at = upload_page()
    at.file_uploader[0].set_value(("slice.tif", tif_bytes(image), "image/tiff"))
    at.multiselect[0].set_value(["unet-mini", "unet-mini-2.5d"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [c.value for c in at.caption if "lone slice" in c.value] == [lone_slice_note("unet-mini-2.5d")]
    record = next(r for r in resolve_models(app_env)[0] if r.name == "unet-mini-2.5d")
    flair_thrice = np.repeat(image[None, ..., 1:2], 3, axis=-1)
    expected = int((load_predictor_for(record).predict(flair_thrice)[0] > 0.5).sum())
    captions = [c for shown in at.get("image") for c in shown.captions]
    assert f"unet-mini-2.5d: {expected} tumor pixels" in captions


def test_a_bad_mask_is_refused_and_the_slice_still_predicted() -> None:
    small = np.zeros((128, 128), np.uint8)
    small[40:60, 40:60] = 255
    at = with_mask("small.png", pil_bytes(small, "PNG"), ["cnn-encdec"])
    message = texts(at.error)
    assert ("**small.png** cannot be used as the ground truth: the mask is 128x128 pixels but the slice is 256x256"
            in message and "without scores" in message)
    assert not at.dataframe and {b.label for b in at.get("download_button")} >= {"Overlay PNG", "Mask PNG"}
    at.file_uploader[1].set_value(("slice.png", pil_bytes(demo_slice()[0], "PNG"), "image/png")).run()
    assert "grey levels" in texts(at.error) and "it looks like an image, not a binary mask" in texts(at.error)


def test_an_unforeseen_mask_failure_shows_a_message_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(name: str, data: bytes, size: tuple[int, int]) -> None:
        raise RuntimeError(f"decoder crashed in {Path(__file__)}")

    monkeypatch.setattr(lgg_core.data.upload, "read_mask_upload", fail)
    at = with_mask("truth.png", pil_bytes(demo_slice()[1], "PNG"), ["cnn-encdec"])
    message = texts(at.error)
    assert "**truth.png** could not be read as a mask" in message and "crashed" not in message
    assert_own_message(message)
