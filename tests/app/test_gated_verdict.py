"""Gated pipelines say why a mask was dropped: the classifier's probability and decision on every slice shown."""
from __future__ import annotations

import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_patient_page import (APP, CLEAN, MISSED, assert_clean, caption, open_patient, strip_traces, table)

from lgg_core.app.figures import slice_strip
from lgg_core.serving.records import Gate

GATED = "gated: resnet18 → unet-mini"
VERDICT = re.compile(r"resnet18: tumor probability ([\d.]+) (≥|<) 0\.5, mask (kept|dropped)")


def test_strip_draws_the_gate_against_its_threshold() -> None:
    gate = Gate("clf", np.array([0.2, 0.7, 0.4, 0.9]), 0.5)
    fig = slice_strip(table(), 3, "strip", gate=gate)
    marks = {trace.name: trace for trace in fig.data if trace.type == "scatter"}
    assert marks["clf's tumor probability: mask kept"].x == (2, 4)
    assert marks["clf's tumor probability: mask dropped"].y == (0.2, 0.4)
    assert any(shape.y0 == shape.y1 == 0.5 for shape in fig.layout.shapes)


def test_gate_says_its_probability_and_decision() -> None:
    gate = Gate("resnet18", np.array([0.2134, 0.5, 0.49996]), 0.5)
    assert gate.kept.tolist() == [False, True, False]
    assert gate.describe(0) == "resnet18: tumor probability 0.213 < 0.5, mask dropped"
    assert gate.describe(1) == "resnet18: tumor probability 0.500 ≥ 0.5, mask kept"
    assert gate.describe(2) == "resnet18: tumor probability 0.499960 < 0.5, mask dropped"  # not "0.500 < 0.5"


@pytest.mark.usefixtures("app_env")
def test_patient_viewer_gives_the_verdict_on_every_slice_from_the_same_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from lgg_core.app import state
    from lgg_core.serving import shelf

    calls = []
    original = shelf.predict_gated
    monkeypatch.setattr(shelf, "predict_gated", lambda *a, **k: calls.append(len(a[1])) or original(*a, **k))
    state._patient_outputs.clear()
    at = open_patient(GATED)
    assert calls == [20]  # the masks and the verdicts come from one pass over the patient's slices
    traces = strip_traces(at)
    kept = traces["resnet18's tumor probability: mask kept"]
    dropped = traces["resnet18's tumor probability: mask dropped"]
    slices = {x: ("kept", y) for x, y in zip(kept["x"], kept["y"]) if x is not None}
    slices |= {x: ("dropped", y) for x, y in zip(dropped["x"], dropped["y"]) if x is not None}
    assert sorted(slices) == list(range(1, 21))
    assert all((y >= 0.5) == (verdict == "kept") for verdict, y in slices.values())
    # A dropped mask is empty: its slice can only be a clean tumor-free one or a missed tumor.
    empty = {x for name in (MISSED, CLEAN) for x in traces[name]["x"]}
    assert {x for x, (verdict, _) in slices.items() if verdict == "dropped"} <= empty
    verdict, prob = slices[at.select_slider[0].value]
    assert f"resnet18: tumor probability {prob:.3f}" in caption(at) and f"mask {verdict}" in caption(at)


@pytest.mark.usefixtures("app_env")
def test_compare_gives_the_verdict_under_the_gated_panel() -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"patient": "TCGA_HT_7855", "slice": "12", "models": f"cnn-encdec,{GATED}"})
    at.run()
    at = at.switch_page("pages/compare.py").run()
    assert_clean(at)
    captions = [c for image in at.get("image") for c in image.captions]
    gated = next(c for c in captions if c.startswith(GATED))
    found = VERDICT.search(gated)
    assert found and (float(found[1]) >= 0.5) == (found[3] == "kept")
    if found[3] == "dropped":  # slice 12 has tumor: an emptied mask scores Dice 0
        assert "Dice 0.000" in gated
    assert not any(VERDICT.search(c) for c in captions if c.startswith("cnn-encdec"))


@pytest.mark.usefixtures("app_env")
def test_failure_cards_of_a_gated_pipeline_give_the_verdict() -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at = at.switch_page("pages/failures.py").run()
    at.selectbox[0].set_value(GATED).run()
    at.radio[0].set_value("false positives").run()
    assert_clean(at)
    verdicts = [v for v in (VERDICT.search(c.value) for c in at.caption) if v]
    assert len(verdicts) == len([b for b in at.button if b.label == "Compare"]) > 0  # one per card
    # A false positive needs a mask, so the gate must have kept it.
    assert {v[3] for v in verdicts} == {"kept"} and all(float(v[1]) >= 0.5 for v in verdicts)
