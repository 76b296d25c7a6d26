"""AppTest of every dashboard page against a tiny model zoo and the bundled demo set."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
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


def open_without_the_held_out_patient(page: str, tmp_path: Path) -> AppTest:
    """``page`` with the sidebar's data folder set to one demo patient that is not the tiny zoo's test patient."""
    import shutil

    from lgg_core.serving.records import DEMO_DIR

    folder = next((DEMO_DIR / "kaggle_3m").glob("TCGA_CS_4944_*"))
    shutil.copytree(folder, tmp_path / "kaggle_3m" / folder.name)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.text_input[0].set_value(str(tmp_path / "kaggle_3m")).run()  # the sidebar setting
    return at.switch_page(f"pages/{page}.py").run()


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(page: str) -> None:
    at = open_page(page)
    assert_clean(at)
    assert at.title, f"{page} shows no title"


def test_leaderboard_lists_every_catalog_model_with_status() -> None:
    at = open_page("leaderboard")
    assert_clean(at)
    table = at.dataframe[0].value
    assert set(table.query("kind == 'model'")["model"]) == {"cnn-encdec", "unet-mini", "resnet18", "unet-mini-2.5d",
                                                            "not-evaluated", "not-trained-yet", "from-the-hub"}
    status = table.set_index("model")["status"]
    assert status["cnn-encdec"] == "evaluated"
    assert "not been evaluated" in status["not-evaluated"]
    assert "does not exist" in status["not-trained-yet"]
    assert "Hub" in status["from-the-hub"]
    assert table.set_index("model").loc["cnn-encdec", "patient_dice"] >= 0
    next(b for b in at.button if b.label == "Measure latency").click().run()
    assert_clean(at)
    assert at.dataframe[0].value.set_index("model")["latency_ms"]["unet-mini"] > 0
    # Only the open tab is drawn, and the first view's forest plot is Vega-Lite: the browser loads no Plotly for it.
    assert not at.get("plotly_chart") and len(at.get("vega_lite_chart")) == 1


@pytest.mark.parametrize("section, charts", [("Against the best", 1), ("Cross-validation", 0), ("Figures", 1),
                                             ("Per institution", 1), ("Two models", 0)])
def test_leaderboard_draws_only_the_open_tab_and_keeps_it_in_the_url(section: str, charts: int) -> None:
    at = open_section(open_page("leaderboard"), section)
    assert_clean(at)
    assert chart_count(at) == charts  # the tiny zoo has no cross-validation run; the matrix on request
    assert at.query_params.get("section") == (None if section == "Against the best" else section)
    linked = open_page("leaderboard", {"section": section})  # a reload, a new tab or a shared link
    assert_clean(linked)
    assert chart_count(linked) == charts and linked.session_state["leaderboard_section"] == section
    assert linked.switch_page("pages/compare.py").run().switch_page("pages/leaderboard.py").run()\
        .session_state["leaderboard_section"] == section  # a trip to another page and back keeps it


def test_leaderboard_link_to_a_tab_that_does_not_exist_opens_the_first() -> None:
    at = open_page("leaderboard", {"section": "No such tab"})
    assert_clean(at)
    assert at.session_state["leaderboard_section"] == "Against the best" and "section" not in at.query_params


def chart_count(at: AppTest) -> int:
    return len(at.get("plotly_chart")) + len(at.get("vega_lite_chart"))


def open_section(at: AppTest, section: str) -> AppTest:
    """Open one of the Leaderboard's tabs, as a click on it does."""
    at.session_state["leaderboard_section"] = section
    return at.run()


def show_every_row(at: AppTest) -> AppTest:
    """Turn on the post-processing variants and gated pipelines (the page lists base models by default)."""
    for label in ("Post-processing variants", "Gated pipelines"):
        next(t for t in at.toggle if t.label == label).set_value(True)
    return at.run()


def shown_cells(frame) -> pd.DataFrame:
    """The text a dataframe element shows in each cell (its Styler display values), indexed by model."""
    from streamlit import dataframe_util

    return dataframe_util.convert_arrow_bytes_to_pandas_df(
        frame.proto.arrow_data.styler.display_values).set_index("model")


def eval_json(catalog: Path, name: str) -> dict:
    import json

    return json.loads((catalog.parent / name / "eval" / "summary.json").read_text())


