"""Patient viewer: volume Dice per model, a Dice strip where every slice is visible and clickable, and display-only
brightness/contrast."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest

from lgg_core.app.figures import SLICE_OUTCOMES, ZERO_BAR, slice_strip
from lgg_core.data.cache import load_dataset
from lgg_core.data.inputs import stack_inputs
from lgg_core.evaluation.metrics import volume_dice
from lgg_core.serving.records import DEMO_DIR, load_predictor_for, patient_role, resolve_models

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
PATIENT = "TCGA_CS_4944"  # 20 demo slices, tumor on 6-14
FOUND, MISSED, FALSE_ALARM, CLEAN = SLICE_OUTCOMES


def table() -> pd.DataFrame:
    return pd.DataFrame({"slice": [1, 2, 3, 4], "dice": [1.0, 0.0, 0.0, 0.8], "true_tumor": [False, False, True, True],
                         "fp": [0, 35, 0, 3], "fn": [0, 0, 120, 10], "hd95": [np.nan, 362.0, 362.0, 2.5]})


def test_strip_draws_dice_0_below_the_axis_with_its_numbers_in_the_tooltip() -> None:
    fig = slice_strip(table(), 3, "strip", ["fp", "fn", "hd95"])
    bars = {trace.name: trace for trace in fig.data}
    assert list(bars) == list(SLICE_OUTCOMES)
    assert (bars[FALSE_ALARM].x, bars[FALSE_ALARM].y) == ((2,), (ZERO_BAR,))
    assert (bars[MISSED].x, bars[MISSED].y) == ((3,), (ZERO_BAR,))
    assert (bars[FOUND].y, bars[CLEAN].y) == ((0.8,), (1.0,))
    assert fig.layout.yaxis.range[0] < ZERO_BAR < 0
    assert fig.layout.barmode == "overlay"  # grouped bars would shrink and shift each slice's bar
    assert list(bars[FALSE_ALARM].customdata[0]) == ["0.000", "35", "0", "362.000"]
    assert list(bars[CLEAN].customdata[0])[-1] == "–"  # no distance between two empty masks
    assert "fp %{customdata[1]}" in bars[FOUND].hovertemplate


def test_strip_keeps_absent_outcomes_in_the_legend() -> None:
    found_only = table().iloc[[3]]
    bars = {trace.name: trace for trace in slice_strip(found_only, 4, "strip").data}
    assert list(bars) == list(SLICE_OUTCOMES)
    assert bars[FALSE_ALARM].x == (None,) and bars[FOUND].x == (4,)


def open_patient(model: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"patient": PATIENT, "models": model})
    at.run()
    at = at.switch_page("pages/patient.py").run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def strip_chart(at: AppTest):
    return next(chart for chart in at.get("plotly_chart")
                if json.loads(chart.proto.spec)["layout"]["title"]["text"].startswith("Per-slice Dice"))


def strip_traces(at: AppTest) -> dict[str, dict]:
    return {trace["name"]: trace for trace in json.loads(strip_chart(at).proto.spec)["data"]}


def click_slice(at: AppTest, number: int) -> AppTest:
    """Send what the browser sends when the strip's bar of slice ``number`` is clicked, then rerun.

    AppTest has no driver for chart selections, so the chart's widget state is added to the next run's by hand.
    """
    selection = {"selection": {"points": [{"x": number, "y": 0.5, "curve_number": 0, "point_number": 0,
                                           "point_index": 0}], "point_indices": [0], "box": [], "lasso": []}}
    states = at._tree.get_widget_states()
    states.widgets.append(WidgetState(id=strip_chart(at).proto.id, string_value=json.dumps(selection)))
    at._run(states)
    assert_clean(at)
    return at


def caption(at: AppTest) -> str:
    return at.get("image")[0].captions[0]


@pytest.fixture
def expected_dice(app_env: Path) -> dict[str, float]:
    """Volume Dice of each tiny-zoo segmenter on the patient, computed here without the app.

    The barely trained models put many pixels within 0.0002 of 0.5: the app's float16 cache must not flip them.
    """
    data = load_dataset(DEMO_DIR, progress=False)
    rows = data.rows([PATIENT])
    records = {r.name: r for r in resolve_models(app_env)[0]}  # cnn-encdec, unet-mini(-2.5d) and not-evaluated
    probs = {name: load_predictor_for(r).predict(stack_inputs(data.images, data.index, r.inputs, rows))
             for name, r in records.items() if r.ok and r.task == "segment"}
    return {name: volume_dice(p > 0.5, data.masks[rows]) for name, p in probs.items()}


def test_volume_dice_of_the_shown_model_and_of_every_segmenter(app_env: Path, expected_dice: dict) -> None:
    at = open_patient("unet-mini")
    metric = next(m for m in at.metric if m.label == "Volume Dice, unet-mini")
    assert metric.value == f"{expected_dice['unet-mini']:.3f}"
    assert not at.dataframe  # every model costs a pass over the patient: only on request
    next(t for t in at.toggle if t.label == "Volume Dice of every segmenter").set_value(True).run()
    assert_clean(at)
    scores = at.dataframe[0].value
    assert list(scores["volume Dice"]) == sorted(scores["volume Dice"], reverse=True)
    scores = scores.set_index("model")
    assert set(scores.index) == set(expected_dice)
    records = {r.name: r for r in resolve_models(app_env)[0]}
    role = {"train": "training", "val": "validation", "test": "held-out test"}[patient_role(records["unet-mini"],
                                                                                          PATIENT)]
    assert scores.loc["unet-mini", f"{PATIENT} was a"] == role
    for name, dice in expected_dice.items():
        assert scores.loc[name, "volume Dice"] == pytest.approx(dice, abs=1e-9)


@pytest.mark.usefixtures("app_env")
def test_every_slice_has_a_visible_bar_and_a_click_opens_it() -> None:
    at = open_patient("unet-mini")
    traces = strip_traces(at)
    shown = {x: y for name in SLICE_OUTCOMES for x, y in zip(traces[name]["x"], traces[name]["y"]) if x is not None}
    assert sorted(shown) == list(range(1, 21))
    assert all(y != 0 for y in shown.values())  # Dice 0 (a false alarm or a miss) is a bar below the axis
    assert all(x in range(6, 15) for name in (FOUND, MISSED) for x in traces[name]["x"] if x is not None)
    assert at.select_slider[0].value == 10  # the largest tumor
    click_slice(at, 3)
    assert at.select_slider[0].value == 3 and "slice 3" in caption(at)
    assert at.query_params["slice"] == "3"
    at.select_slider[0].set_value(12).run()  # the click does not pin the slice
    assert_clean(at)
    assert at.select_slider[0].value == 12 and "slice 12" in caption(at)


@pytest.mark.usefixtures("app_env")
def test_brightness_and_contrast_change_the_display_only() -> None:
    at = open_patient("unet-mini")
    before = caption(at)
    window = next(s for s in at.slider if s.label == "Brightness / contrast")
    assert window.value == (0, 255) and "Display only" in window.help
    window.set_value((0, 100)).run()
    assert_clean(at)
    after = caption(at)
    assert "intensities 0–100 stretched (display only)" in after
    assert after.split(" · shown with")[0] == before  # same prediction and Dice
