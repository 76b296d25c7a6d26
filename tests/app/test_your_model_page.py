"""The Leaderboard's "Add your model": run in the background with progress, scored like uploaded masks, seen by this
visitor only, and a bad file is one message."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lgg_core.app.external import JOB_KEY

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")

pytestmark = pytest.mark.usefixtures("app_env")


def leaderboard() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    return at.switch_page("pages/leaderboard.py").run()


def board_models(at: AppTest) -> set[str]:
    return set(next(frame.value for frame in at.dataframe if "model" in frame.value.columns)["model"])


def evaluate(at: AppTest, name: str, content: bytes) -> AppTest:
    at.radio(key="your_kind").set_value("A model").run()
    at.file_uploader(key="your_model_file").set_value((name, content, "application/octet-stream")).run()
    at.radio(key="your_predictions_split").set_value("cv").run()
    return next(b for b in at.button if b.label == "Evaluate").click().run()


def artifact_zip(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("config.json", "model.safetensors"):
            archive.write(folder / name, f"mine/{name}")
    return buffer.getvalue()


def test_a_model_runs_in_the_background_and_joins_this_visitors_leaderboard(zoo_catalog: Path) -> None:
    at = evaluate(leaderboard(), "mine.zip", artifact_zip(zoo_catalog.parent / "unet-mini"))
    assert not at.exception and not at.error
    job = at.session_state[JOB_KEY]
    assert at.get("progress") or not job.running  # the bar shows while it runs
    assert job.wait(120) and job.phase == "done", job.error
    at.run()  # the next poll hands the result over
    assert not at.exception and not at.error
    assert JOB_KEY not in at.session_state
    assert "yours: mine" in board_models(at)
    shown = " ".join(str(m.value) for m in at.markdown)
    assert "yours: mine** on 3 patients" in shown
    assert any("predicted on this server with PyTorch" in str(c.value) for c in at.caption)
    other = leaderboard()  # another visitor on the same server sees none of it
    assert not other.exception and not any(name.startswith("yours:") for name in board_models(other))


def test_a_bad_model_file_is_one_message(zoo_catalog: Path) -> None:
    at = evaluate(leaderboard(), "mine.zip", artifact_zip(zoo_catalog.parent / "resnet18"))
    job = at.session_state[JOB_KEY]
    assert job.wait(60)
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["mine: mine.zip is not a segmenter (its task is 'classify')"]
    assert not any(name.startswith("yours:") for name in board_models(at))