def test_leaderboard_lists_variants_and_gated_pipelines_with_readable_cells(app_env: Path) -> None:
    import json

    at = open_page("leaderboard")
    assert_clean(at)
    assert not any(" + " in m or m.startswith("gated: ") for m in at.dataframe[0].value["model"])  # base models first
    show_every_row(at)
    frame = at.dataframe[0]
    table = frame.value.set_index("model")
    lcc = eval_json(app_env, "unet-mini")["variants"]["lcc"]
    assert table.loc["unet-mini + largest component", "patient_dice"] == pytest.approx(lcc["patient_dice"])
    assert table.loc["unet-mini + flip TTA", "kind"] == "post-processing"
    assert table.loc["gated: resnet18 → unet-mini", "kind"] == "gated pipeline"
    # The gated pipeline's Dice follows from the two models' slice tables.
    cls, seg = (pd.read_csv(app_env.parent / name / "eval" / "slices.csv") for name in ("resnet18", "unet-mini"))
    raw = seg[seg["variant"] == "raw"].merge(cls[["patient", "slice", "prob"]], on=["patient", "slice"])
    kept = raw.assign(tp=raw["tp"].where(raw["prob"] >= 0.5, 0), fp=raw["fp"].where(raw["prob"] >= 0.5, 0),
                      fn=(raw["tp"] + raw["fn"]).where(raw["prob"] < 0.5, raw["fn"])).sum()
    dice = 2 * kept["tp"] / (2 * kept["tp"] + kept["fp"] + kept["fn"])  # one held-out patient
    assert table.loc["gated: resnet18 → unet-mini", "patient_dice"] == pytest.approx(dice)

    cells = shown_cells(frame)
    raw_summary = eval_json(app_env, "unet-mini")["variants"]["raw"]
    assert cells.loc["unet-mini", "patient_dice"] == f"{raw_summary['patient_dice']:.3f}"  # one patient: no CI
    assert cells.loc["unet-mini", "hd95"] == f"{raw_summary['hd95']:.1f}"
    assert (cells.loc["not-trained-yet", ["patient_dice", "hd95", "params", "fold"]] == "–").all()
    assert cells.loc["resnet18", "hd95"] == "–" and cells.loc["resnet18", "auroc"] != "–"
    columns = json.loads(frame.proto.columns)
    assert columns["hd95"]["label"] == "HD95 (px)" and columns["patient_dice"]["label"] == "Per-patient Dice (95% CI)"
    assert columns["latency_ms"]["label"] == "Latency (ms/slice)" and columns["model"]["pinned"] is True
    order = list(frame.proto.column_order)
    assert order.index("latency_ms") <= 2 and order.index("timed_on") <= 3 and order[-1] == "status"
    assert "base" not in order and "patient_dice_low" not in order

    next(t for t in at.toggle if t.label == "Post-processing variants").set_value(False).run()
    assert_clean(at)
    models = set(at.dataframe[0].value["model"])
    assert not any(" + " in m for m in models) and "gated: resnet18 → cnn-encdec" in models
    next(t for t in at.toggle if t.label == "Gated pipelines").set_value(False).run()
    assert not any(m.startswith("gated: ") for m in at.dataframe[0].value["model"])


def test_leaderboard_latency_times_the_served_predictor_and_is_shared_by_sessions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from lgg_core.app import latency, state

    class ServedPredictor:
        """Stands in for what state.predictor serves, as if the int8 ONNX Runtime path had been chosen."""

        backend, precision = "onnxruntime", "int8"
        calls: list[bool] = []

        def predict(self, images: np.ndarray, batch_size: int = 16, tta: bool = False) -> np.ndarray:
            self.calls.append(tta)
            return np.zeros((len(images), *images.shape[1:3]), np.float32)

    monkeypatch.setattr(state, "predictor", lambda record: ServedPredictor())
    latency.store.clear()
    first = open_page("leaderboard")
    assert first.dataframe[0].value["latency_ms"].isna().all()
    assert "Not measured yet." in texts(first.caption)
    assert not {"latency_ms", "timed_on"} & set(first.dataframe[0].proto.column_order)  # no empty columns
    next(b for b in first.button if b.label == "Measure latency").click().run()
    assert_clean(first)
    assert {"latency_ms", "timed_on"} <= set(first.dataframe[0].proto.column_order)
    show_every_row(first)
    # Four runnable segmenters (raw, largest component, flip TTA) and a classifier, each 1 warm-up + 5 timed calls.
    assert len(ServedPredictor.calls) == (4 * 3 + 1) * 6 and sum(ServedPredictor.calls) == 4 * 6
    timed = first.dataframe[0].value.set_index("model")
    assert timed.loc["unet-mini", "timed_on"] == "ONNX Runtime int8 · CPU" and timed.loc["unet-mini", "latency_ms"] > 0
    assert timed.loc["unet-mini + flip TTA", "timed_on"] == "ONNX Runtime int8 · CPU"
    assert timed.loc["gated: resnet18 → unet-mini", "timed_on"] == "PyTorch fp32 · CPU"  # the gate runs torch parts
    assert np.isnan(timed.loc["not-trained-yet", "latency_ms"])
    open_section(first, "Figures")
    next(g for g in first.button_group if g.key == "leaderboard_figure").set_value("Quality vs latency").run()
    assert_clean(first)
    x_titles = [json.loads(chart.proto.spec)["layout"].get("xaxis", {}).get("title", {}).get("text")
                for chart in first.get("plotly_chart")]
    assert "Latency (ms/slice)" in x_titles

    second = show_every_row(open_page("leaderboard"))  # another visitor: nothing measured, the same numbers
    assert_clean(second)
    again = second.dataframe[0].value.set_index("model")
    measured = timed["latency_ms"].dropna()
    assert again.loc[measured.index, "latency_ms"].tolist() == measured.tolist()
    assert len(ServedPredictor.calls) == (4 * 3 + 1) * 6  # reading the store measures nothing


