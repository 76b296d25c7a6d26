"""AppTest of every dashboard page against a tiny model zoo and the bundled demo set."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from e2e.zoo import build_tiny_zoo
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")
PAGES = ["leaderboard", "compare", "explain", "failures", "upload", "models", "patient"]


@pytest.fixture(scope="session")
def zoo_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_zoo(tmp_path_factory.getbasetemp() / "tiny-zoo")


@pytest.fixture(autouse=True)
def _app_env(zoo_catalog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LGG_CATALOG", str(zoo_catalog))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def open_page(page: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query or {})
    at.run()
    return at.switch_page(f"pages/{page}.py").run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(page: str) -> None:
    at = open_page(page)
    assert_clean(at)
    assert at.title, f"{page} shows no title"


def test_leaderboard_lists_every_catalog_model_with_status() -> None:
    at = open_page("leaderboard")
    assert_clean(at)
    table = at.dataframe[0].value
    assert set(table["model"]) == {"cnn-encdec", "unet-mini", "resnet18", "not-evaluated", "not-trained-yet",
                                   "from-the-hub"}
    status = table.set_index("model")["status"]
    assert status["cnn-encdec"] == "evaluated"
    assert "not been evaluated" in status["not-evaluated"]
    assert "does not exist" in status["not-trained-yet"]
    assert "Hub" in status["from-the-hub"]
    assert table.set_index("model").loc["cnn-encdec", "patient_dice"] >= 0
    at.button[0].click().run()  # measure CPU latency
    assert_clean(at)
    assert at.dataframe[0].value.set_index("model")["cpu_latency_ms"]["unet-mini"] > 0
    assert len(at.get("plotly_chart")) == 5


def test_compare_shows_each_model_with_metrics_and_shares_the_view() -> None:
    at = open_page("compare")
    assert_clean(at)
    at.multiselect[0].set_value(["cnn-encdec", "unet-mini", "gated: resnet18 → unet-mini"]).run()
    assert_clean(at)
    captions = [c for image in at.get("image") for c in image.captions]
    assert len(captions) == 2 + 3 + 1  # MRI, ground truth, three models, disagreement
    assert sum("Dice" in c and "HD95" in c for c in captions) == 3
    assert at.query_params["models"] == "cnn-encdec,unet-mini,gated: resnet18 → unet-mini"
    at.radio[0].set_value("contour").run()
    at.select_slider[0].set_value(at.select_slider[0].options[0]).run()
    assert_clean(at)
    assert at.query_params["slice"] == str(at.select_slider[0].value)


def test_compare_opens_the_slice_from_the_url() -> None:
    at = open_page("compare", {"patient": "TCGA_HT_7855", "slice": "12", "models": "cnn-encdec,unet-mini"})
    assert_clean(at)
    assert at.selectbox[0].value == "TCGA_HT_7855"
    assert at.select_slider[0].value == 12
    assert at.multiselect[0].value == ["cnn-encdec", "unet-mini"]


@pytest.mark.parametrize("model", ["resnet18", "unet-mini"])
def test_explain_every_method_reports_energy_inside_the_tumor(model: str) -> None:
    at = open_page("explain", {"patient": "TCGA_HT_7855", "slice": "12"})
    model_box = next(s for s in at.selectbox if s.label == "Model")
    model_box.set_value(model).run()
    method_box = next(s for s in at.selectbox if s.label == "Method")
    for method in ("Grad-CAM", "Grad-CAM++", "HiResCAM"):
        method_box.set_value(method).run()
        assert_clean(at)
        energy = {m.label: m.value for m in at.metric}["CAM energy inside the tumor"]
        # A two-batch model may have no positive evidence at a layer: then the page must say so.
        assert energy.endswith("%") or "zero everywhere" in texts(at.caption)
        method_box = next(s for s in at.selectbox if s.label == "Method")
    layer_box = next(s for s in at.selectbox if s.label == "Target layer")
    layer_box.set_value(layer_box.options[-1]).run()
    assert_clean(at)
    assert len(at.get("image")) == 2


def test_explain_segmenter_on_the_true_mask_and_warns_on_an_empty_target() -> None:
    at = open_page("explain", {"patient": "TCGA_HT_7855", "slice": "1"})  # slice 1 has no tumor
    next(s for s in at.selectbox if s.label == "Model").set_value("cnn-encdec").run()
    at.radio[0].set_value("ground-truth mask").run()
    assert_clean(at)
    assert "target mask is empty" in texts(at.warning)


def test_failures_gallery_opens_compare() -> None:
    at = open_page("failures")
    assert_clean(at)
    options = at.selectbox[0].options
    assert "cnn-encdec" in options and "gated: resnet18 → cnn-encdec" in options
    for kind in at.radio[0].options:
        at.radio[0].set_value(kind).run()
        assert_clean(at)
    at.radio[0].set_value(at.radio[0].options[0]).run()  # false positives: the tiny models make plenty
    compare = next(b for b in at.button if b.label == "Compare")
    compare.click().run()
    assert_clean(at)
    assert at.title[0].value == "Compare models on one slice"


def tif_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    return buffer.getvalue()


def test_upload_valid_tif_predicts_and_offers_downloads() -> None:
    at = open_page("upload")
    image = np.asarray(tifffile.imread(next((Path(APP).parent / "demo/kaggle_3m").glob("TCGA_HT_7855_*/*_12.tif"))))
    at.file_uploader[0].set_value(("slice.tif", tif_bytes(image), "image/tiff"))
    at.multiselect[0].set_value(["cnn-encdec", "resnet18"])
    at.run()
    assert_clean(at)
    assert not at.error
    assert {b.label for b in at.get("download_button")} >= {"Overlay PNG", "Mask PNG"}
    assert any("tumor probability" in m.label for m in at.metric)
    assert len(at.get("image")) >= 3  # input, cnn-encdec overlay, Grad-CAM


@pytest.mark.parametrize("name,data", [("notes.png", b"this is not an image"), ("empty.tif", b""),
                                       ("cut.tif", tif_bytes(np.ones((256, 256, 3), np.uint8))[:300])])
def test_upload_bad_file_shows_a_message_and_the_app_keeps_working(name: str, data: bytes) -> None:
    at = open_page("upload")
    at.file_uploader[0].set_value((name, data, "application/octet-stream")).run()
    assert_clean(at)
    assert name in texts(at.error) and "cannot be used" in texts(at.error)
    at.switch_page("pages/models.py").run()
    assert_clean(at)


def test_models_page_shows_card_curves_and_missing_models() -> None:
    at = open_page("models")
    assert_clean(at)
    assert at.metric[0].value == "cnn-encdec"
    assert len(at.get("plotly_chart")) == 1
    at.selectbox[0].set_value("not-trained-yet").run()
    assert_clean(at)
    assert "does not exist" in texts(at.warning)


def test_patient_viewer_dice_strip_follows_the_slice() -> None:
    at = open_page("patient", {"patient": "TCGA_CS_4944", "models": "unet-mini"})
    assert_clean(at)
    assert at.selectbox[1].value == "unet-mini"
    at.select_slider[0].set_value(3).run()
    assert_clean(at)
    assert "slice 3" in at.get("image")[0].captions[0]


def test_missing_data_dir_gives_a_message_not_a_traceback(tmp_path: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.text_input[0].set_value(str(tmp_path / "nowhere")).run()  # the sidebar setting
    at.switch_page("pages/compare.py").run()
    assert_clean(at)
    assert "No `kaggle_3m` dataset at" in texts(at.error)
    at.switch_page("pages/leaderboard.py").run()
    assert_clean(at)
    assert at.dataframe
