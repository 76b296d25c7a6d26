"""The Models page: training curves on two axes with the validation metric named, and a card snippet that works."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from lgg_core.app.figures import training_curves, validation_metric

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")


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
