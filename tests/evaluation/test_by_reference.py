"""A visitor's model evaluated in the background: the same scores as a direct run, progress while it runs, a stop
button and a time limit that work, one model at a time, and a failure that is one message."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from lgg_core.data.cache import LGGData, load_dataset
from lgg_core.evaluation import by_reference, external
from lgg_core.evaluation.by_reference import ModelJob
from lgg_core.evaluation.reference import load_reference, others
from lgg_core.serving.onnx_backend import TorchPredictor
from lgg_core.serving.records import DEMO_DIR


@pytest.fixture(scope="module")
def data() -> LGGData:
    return load_dataset(DEMO_DIR, progress=False)


@pytest.fixture(scope="module")
def patients(data: LGGData) -> list[str]:
    return external.split_patients("cv", data, load_reference())


class Slow:
    """A segmenter that predicts nothing, each batch only once the test lets it."""

    inputs = "sequences"

    def __init__(self) -> None:
        self.go, self.calls = threading.Event(), 0

    def predict(self, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
        self.calls += 1
        assert self.go.wait(30)
        return np.zeros(images.shape[:3], np.float32)


def finished(job: ModelJob) -> ModelJob:
    assert job.wait(120), job.status()
    return job


def test_a_job_scores_what_a_direct_run_scores(zoo_catalog: Path, data: LGGData, patients: list[str]) -> None:
    folder = zoo_catalog.parent / "unet-mini"
    seen = []
    job = ModelJob("mine", lambda: TorchPredictor(folder, "cpu"), "cv", data, patients)
    job._tick = lambda done, total, started, tick=job._tick: (seen.append(done), tick(done, total, started))
    job = finished(job.start())
    assert job.phase == "done" and job.error is None
    direct = external.score(external.predict_split(TorchPredictor(folder, "cpu"), data, patients), data, patients)
    assert job.submission.scored.dice()["dice"].tolist() == pytest.approx(direct.dice()["dice"].tolist())
    assert job.submission.label == "yours: mine" and "PyTorch" in job.submission.notes[-1]
    assert job.submission.record().config["training"]["protocol"] == "your model (this session only)"
    assert seen == sorted(seen) and seen[-1] == len(data.rows(patients)) == job.total  # progress only rises
    against = external.compare(direct.dice(), others(load_reference(), "cv"))
    assert job.submission.comparison[["model", "mean_diff"]].equals(against[["model", "mean_diff"]])


def test_stop_ends_the_job_at_the_next_batch(data: LGGData, patients: list[str]) -> None:
    slow = Slow()
    job = ModelJob("mine", lambda: slow, "cv", data, patients).start()
    job.cancel()
    slow.go.set()
    assert finished(job).phase == "stopped" and job.error == "stopped on request" and job.submission is None
    assert slow.calls <= 1


def test_the_time_limit_stops_a_slow_model(data: LGGData, patients: list[str]) -> None:
    slow = Slow()
    slow.go.set()
    job = finished(ModelJob("mine", lambda: slow, "cv", data, patients, limit_s=0.0).start())
    assert job.phase == "stopped" and job.error.startswith("stopped after 0 s, this server's limit")


def test_one_model_runs_at_a_time_and_the_next_waits_its_turn(data: LGGData, patients: list[str]) -> None:
    first, second = Slow(), Slow()
    second.go.set()
    a = ModelJob("a", lambda: first, "cv", data, patients).start()
    while first.calls == 0:
        a.wait(0.05)
    b = ModelJob("b", lambda: second, "cv", data, patients).start()
    assert not b.wait(0.5) and b.phase == "queued" and "Waiting for another visitor" in b.status()[1]
    first.go.set()
    assert finished(a).phase == "done" and finished(b).phase == "done"
    assert second.calls > 0


def test_a_job_whose_visitor_left_gives_up_its_turn(data: LGGData, patients: list[str]) -> None:
    first, second = Slow(), Slow()
    second.go.set()
    here = threading.Event()
    here.set()
    left = ModelJob("left", lambda: first, "cv", data, patients, alive=here.is_set).start()
    while first.calls == 0:
        left.wait(0.05)
    waiting = ModelJob("waiting", lambda: second, "cv", data, patients).start()
    here.clear()  # the tab was closed
    first.go.set()
    assert finished(left).phase == "stopped" and left.error == "stopped: the visitor who started it has left"
    assert first.calls == 1 and finished(waiting).phase == "done"


@pytest.mark.parametrize("error, phase, message", [
    (ValueError("mine.onnx cannot be run: it uses custom operators"), "failed", "it uses custom operators"),
    (RuntimeError("/srv/secret/path exploded"), "failed", "your model failed while it ran (RuntimeError)")])
def test_a_failing_model_is_one_message_and_frees_the_slot(error: Exception, phase: str, message: str,
                                                           data: LGGData, patients: list[str]) -> None:
    def broken():
        raise error

    job = finished(ModelJob("mine", broken, "cv", data, patients).start())
    assert job.phase == phase and message in job.error and "/srv" not in job.error
    assert by_reference._SLOT.acquire(timeout=1)
    by_reference._SLOT.release()


def test_the_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(by_reference.TIME_LIMIT_ENV, "42")
    assert by_reference.time_limit_s() == 42
    monkeypatch.setenv(by_reference.TIME_LIMIT_ENV, "soon")
    assert by_reference.time_limit_s() == by_reference.DEFAULT_TIME_LIMIT_S
