"""A visitor's model evaluated on a split's patients in the background: progress, a time limit, one at a time.

The dashboard's "Add your model" starts a :class:`ModelJob`; it runs in a thread of the server process, never
touches Streamlit, and ends with a :class:`~lgg_core.evaluation.external.Submission` that the page keeps in the
visitor's session only: the same record as uploaded masks, scored by the same code.

Example::

    job = ModelJob("mine", lambda: open_model("mine.onnx", content), "cv", data, patients).start()
    while job.running:
        print(job.status())
    submission = job.submission  # or job.error
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from lgg_core.data.cache import LGGData
from lgg_core.evaluation.external import Submission, predict_split, submission

TIME_LIMIT_ENV = "LGG_VISITOR_MODEL_SECONDS"
DEFAULT_TIME_LIMIT_S = 900.0  # fold 0's 22 patients take unet-resnet50 about 3 minutes on 2 cores
# One evaluation at a time in the whole process: each one already uses every core torch is given, so a second would
# only slow both, and a queue bounds what visitors together can make the server do.
_SLOT = threading.Lock()
_log = logging.getLogger(__name__)


class Stopped(Exception):
    """The visitor stopped the job, or it ran out of time."""


def time_limit_s() -> float:
    """The most seconds one evaluation may run once it has its turn (``$LGG_VISITOR_MODEL_SECONDS``)."""
    try:
        return max(1.0, float(os.environ.get(TIME_LIMIT_ENV, DEFAULT_TIME_LIMIT_S)))
    except ValueError:
        return DEFAULT_TIME_LIMIT_S


class ModelJob:
    """One visitor's model, opened and run on ``patients`` of ``data`` in a background thread.

    Args:
        alive: Whether the visitor who started it is still there (their page closed: the job gives up its turn at the
            next batch, so a queue never waits on nobody); None: always.

    Attributes:
        name: The row name its scores get.
        phase: ``queued``, ``loading``, ``predicting``, ``scoring``, then ``done``, ``failed`` or ``stopped``.
        done: Slices predicted so far; ``total``: slices in all (0 until the model is open).
        submission: The scored result once ``phase`` is ``done``.
        error: Why it did not finish (for the visitor), once ``phase`` is ``failed`` or ``stopped``.
    """

    def __init__(self, name: str, open_model: Callable[[], Any], split: str, data: LGGData, patients: list[str],
                 limit_s: float | None = None, alive: Callable[[], bool] | None = None) -> None:
        self.name, self.split, self.data, self.patients = name, split, data, patients
        self.limit_s = time_limit_s() if limit_s is None else limit_s
        self._alive = alive
        self._open: Callable[[], Any] | None = open_model
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lgg-visitor-model", daemon=True)
        self.phase, self.done, self.total = "queued", 0, 0
        self.submission: Submission | None = None
        self.error: str | None = None

    def start(self) -> ModelJob:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self.phase not in ("done", "failed", "stopped")

    def cancel(self) -> None:
        """Stop at the next batch (or before its turn comes)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the job has ended within ``timeout`` seconds."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def status(self) -> tuple[float, str]:
        """The share done and a line saying what the job is doing."""
        if self.phase == "queued":
            return 0.0, "Waiting for another visitor's model to finish (one runs at a time)…"
        if self.phase == "loading":
            return 0.0, "Checking and loading your model…"
        if self.phase == "predicting":
            return self.done / max(self.total, 1), (f"Predicting {len(self.patients)} patients: slice {self.done} of "
                                                    f"{self.total}")
        if self.phase == "scoring":
            return 1.0, "Scoring and comparing with the zoo…"
        return 1.0, self.phase

    def _check(self) -> None:
        if self._cancel.is_set():
            raise Stopped("stopped on request")
        if self._alive is not None and not self._alive():
            raise Stopped("stopped: the visitor who started it has left")

    def _tick(self, done: int, total: int, started: float) -> None:
        self.done, self.total = done, total
        self._check()
        if time.monotonic() - started > self.limit_s:
            raise Stopped(f"stopped after {self.limit_s:.0f} s, this server's limit for one model, at slice {done} of "
                          f"{total}: run `lgg evaluate` on your own machine for a slower model")

    def _run(self) -> None:
        try:
            while not _SLOT.acquire(timeout=0.2):
                self._check()
            try:
                self._evaluate()
            finally:
                _SLOT.release()
            self.phase = "done"
        except Stopped as err:
            self.error, self.phase = str(err), "stopped"
        except ValueError as err:  # the opener's and the scorer's messages are written for the visitor
            self.error, self.phase = str(err), "failed"
        except Exception as err:  # a stranger's model may fail in ways nobody listed; the server carries on
            _log.exception("a visitor's model failed")
            self.error, self.phase = f"your model failed while it ran ({type(err).__name__})", "failed"
        finally:
            self._open = None  # the upload's bytes go as soon as the job ends

    def _evaluate(self) -> None:
        started = time.monotonic()
        self.phase = "loading"
        opener, self._open = self._open, None
        predictor = opener()
        self.total = len(self.data.rows(self.patients))
        self._tick(0, self.total, started)
        self.phase = "predicting"
        predictions = predict_split(predictor, self.data, self.patients,
                                    progress=lambda done, total: self._tick(done, total, started))
        engine = "ONNX Runtime" if getattr(predictor, "backend", None) == "onnxruntime" else "PyTorch"
        del predictor
        predictions.notes.append(f"predicted on this server with {engine}, thresholded at 0.5 as the zoo's models are; "
                                 "a model trained on any of these patients scores too high, which nothing here can "
                                 "check")
        self.phase = "scoring"
        self.submission = submission(self.name, predictions, self.split, self.data, source="model")

