"""The Leaderboard's "Add your predictions": scored in the visitor's session only, joined to the table and the tests."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit import dataframe_util
from streamlit.testing.v1 import AppTest

from lgg_core.app.stored import tables_dir

from lgg_core.app.external import YOURS_AXIS, forest_figure, forest_rows, report_html
from lgg_core.data.cache import load_dataset
from lgg_core.evaluation import external
from lgg_core.serving.records import DEMO_DIR

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
EXAMPLE = Path(__file__).resolve().parents[2] / "demo" / "example-predictions.zip"

pytestmark = pytest.mark.usefixtures("app_env")


def leaderboard() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    return at.switch_page("pages/leaderboard.py").run()


def board(at: AppTest):
    """The leaderboard table (the only frame with a model column)."""
    return next(frame.value for frame in at.dataframe if "model" in frame.value.columns)


def upload_and_score(at: AppTest, name: str, data: bytes, split: str = "cv") -> AppTest:
    at.file_uploader(key="your_predictions_file").set_value((name, data, "application/zip")).run()
    at.radio(key="your_predictions_split").set_value(split).run()
    return at.button[0].click().run()  # "Score" comes first on the page


def test_example_predictions_join_the_table_and_the_tests_in_this_session_only() -> None:
    at = upload_and_score(leaderboard(), "example-predictions.zip", EXAMPLE.read_bytes())
    assert not at.exception and not at.error
    assert "yours: example-predictions" in set(board(at)["model"])
    shown = " ".join(str(m.value) for m in at.markdown)
    assert "yours: example-predictions** on 3 patients" in shown and "per-patient Dice 0.728" in shown
    comparison = at.dataframe[0].value
    row = comparison.set_index("Against").loc["unet-resnet50-transfer"]
    assert row["Patients"] == 3 and row["Yours − theirs (95% CI)"].startswith("+0.000")
    assert {b.label for b in at.get("download_button")} >= {"Per-patient CSV", "HTML report"}
    assert len(at.get("imgs")) or len(at.get("image"))  # the worst slices are drawn
    # Another visitor's session, on the same server, sees none of it.
    other = leaderboard()
    assert not other.exception
    assert not any("yours:" in str(v) for v in board(other)["model"])


def test_fold0_on_the_demo_set_says_which_patients_are_missing() -> None:
    at = upload_and_score(leaderboard(), "example-predictions.zip", EXAMPLE.read_bytes(), split="fold0")
    assert not at.exception
    assert "of fold 0's 22 test patients are not in" in " ".join(e.value for e in at.error)


@pytest.mark.parametrize("name, data, message", [
    ("escape.zip", None, "outside the archive"),
    ("broken.zip", b"PK\x03\x04 not really", "not a .zip or .npz"),
])
def test_hostile_upload_gets_one_message_and_the_page_keeps_working(tmp_path: Path, name: str, data: bytes | None,
                                                                   message: str) -> None:
    if data is None:
        with zipfile.ZipFile(tmp_path / name, "w") as z:
            z.writestr("../TCGA_CS_4944_20010208_1_mask.png", b"x")
        data = (tmp_path / name).read_bytes()
    at = upload_and_score(leaderboard(), name, data)
    assert not at.exception
    assert message in " ".join(e.value for e in at.error)
    assert len(at.dataframe)  # the leaderboard is still there


def test_report_is_one_offline_page_with_the_comparison_and_the_worst_slices() -> None:
    data = load_dataset(DEMO_DIR, progress=False)
    submission = external.score_submission("example.zip", EXAMPLE.read_bytes(), "cv", data)
    worst = external.worst_slices(submission.scored, data)
    assert [w.dice for w in worst] == sorted(w.dice for w in worst) and len(worst) == 3
    figure = forest_figure(forest_rows(submission.comparison), "t", YOURS_AXIS)
    page = report_html("t", "intro", ["a note"], submission.scores_markdown(),
                       external.comparison_display(submission.comparison), figure,
                       [("slice", data.images[worst[0].row])], external.patients_display(submission.scored))
    assert page.count("<img") == 1 and "unet-resnet50-transfer" in page
    # plotly.js is inlined, not fetched: the file opens offline.
    assert "<script src=" not in page.replace(" ", "") and "Plotly.newPlot" in page


def test_leaderboard_leads_with_the_best_and_keeps_the_chosen_pair_after_a_trip(app_env: Path) -> None:
    import json

    at = upload_and_score(leaderboard(), "example-predictions.zip", EXAMPLE.read_bytes())
    # The champion is the tiny zoo segmenter with the best validation score.
    segmenters = ("cnn-encdec", "unet-mini", "unet-mini-2.5d")
    scores = {name: json.loads((app_env.parent / name / "config.json").read_text())["training"]["best_val_score"]
              for name in segmenters}
    best = max(scores, key=scores.get)
    assert f"Compared with the best: {best}" in [h.value for h in at.subheader]
    forest = next(c for c in at.get("vega_lite_chart")
                  if json.loads(c.proto.spec)["title"].startswith(f"Each model − {best}"))
    assert set(dataframe_util.convert_arrow_bytes_to_pandas_df(forest.proto.data.data)["model"]) == {
        *segmenters, "yours: example-predictions"} - {best}
    at.session_state["leaderboard_section"] = "Two models"
    at.run()
    pair = next(s for s in at.selectbox if s.label == "Pair")
    assert len(pair.options) == 6  # pairs of three zoo segmenters and the visitor's entry
    chosen = pair.options[-1]
    pair.set_value(chosen).run()
    at.switch_page("pages/compare.py").run()
    at.switch_page("pages/leaderboard.py").run()
    assert not at.exception
    assert next(s for s in at.selectbox if s.label == "Pair").value == chosen


def test_a_visitors_predictions_enter_no_shared_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit's data caches are shared by the whole process: the visitor's per-patient scores must stay out."""
    import streamlit as st

    seen = []
    real = st.cache_data

    def spy(*args, **kwargs):
        decorate = real(*args, **kwargs)

        def wrap(func):
            cached = decorate(func)

            def call(*a, **k):
                seen.append(repr((a, k)))
                return cached(*a, **k)
            return call
        return wrap

    monkeypatch.setattr(st, "cache_data", spy)
    at = leaderboard()
    before = set(tables_dir().glob("*.parquet"))  # the catalog's tables, stored by the first render
    at = upload_and_score(at, "example-predictions.zip", EXAMPLE.read_bytes())
    assert not at.exception
    assert "yours: example-predictions" in set(board(at)["model"])
    assert seen and not any("yours:" in call or "example-predictions" in call for call in seen)
    assert set(tables_dir().glob("*.parquet")) == before  # nor the disk cache every process of the server reads


