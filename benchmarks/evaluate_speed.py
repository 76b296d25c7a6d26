"""``lgg evaluate``'s prediction step: three forward passes per slice with glibc's default malloc vs two with freed
memory retained, each in its own process, interleaved; checks the probabilities are identical.

    python benchmarks/evaluate_speed.py artifacts/unet --data-dir /path/to/kaggle_3m [--repeats 3]

The slices are the artifact's held-out patients found in the data (all slices when none are). Prediction is what
evaluation spends its time on (metrics and tables take a few percent). Prints medians with min–max, minor page
faults, peak RSS and the load average before the run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODES = {"before": "3 passes, default malloc", "after": "2 passes, freed memory retained"}


def _slices(artifact: str, data_dir: str) -> tuple[np.ndarray, str, int | None]:
    from lgg_core.data.cache import load_dataset
    from lgg_core.evaluation.evaluator import test_patients
    from lgg_core.models import read_config
    from lgg_core.serving.artifact_config import ArtifactConfig

    data = load_dataset(data_dir, progress=False)
    held_out = [p for p in test_patients(artifact) if p in data.patients] or data.patients
    spec = ArtifactConfig.parse(read_config(artifact))
    return data.images[data.rows(held_out)], spec.task, spec.training.input_size


def worker(mode: str, artifact: str, data_dir: str, out: str) -> None:
    """Predict like ``lgg evaluate`` in ``mode``; save the probabilities and print the measurements as JSON."""
    from lgg_core.serving.artifacts import load_artifact
    from lgg_core.serving.device import retain_freed_memory
    from lgg_core.serving.inference import predict, predict_plain_and_tta

    if mode == "after":
        retain_freed_memory()
    model, _ = load_artifact(artifact)
    images, task, size = _slices(artifact, data_dir)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if mode == "after":
        plain, tta = predict_plain_and_tta(model, images, task, 16, size)
    else:
        plain, tta = predict(model, images, task, 16, size), predict(model, images, task, 16, size, tta=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    np.savez(out, plain=plain, tta=tta)
    print(json.dumps({"seconds": seconds, "faults": after.ru_minflt - before.ru_minflt, "slices": len(images),
                      "peak_mb": after.ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("artifact")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.artifact, args.data_dir, args.out)
        return
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; {args.artifact}")
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for mode in MODES:
                out = str(Path(tmp) / f"{mode}.npz")
                cmd = [sys.executable, __file__, args.artifact, "--data-dir", args.data_dir, "--worker", mode,
                       "--out", out]
                runs[mode].append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True)
                                             .stdout.strip().splitlines()[-1]))
        saved = {mode: np.load(Path(tmp) / f"{mode}.npz") for mode in MODES}
        identical = all(np.array_equal(saved["before"][k], saved["after"][k]) for k in ("plain", "tta"))
    print(f"{runs['before'][0]['slices']} slices; probabilities identical: {identical}")
    print("| mode | seconds | minor page faults | peak RSS (MB) |")
    print("|---|---:|---:|---:|")
    for mode, name in MODES.items():
        s = [r["seconds"] for r in runs[mode]]
        print(f"| {name} | {statistics.median(s):.2f} ({min(s):.2f}–{max(s):.2f}) "
              f"| {statistics.median(r['faults'] for r in runs[mode]):,.0f} "
              f"| {statistics.median(r['peak_mb'] for r in runs[mode]):,.0f} |")
    ratio = statistics.median(r["seconds"] for r in runs["before"]) / statistics.median(
        r["seconds"] for r in runs["after"])
    print(f"speed-up: {ratio:.2f}x")


if __name__ == "__main__":
    main()