def test_leaderboard_per_institution_table_for_a_chosen_model(app_env: Path) -> None:
    at = show_every_row(open_section(open_page("leaderboard"), "Per institution"))
    assert_clean(at)
    results_for = next(s for s in at.selectbox if s.label == "Results for")
    institutions = at.dataframe[1].value
    segmenter_rows = at.dataframe[0].value.query("task == 'segment' and patient_dice.notna()")
    assert len(institutions) == len(segmenter_rows)  # every row, one institution (HT) in the tiny zoo's test set
    results_for.set_value("unet-mini + largest component").run()
    assert_clean(at)
    patients = pd.read_csv(app_env.parent / "unet-mini" / "eval" / "patients.csv")
    lcc = patients[patients["variant"] == "lcc"]
    assert at.dataframe[1].value.to_dict("records") == [{
        "Institution": lcc["institution"].iloc[0], "Model": "unet-mini + largest component", "Patients (n)": 1,
        "Per-patient Dice (95% CI)": f"{lcc['dice'].iloc[0]:.3f}"}]
    assert "Per institution" in [h.value for h in at.subheader]


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


def test_compare_explain_button_opens_that_slice_with_the_url_set_at_once() -> None:
    at = open_page("compare", {"patient": "TCGA_HT_7855", "slice": "12", "models": "unet-mini,cnn-encdec"})
    next(b for b in at.button if b.label == "Explain this slice").click().run()
    assert_clean(at)
    assert at.title[0].value == "Explain a prediction"
    assert (at.selectbox[0].value, at.select_slider[0].value) == ("TCGA_HT_7855", 12)
    assert next(s for s in at.selectbox if s.label == "Model").value == "unet-mini"
    # Carried by the switch itself (one browser-history entry, so Back returns to Compare in one press).
    assert dict(at.query_params) == {"patient": "TCGA_HT_7855", "slice": "12", "models": "unet-mini,cnn-encdec"}


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
    assert not at.toggle[0].value  # every case's patient is loaded: nothing to leave out
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


def test_failure_gallery_leaves_out_patients_missing_from_the_data_and_says_how_many(tmp_path: Path) -> None:
    at = open_without_the_held_out_patient("failures", tmp_path)
    assert_clean(at)
    only = next(t for t in at.toggle if t.label == "Only slices in the loaded data")
    assert only.value  # on: every case of the tiny zoo is on its held-out patient, which this folder lacks
    assert at.radio[0].options[0] == "false positives (0)"  # counts of the loaded patients' slices
    assert re.search(r"(\d+) of the \1 false positives of cnn-encdec are on slices not in the loaded data",
                     texts(at.caption))
    assert "None of the false positives of cnn-encdec" in texts(at.info)
    assert not at.get("image") and not [b for b in at.button if b.label == "Compare"]
    only.set_value(False).run()
    assert_clean(at)
    assert "show metrics only" in texts(at.info) and "TCGA_HT_7855" in texts(at.markdown)
    at.switch_page("pages/leaderboard.py").run()
    at.switch_page("pages/failures.py").run()
    assert not next(t for t in at.toggle if t.label == "Only slices in the loaded data").value  # the choice is kept


