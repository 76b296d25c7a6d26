"""AppTest of every dashboard page against a tiny model zoo and the bundled demo set."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")
PAGES = ["leaderboard", "compare", "explain", "failures", "upload", "models", "patient"]


pytestmark = pytest.mark.usefixtures("app_env")


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
    assert len(at.get("plotly_chart")) == 6  # five figures and the pairwise matrix


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
    assert at.multiselect[0].value == ["cnn-encdec", "unet-mini"]  # the failing model next to the best other one
    assert "Pick at least two" not in texts(at.info) and any("cnn-encdec · Dice" in c for i in at.get("image")
                                                           for c in i.captions)


def test_failure_selections_survive_a_trip_to_another_page() -> None:
    at = open_page("failures")
    at.selectbox[0].set_value("unet-mini").run()
    at.radio[0].set_value("false negatives").run()
    at.switch_page("pages/leaderboard.py").run()
    at.switch_page("pages/failures.py").run()
    assert_clean(at)
    assert (at.selectbox[0].value, at.radio[0].value) == ("unet-mini", "false negatives")


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


def test_leaderboard_pairs_matrix_and_a_pair_opens_compare_on_its_patient() -> None:
    import json

    at = open_page("leaderboard")
    assert_clean(at)
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    heatmaps = [f for f in figures if f["data"][0]["type"] == "heatmap"]
    assert len(heatmaps) == 1
    heat = heatmaps[0]["data"][0]
    assert set(heat["x"]) == {"cnn-encdec", "unet-mini"} and "row − column" in heat["colorbar"]["title"]["text"]
    assert "Holm" in texts(at.caption) and "blue: row higher" in texts(at.caption)
    pair_box = next(s for s in at.selectbox if s.label == "Pair")
    a, b = pair_box.options[0].split(" vs ")
    assert {a, b} == {"cnn-encdec", "unet-mini"}
    assert "shared patients" in texts(at.markdown)
    compare = next(button for button in at.button if button.label.startswith("Compare slice"))
    number = int(compare.label.split()[-1])
    compare.click().run()
    assert_clean(at)
    assert at.title[0].value == "Compare models on one slice"
    assert at.selectbox[0].value == "TCGA_HT_7855"  # the tiny zoo's one held-out patient
    assert at.select_slider[0].value == number
    assert at.multiselect[0].value == [a, b]


def colour_bars(at: AppTest) -> list[str]:
    """The titles of the colour bars on the page (figures whose only trace carries a colour scale)."""
    import json

    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return [f["data"][0]["marker"]["colorbar"]["title"]["text"] for f in figures
            if f["data"][0].get("marker", {}).get("showscale")]


def test_compare_errors_mode_and_uncertainty_have_legend_colour_bars_and_matching_captions() -> None:
    at = open_page("compare", {"patient": "TCGA_HT_7855", "slice": "12", "models": "cnn-encdec,unet-mini"})
    next(r for r in at.radio if r.label == "Colours").set_value("TP / FP / FN").run()
    assert_clean(at)
    assert all(label in texts(at.markdown) for label in ("TP: tumor found", "FP: false alarm", "FN: missed tumor"))
    captions = [c for image in at.get("image") for c in image.captions]
    assert sum("Dice" in c for c in captions) == 2
    assert [bar.split("<br>")[0] for bar in colour_bars(at)] == ["minority share of 2 models"]
    assert "Disagreement: minority share of 2 models" in captions
    at.toggle[0].set_value(True).run()
    assert_clean(at)
    bars = colour_bars(at)
    assert len(bars) == 3 and sum("TTA variance" in bar for bar in bars) == 2
    captions = [c for image in at.get("image") for c in image.captions]
    assert {c.split(" · ")[0] for c in captions if "TTA variance · tumor-region mean" in c} == {"cnn-encdec", "unet-mini"}
    for bar in bars:  # every colour bar's quantity is named in a caption
        assert any(bar.split("<br>")[0] in c for c in captions), bar


def test_compare_computes_uncertainty_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from lgg_core.app import state
    from lgg_core.explain import uncertainty

    calls = []
    original = uncertainty.view_probabilities
    monkeypatch.setattr(uncertainty, "view_probabilities", lambda *a, **k: calls.append(1) or original(*a, **k))
    state._slice_uncertainty.clear()
    at = open_page("compare", {"patient": "TCGA_HT_7855", "slice": "12", "models": "cnn-encdec,unet-mini"})
    at.select_slider[0].set_value(13).run()
    assert_clean(at)
    assert not calls  # TTA costs a forward pass per model: none while its view is off
    at.toggle[0].set_value(True).run()
    assert_clean(at)
    assert len(calls) == 2


def test_patient_viewer_errors_mode_and_uncertainty_against_dice() -> None:
    at = open_page("patient", {"patient": "TCGA_CS_4944", "models": "unet-mini"})
    next(r for r in at.radio if r.label == "Colours").set_value("TP / FP / FN").run()
    assert_clean(at)
    assert "against the ground truth" in at.get("image")[0].captions[0]
    assert "FN: missed tumor" in texts(at.markdown)
    assert not colour_bars(at)
    at.toggle[0].set_value(True).run()
    assert_clean(at)
    assert [bar.split("<br>")[0] for bar in colour_bars(at)] == ["TTA variance"]
    heat_caption = at.get("image")[1].captions[0]
    assert heat_caption.startswith("TTA variance of unet-mini") and "tumor-region mean" in heat_caption
    spearman = next(m for m in at.metric if m.label == "Spearman ρ, uncertainty vs Dice")
    assert spearman.value == "–" or -1 <= float(spearman.value) <= 1
    assert "tumor slices" in texts(at.caption)
    at.select_slider[0].set_value(3).run()
    assert_clean(at)
    assert "slice 3" in at.get("image")[0].captions[0]


def test_leaderboard_pair_does_not_link_a_patient_missing_from_the_data(tmp_path: Path) -> None:
    import shutil

    from lgg_core.serving.records import DEMO_DIR

    folder = next((DEMO_DIR / "kaggle_3m").glob("TCGA_CS_4944_*"))  # not the tiny zoo's held-out patient
    shutil.copytree(folder, tmp_path / "kaggle_3m" / folder.name)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.text_input[0].set_value(str(tmp_path / "kaggle_3m")).run()  # the sidebar setting
    at.switch_page("pages/leaderboard.py").run()
    assert_clean(at)
    compare = next(button for button in at.button if button.label.startswith("Compare slice"))
    assert compare.disabled
    assert "1 of these patients are not in the data folder" in texts(at.caption)
