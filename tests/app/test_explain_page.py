"""AppTest of the Explain page: faithfulness next to the energy share, a colour bar under the map, described layers,
and for an empty target the slice with the reason there is no map."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


pytestmark = pytest.mark.usefixtures("app_env")


def open_explain(slice_: str, model: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"patient": "TCGA_HT_7855", "slice": slice_})
    at.run()
    at.switch_page("pages/explain.py").run()
    next(s for s in at.selectbox if s.label == "Model").set_value(model).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("model", ["cnn-encdec", "resnet18"])
def test_map_has_faithfulness_colour_bar_and_described_layers(model: str) -> None:
    at = open_explain("12", model)  # slice 12 has tumor
    metrics = {m.label: m.value for m in at.metric}
    assert "CAM energy inside the tumor" in metrics
    faithfulness = metrics["Faithfulness (ROAD)"]
    assert faithfulness == "–" or -1 <= float(faithfulness) <= 1
    assert len(at.get("plotly_chart")) == 1  # the CAM's colour bar
    captions = [c for image in at.get("image") for c in image.captions]
    assert len(captions) == 2 and "green: ground truth" in captions[1]
    layer_box = next(s for s in at.selectbox if s.label == "Target layer")
    assert all(" · " in option for option in layer_box.options)  # AppTest lists the formatted labels
    if model == "cnn-encdec":  # explaining the predicted mask outlines it as the target
        assert "red: target" in captions[1] or "also the target" in captions[1]


def test_empty_target_still_shows_the_slice_and_says_why() -> None:
    at = open_explain("1", "cnn-encdec")  # slice 1 has no tumor
    at.radio[0].set_value("ground-truth mask").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "target mask is empty" in " ".join(w.value for w in at.warning)
    assert len(at.get("image")) == 1
    assert "No map for this slice" in " ".join(m.value for m in at.markdown)
    assert not at.get("plotly_chart")