def test_failure_selections_survive_a_trip_to_another_page() -> None:
    at = open_page("failures")
    at.selectbox[0].set_value("unet-mini").run()
    at.radio[0].set_value("false negatives").run()
    at.switch_page("pages/leaderboard.py").run()
    at.switch_page("pages/failures.py").run()
    assert_clean(at)
    assert (at.selectbox[0].value, at.radio[0].value) == ("unet-mini", "false negatives")


def test_a_changed_selection_keeps_its_widget() -> None:
    """The browser replaces a widget whose identity changes, and drops a click or key press made meanwhile."""
    at = open_page("failures")
    before = [w.id for w in (at.selectbox[0], at.radio[0], at.slider[0], at.toggle[0])]
    at.selectbox[0].set_value("unet-mini").run()
    at.radio[0].set_value("false negatives").run()
    at.slider[0].set_value(24).run()
    at.run()
    assert_clean(at)
    assert [w.id for w in (at.selectbox[0], at.radio[0], at.slider[0], at.toggle[0])] == before
    assert (at.selectbox[0].value, at.radio[0].value, at.slider[0].value) == ("unet-mini", "false negatives", 24)


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
    assert len(at.get("plotly_chart")) == 3  # training curves, pixel and slice reliability diagrams
    at.selectbox[0].set_value("not-trained-yet").run()
    assert_clean(at)
    assert "does not exist" in texts(at.warning)


def test_the_models_page_keeps_its_model_in_the_url_and_says_how_it_was_trained() -> None:
    at = open_page("models")
    assert "model" not in at.query_params  # the first model is the default: the URL stays short
    at.selectbox[0].set_value("unet-mini-2.5d").run()
    assert_clean(at)
    assert at.query_params["model"] == "unet-mini-2.5d"
    linked = open_page("models", {"model": "unet-mini-2.5d"})  # a reload, a new tab or a shared link
    assert_clean(linked)
    assert linked.selectbox[0].value == "unet-mini-2.5d"
    assert "input FLAIR of slices n−1, n, n+1" in texts(linked.markdown)


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
    assert texts(at.error).count("No `kaggle_3m` dataset at") == 1  # said once, not by every part that needs data


def test_leaderboard_pairs_matrix_and_a_pair_opens_compare_on_its_patient() -> None:
    import json

    at = open_section(open_page("leaderboard"), "Two models")
    assert_clean(at)
    matrix = next(t for t in at.toggle if t.label.endswith("pairs: the full matrix and table"))
    count = len(at.get("plotly_chart"))
    matrix.set_value(True).run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == count + 1
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    heatmaps = [f for f in figures if "row − column" in str(f["data"][0].get("colorbar"))]
    assert len(heatmaps) == 1
    heat = heatmaps[0]["data"][0]
    segmenters = {"cnn-encdec", "unet-mini", "unet-mini-2.5d"}
    assert set(heat["x"]) == segmenters and "row − column" in heat["colorbar"]["title"]["text"]
    assert "Holm" in texts(at.caption) and "blue: row higher" in texts(at.caption)
    pair_box = next(s for s in at.selectbox if s.label == "Pair")
    assert len(pair_box.options) == 3
    a, b = pair_box.options[0].split(" vs ")
    assert {a, b} < segmenters and a != b
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


def test_pages_give_a_2_5d_model_its_neighbours_from_the_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    from lgg_core.app import state
    from lgg_core.data.cache import load_dataset
    from lgg_core.data.inputs import stack_inputs
    from lgg_core.serving.records import DEMO_DIR

    seen = {}
    real = state.predict_with_gate
    monkeypatch.setattr(state, "predict_with_gate", lambda name, images: real(name, seen.setdefault(name, images)))
    state._slice_outputs.clear()
    at = open_page("compare", {"patient": "TCGA_HT_7855", "slice": "12", "models": "unet-mini,unet-mini-2.5d"})
    assert_clean(at)
    data = load_dataset(DEMO_DIR, progress=False)
    row = data.rows(["TCGA_HT_7855"])[data.index["slice"].to_numpy()[data.rows(["TCGA_HT_7855"])] == 12]
    np.testing.assert_array_equal(seen["unet-mini"], data.images[row])
    np.testing.assert_array_equal(seen["unet-mini-2.5d"], stack_inputs(data.images, data.index, "flair-2.5d", row))
    assert not np.array_equal(seen["unet-mini-2.5d"], seen["unet-mini"])


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
    at = open_section(open_without_the_held_out_patient("leaderboard", tmp_path), "Two models")
    assert_clean(at)
    compare = next(button for button in at.button if button.label.startswith("Compare slice"))
    assert compare.disabled
    assert "1 of these patients are not in the data folder" in texts(at.caption)