def test_your_masks_join_compare_patient_viewer_and_failure_cases_for_you_only() -> None:
    from lgg_core.app.external import SESSION_KEY
    from lgg_core.evaluation.metrics import slice_metrics, volume_dice

    yours = "yours: example-predictions"
    at = upload_and_score(leaderboard(), "example-predictions.zip", EXAMPLE.read_bytes())
    scored = at.session_state[SESSION_KEY].scored
    data = load_dataset(DEMO_DIR, progress=False)
    patient, number = "TCGA_HT_7855", 12
    rows = data.rows([patient])
    row = rows[data.index["slice"].to_numpy()[rows] == number][0]

    at.switch_page("pages/compare.py").run()
    assert yours in at.multiselect[0].options
    at.selectbox[0].set_value(patient).run()
    at.select_slider[0].set_value(number).run()
    at.multiselect[0].set_value(["unet-mini", yours]).run()
    assert not at.exception, [e.value for e in at.exception]
    dice = slice_metrics(scored.mask(patient, number), data.masks[row] > 0)["dice"]
    captions = [c for image in at.get("image") for c in image.captions]
    assert any(c.startswith(f"{yours} · Dice {dice:.3f}") for c in captions), captions
    assert "shown to you only" in " ".join(str(c.value) for c in at.caption)

    at.switch_page("pages/patient.py").run()
    next(s for s in at.selectbox if s.label == "Model").set_value(yours).run()
    assert not at.exception, [e.value for e in at.exception]
    expected = volume_dice(np.stack([scored.mask(patient, int(n)) for n in data.index["slice"].to_numpy()[rows]]),
                           data.masks[rows])
    next(s for s in at.selectbox if s.label == "Patient").set_value(patient).run()
    assert next(m for m in at.metric if m.label == f"Volume Dice, {yours}").value == f"{expected:.3f}"

    at.switch_page("pages/failures.py").run()
    at.selectbox[0].set_value(yours).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any(b.label == "Explain" for b in at.button)  # no model to explain, only masks
    assert any(b.label == "Compare" for b in at.button)

    other = AppTest.from_file(APP, default_timeout=180).run().switch_page("pages/compare.py").run()
    assert yours not in other.multiselect[0].options
