"""The latency store the dashboard shares between sessions, and the naming of the backend that was timed."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

import lgg_core.serving.latency as latency_module
from lgg_core.serving.latency import Latency, LatencyStore, backend_label, time_call


def latency(ms: float) -> Latency:
    return Latency(ms, ms, ms, "PyTorch · CPU", 5, 0.0)


def test_time_call_warms_up_then_reports_median_min_and_max(monkeypatch) -> None:
    # A fake clock that each call advances by its duration: sleeping would measure the host's load, not the code.
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(latency_module.time, "perf_counter", lambda: clock.now)
    calls = []
    durations = iter([0.5, 0.001, 0.004, 0.002, 0.003, 0.010])  # the first (warm-up) call is slow and not counted

    def work() -> None:
        calls.append(1)
        clock.now += next(durations)

    median, fastest, slowest = time_call(work, repeats=5)
    assert len(calls) == 6
    assert (median, fastest, slowest) == pytest.approx((3.0, 1.0, 10.0))


def test_store_keeps_the_newest_entries_within_its_bound() -> None:
    store = LatencyStore(max_entries=3)
    for i in range(5):
        store.put(("m", i), latency(i))
    assert len(store) == 3 and store.get(("m", 0)) is None and store.get(("m", 4)).ms == 4
    store.put(("m", 2), latency(20))  # replacing an entry makes it the newest
    store.put(("m", 5), latency(5))
    assert store.get(("m", 2)).ms == 20 and store.get(("m", 3)) is None


def test_store_is_safe_under_concurrent_writers_and_measurements_never_overlap() -> None:
    store, shared = LatencyStore(), LatencyStore(max_entries=50)
    running, overlaps = [], []
    guard = threading.Lock()

    def work() -> None:
        with guard:
            running.append(1)
            overlaps.append(len(running) > 1)
        time.sleep(0.001)
        with guard:
            running.pop()

    threads = [threading.Thread(target=store.measure, args=(("m", i), work, "ONNX Runtime · CPU", 3))
               for i in range(8)]
    threads += [threading.Thread(target=lambda i=i: [shared.put(("p", i, j), latency(j)) for j in range(100)])
                for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(overlaps) == 8 * 4 and not any(overlaps)  # sessions measuring at once take turns
    assert [(store.get(("m", i)).backend, store.get(("m", i)).repeats) for i in range(8)] == [
        ("ONNX Runtime · CPU", 3)] * 8
    assert len(shared) == 50  # bounded whatever the interleaving


def test_backend_label_names_the_engine_its_precision_and_device() -> None:
    assert backend_label(SimpleNamespace(backend="onnxruntime", precision="int8")) == "ONNX Runtime int8 · CPU"
    parameter = SimpleNamespace(device=SimpleNamespace(type="cuda"))
    torch_like = SimpleNamespace(backend="pytorch", precision="fp32",
                                 model=SimpleNamespace(parameters=lambda: iter([parameter])))
    assert backend_label(torch_like) == "PyTorch fp32 · CUDA"
    assert backend_label(SimpleNamespace(backend="onnxruntime")) == "ONNX Runtime · CPU"  # no precision recorded
    assert backend_label(SimpleNamespace(backend="tensorrt")) == "tensorrt · CPU"
