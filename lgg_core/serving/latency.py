"""Prediction latency: timing a call, naming the backend that ran it, and a store shared by threads.

The dashboard keeps one :class:`LatencyStore` per server process, so a measurement made in one session is shown to
every session, and a second session asking for one while another is running waits instead of timing alongside it
(two measurements on the same cores would slow each other down). Nothing here imports torch.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

BACKEND_NAMES = {"onnxruntime": "ONNX Runtime", "pytorch": "PyTorch"}


@dataclass(frozen=True)
class Latency:
    """One measurement: median, fastest and slowest wall time in ms per call, and what was timed."""

    ms: float
    min_ms: float
    max_ms: float
    backend: str
    repeats: int
    measured_at: float


def time_call(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> tuple[float, float, float]:
    """Median, min and max wall time of ``fn()`` in ms over ``repeats`` calls, after ``warmup`` untimed ones.

    The first call pays for lazy initialisation (kernel selection, memory pools), which no later request sees.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times)), float(min(times)), float(max(times))


def backend_label(predictor: Any) -> str:
    """What a predictor runs on, e.g. "ONNX Runtime int8 · CPU" or "PyTorch fp32 · CUDA".

    Predictors name their engine in ``backend`` and, where they have a choice, their ``precision``; PyTorch ones
    carry the ``model`` whose parameters say the device.
    """
    backend = getattr(predictor, "backend", type(predictor).__name__)
    precision = getattr(predictor, "precision", None)
    model = getattr(predictor, "model", None)
    device = next(model.parameters()).device.type if model is not None else "cpu"
    engine = " ".join(filter(None, [BACKEND_NAMES.get(backend, backend), precision]))
    return f"{engine} · {device.upper()}"


class LatencyStore:
    """Latencies by key, safe to share between threads, holding at most ``max_entries`` (oldest dropped first)."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Latency] = OrderedDict()
        self._lock = threading.Lock()
        # Held for a whole measurement, apart from _lock, so readers never wait for a timing to finish.
        self._measuring = threading.Lock()

    def get(self, key: Hashable) -> Latency | None:
        """The latest measurement under ``key``, or None."""
        with self._lock:
            return self._entries.get(key)

    def put(self, key: Hashable, latency: Latency) -> None:
        """Store a measurement (replacing an older one), dropping the oldest entries beyond ``max_entries``."""
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = latency
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def measure(self, key: Hashable, fn: Callable[[], Any], backend: str, repeats: int = 5) -> Latency:
        """Time ``fn`` (:func:`time_call`) with no other measurement of this store running, and store the result."""
        with self._measuring:
            median, fastest, slowest = time_call(fn, repeats)
        latency = Latency(median, fastest, slowest, backend, repeats, time.time())
        self.put(key, latency)
        return latency
