"""The Models page: training curves on two axes with the validation metric named, reliability diagrams with ECE,
and a card snippet that works."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from lgg_core.app.figures import training_curves, validation_metric

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


def _log(val_column: str) -> pd.DataFrame:
    return pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [1.4, 0.9, 0.7], "train_dice": [0.2, 0.4, 0.5],
                         val_column: [0.3, 0.5, 0.45], "val_score": [0.3, 0.5, 0.45]})


@pytest.mark.parametrize(("column", "name"), [("val_patient_dice", "validation per-patient Dice"),
                                              ("val_auroc", "validation AUROC")])
def test_validation_metric_is_named(column: str, name: str) -> None:
    assert validation_metric(_log(column)) == name
    fig = training_curves(_log(column))
    axes = {trace.name: trace.yaxis for trace in fig.data}
    assert axes == {"training loss": "y", "training Dice (batches)": "y2", name: "y2"}
    assert fig.layout.xaxis.tickformat == "d"
    score_axis = fig.layout.yaxis2
    assert (score_axis.tick0, score_axis.dtick, score_axis.showgrid) == (0, 0.2, False)  # 0, 0.2 … 1 of its own


def test_unknown_validation_metric() -> None:
    assert validation_metric(_log("val_other").drop(columns="val_other")) == "validation score"


def test_models_page_shows_a_runnable_snippet(app_env: Path) -> None:
    catalog = app_env
    at = AppTest.from_file(APP, default_timeout=120).run()
    at = at.switch_page("pages/models.py").run()
    at.selectbox[0].set_value("cnn-encdec").run()
    assert not at.exception, [e.value for e in at.exception]
    card = " ".join(str(m.value) for m in at.markdown)
    assert "OWNER/REPO" not in card and f'load_predictor("{catalog.parent / "cnn-encdec"}")' in card
    assert any("validation per-patient Dice" in str(c.value) for c in at.caption)


def _models_page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at = at.switch_page("pages/models.py").run()
    at.selectbox[0].set_value(name).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _reliability_titles(at: AppTest) -> list[str]:
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    reliability = [f for f in figures if f["data"][0].get("name") == "perfect calibration"]
    assert all(f["layout"]["yaxis2"]["type"] == "log" for f in reliability)  # the bins' sample counts
    return [f["layout"]["title"]["text"] for f in reliability]


def test_models_page_shows_reliability_diagrams_and_ece(app_env: Path) -> None:
    at = _models_page("cnn-encdec")
    titles = _reliability_titles(at)
    assert [t.split(" · ")[0] for t in titles] == ["Pixel level", "Slice level"]
    assert all(t.split(" · ECE ")[1].replace(".", "").isdigit() for t in titles)
    assert [m.label for m in at.metric if "ECE" in m.label] == [
        "Pixel level ECE, all pixels", "Pixel level ECE, p ≥ 0.05", "Slice level ECE"]
    assert any("background pixels" in str(c.value) for c in at.caption)

    at.selectbox[0].set_value("resnet18").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.split(" · ")[0] for t in _reliability_titles(at)] == ["Slice level"]
    assert [m.label for m in at.metric if "ECE" in m.label] == ["Slice level ECE"]


def test_models_page_without_calibration_says_how_to_compute_it(app_env: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    artifact = shutil.copytree(app_env.parent / "cnn-encdec", tmp_path / "old-eval")
    (artifact / "eval" / "calibration.json").unlink()  # evaluated before calibration existed
    catalog = tmp_path / "models.toml"
    catalog.write_text(f'[[model]]\nname = "old-eval"\npath = "{artifact}"\n')
    monkeypatch.setenv("LGG_CATALOG", str(catalog))
    at = _models_page("old-eval")
    assert not _reliability_titles(at)
    assert f"run `lgg evaluate {artifact}` to compute it" in " ".join(str(i.value) for i in at.info)