def test_first_dataset_load_reports_progress_to_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from lgg_core.app import state
    from lgg_core.serving.records import DEMO_DIR

    shutil.copytree(DEMO_DIR, tmp_path / "kaggle_3m")  # a folder no earlier test has loaded: a real first load
    reports = []
    real = state.load_dataset

    def spy(path, **kwargs):
        callback = kwargs["on_progress"]
        kwargs["on_progress"] = lambda done, total: (reports.append((done, total)), callback(done, total))
        return real(path, **kwargs)

    monkeypatch.setattr(state, "load_dataset", spy)
    monkeypatch.setenv("LGG_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.text_input[0].set_value(str(tmp_path / "kaggle_3m")).run()
    at.switch_page("pages/patient.py").run()
    assert_clean(at)
    assert reports and reports[-1][0] == reports[-1][1] == 64  # the demo set's slices, all decoded
    assert at.get("image")
    for page in ("compare", "failures", "patient"):  # later pages reuse the load: no second decode, no replay error
        at.switch_page(f"pages/{page}.py").run()
        assert_clean(at)
    assert len(reports) == 2


def test_leaderboard_builds_gated_pipelines_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gated rows (a bootstrap per classifier and segmenter) were most of a cold start: off by default, not built."""
    import streamlit as st

    from lgg_core.evaluation import leaderboard

    st.cache_data.clear()  # earlier tests' cached boards would hide what this page computes
    built = []
    real = leaderboard.gated_row
    monkeypatch.setattr(leaderboard, "gated_row", lambda *args: built.append(1) or real(*args))
    at = open_page("leaderboard")
    assert_clean(at)
    assert not built and not any(m.startswith("gated: ") for m in at.dataframe[0].value["model"])
    next(t for t in at.toggle if t.label == "Gated pipelines").set_value(True).run()
    assert built and any(m.startswith("gated: ") for m in at.dataframe[0].value["model"])


def test_the_data_folder_lives_in_the_url_so_a_link_opens_the_same_data(tmp_path: Path) -> None:
    import shutil

    from lgg_core.serving.records import DEMO_DIR

    folder = next((DEMO_DIR / "kaggle_3m").glob("TCGA_CS_4944_*"))
    shutil.copytree(folder, tmp_path / "kaggle_3m" / folder.name)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert "data" not in at.query_params  # the server's default folder stays out of the URL
    at.text_input[0].set_value(str(tmp_path / "kaggle_3m")).run()
    assert at.query_params["data"] == str(tmp_path / "kaggle_3m")

    shared = AppTest.from_file(APP, default_timeout=120)  # another visitor opens the link
    shared.query_params.update({"data": str(tmp_path / "kaggle_3m"), "patient": "TCGA_HT_7855"})
    shared.run()
    assert shared.text_input[0].value == str(tmp_path / "kaggle_3m")  # the sidebar's folder
    shared.switch_page("pages/patient.py").run()
    assert_clean(shared)
    assert shared.selectbox[0].options == ["TCGA_CS_4944"]
    assert "set the sidebar's data folder" in texts(shared.warning)  # the linked patient is not in that folder


def test_the_chosen_pair_is_in_the_url_and_a_link_with_it_opens_it() -> None:
    at = open_section(open_page("leaderboard"), "Two models")
    pair = next(s for s in at.selectbox if s.label == "Pair")
    first, second = pair.options[:2]
    assert "pair" not in at.query_params  # the first pair is the default: the URL stays short
    pair.set_value(second).run()
    assert_clean(at)
    assert at.query_params["pair"] == second
    assert at.query_params["section"] == "Two models"
    shared = open_page("leaderboard", {"section": "Two models", "pair": second})  # a reload, a new tab or a shared link
    assert_clean(shared)
    assert next(s for s in shared.selectbox if s.label == "Pair").value == second
    stale = open_page("leaderboard", {"section": "Two models", "pair": "no-such-model vs other"})  # a model since removed: the first pair
    assert_clean(stale)
    assert next(s for s in stale.selectbox if s.label == "Pair").value == first
    assert "pair" not in stale.query_params
    older = open_page("leaderboard", {"pair": second})  # a link made before the tabs: it names the pair, no tab
    assert_clean(older)
    assert older.session_state["leaderboard_section"] == "Two models"
    assert next(s for s in older.selectbox if s.label == "Pair").value == second
