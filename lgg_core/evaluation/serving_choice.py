"""Choose the CPU path that serves an artifact: the fastest on this host among those that keep its held-out quality.

:func:`choose_serving_path` builds every candidate of :data:`lgg_core.serving.cpu_paths.PATHS` (int8 is calibrated on
training patients only), scores each on the artifact's held-out test patients against PyTorch fp32, times each at
batch 1 through the app's whole prediction path (normalise, resize, forward, sigmoid, resize back), interleaved
round by round so that machine noise hits every candidate alike, and records the fastest that passes in
``serving.json``. ``lgg export-onnx`` runs it after writing model.onnx; ``benchmarks/serving_paths.py`` prints it.

Example::

    record = choose_serving_path("artifacts/unet", load_dataset("/data/kaggle_3m"))
    record["path"], record["candidates"]["onnxruntime-int8"]["ms"]
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lgg_core.data.cache import LGGData
from lgg_core.data.inputs import stack_inputs
from lgg_core.data.splits import load_split
from lgg_core.data.transforms import normalize, resize_input
from lgg_core.evaluation.metrics import volume_dice
from lgg_core.serving.artifact_config import ArtifactConfig
from lgg_core.serving.artifacts import artifact_inputs, read_config
from lgg_core.serving.cpu_paths import (
    INT8_FILE,
    PATHS,
    QUALITY_TOLERANCE,
    RECORD_VERSION,
    REFERENCE,
    file_sha256,
    host,
    quantize_int8,
    write_record,
)
from lgg_core.serving.device import cpu_has_fast_bf16
from lgg_core.serving.hub import ONNX_FILE
from lgg_core.serving.onnx_backend import (
    WEIGHTS_HASH_KEY,
    OnnxPredictor,
    Predictor,
    TorchPredictor,
    onnx_status,
)

CALIBRATION_SLICES = 64
TIMING_ROUNDS = 7
CALLS_PER_ROUND = 3


def calibration_inputs(artifact_dir: str | Path, data: LGGData, n: int = CALIBRATION_SLICES,
                       seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Preprocessed int8 calibration inputs drawn from the artifact's *training* patients, and those patients.

    Half the slices (when there are enough) have tumor, so tumor activations set ranges too. Test patients are
    never used, since the quantized model is judged on them, nor validation patients, which chose the recipe.

    Raises:
        ValueError: None of the training patients is in ``data``.
    """
    folder = Path(artifact_dir)
    roles = load_split(folder / "split.json")["roles"]
    held_out = set(roles["test"]) | set(roles["val"])
    train = sorted(set(roles["train"]) & set(data.patients) - held_out)
    if not train:
        raise ValueError(f"none of {folder}'s training patients is in {data.root}")
    rows = data.rows(train)
    tumor = data.index["has_tumor"].to_numpy()[rows].astype(bool)
    rng = np.random.default_rng(seed)
    n = min(n, len(rows))
    with_tumor = rng.choice(rows[tumor], min(n // 2, int(tumor.sum())), replace=False)
    rest = rng.choice(np.setdiff1d(rows, with_tumor), n - len(with_tumor), replace=False)
    pick = np.sort(np.concatenate([with_tumor, rest]))
    config = read_config(folder)
    size = ArtifactConfig.parse(config).training.input_size
    inputs = resize_input(normalize(stack_inputs(data.images, data.index, artifact_inputs(config), pick)), size).numpy()
    return np.ascontiguousarray(inputs, dtype=np.float32), sorted(set(data.index["patient"].to_numpy()[pick]))


def held_out_quality(predictor: Predictor, data: LGGData, patients: list[str],
                     batch_size: int = 16) -> tuple[float, dict[str, float]]:
    """Held-out quality of a predictor and its per-patient values.

    Segmenters: mean over patients of the 3D volume Dice (threshold 0.5), as the leaderboard reports it.
    Classifiers: slice accuracy (threshold 0.5) over all slices, with each patient's accuracy. Predicted one patient
    at a time, so memory holds one patient's probabilities.
    """
    per_patient, correct, total = {}, 0, 0
    for patient in patients:
        rows = data.rows([patient])
        prob = predictor.predict(stack_inputs(data.images, data.index, predictor.inputs, rows), batch_size=batch_size)
        if predictor.task == "segment":
            per_patient[patient] = volume_dice(prob > 0.5, data.masks[rows] > 0)
        else:
            hits = int(np.sum((prob > 0.5) == data.index["has_tumor"].to_numpy()[rows].astype(bool)))
            per_patient[patient] = hits / len(rows)
            correct, total = correct + hits, total + len(rows)
    summary = float(np.mean(list(per_patient.values()))) if predictor.task == "segment" else correct / total
    return summary, per_patient


def time_interleaved(calls: dict[str, Callable[[], Any]], rounds: int = TIMING_ROUNDS,
                     calls_per_round: int = CALLS_PER_ROUND) -> dict[str, list[float]]:
    """Wall ms per call of each function: ``rounds`` rounds, each calling every function ``calls_per_round`` times
    in turn (after one untimed warm-up call each), so load changes during the run reach every function alike."""
    for fn in calls.values():
        fn()  # first-call costs: memory pools, kernel selection
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            start = time.perf_counter()
            for _ in range(calls_per_round):
                fn()
            times[name].append(1000 * (time.perf_counter() - start) / calls_per_round)
    return times


def _build_candidates(folder: Path, data: LGGData | None, calibration: int
                      ) -> tuple[dict[str, Predictor], dict[str, str], list[str]]:
    """Predictors for every path that can run here, why the others cannot, and the calibration patients."""
    built: dict[str, Predictor] = {"pytorch": TorchPredictor(folder, "cpu")}
    failed: dict[str, str] = {}
    calibration_patients: list[str] = []
    if cpu_has_fast_bf16():
        built["pytorch-bf16"] = TorchPredictor(folder, "cpu", "bf16")
    else:
        failed["pytorch-bf16"] = "this CPU has no native bf16 (autocast would run fp32)"
    if problem := onnx_status(folder):
        failed["onnxruntime"] = failed["onnxruntime-int8"] = problem
        return built, failed, calibration_patients
    built["onnxruntime"] = OnnxPredictor(folder)
    if data is None or not (folder / "split.json").is_file():
        failed["onnxruntime-int8"] = ("no data to calibrate on (pass --data-dir)" if data is None
                                      else "no split.json: the training patients to calibrate on are unknown")
        return built, failed, calibration_patients
    try:
        inputs, calibration_patients = calibration_inputs(folder, data, calibration)
        quantize_int8(folder / ONNX_FILE, folder / INT8_FILE, inputs,
                      {WEIGHTS_HASH_KEY: file_sha256(folder / "model.safetensors"), "quantization": "int8 static QDQ"})
        built["onnxruntime-int8"] = OnnxPredictor(folder, "int8")
    except Exception as err:  # the quantizer and ORT reject unsupported graphs with assorted types
        failed["onnxruntime-int8"] = f"int8 quantization failed ({type(err).__name__}: {str(err)[:200]})"
    return built, failed, calibration_patients


def choose_serving_path(
    artifact_dir: str | Path,
    data: LGGData | None = None,
    tolerance: float = QUALITY_TOLERANCE,
    rounds: int = TIMING_ROUNDS,
    calls_per_round: int = CALLS_PER_ROUND,
    calibration: int = CALIBRATION_SLICES,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Measure the CPU paths of an artifact on this host and record the fastest acceptable one in serving.json.

    PyTorch fp32 is the reference and ONNX Runtime fp32 passed the export's parity check, so both are always
    acceptable. A reduced-precision path (bf16, int8) is acceptable only when its held-out quality (mean
    per-patient Dice; slice accuracy for classifiers) is within ``tolerance`` of fp32's on all of the artifact's
    test patients, which ``data`` must hold. model.int8.onnx is kept only when it is acceptable.

    Args:
        artifact_dir: An artifact folder; its model.onnx (``lgg export-onnx``) makes the ONNX Runtime paths possible.
        data: The dataset with the artifact's test patients (quality check) and training patients (int8
            calibration); None measures the fp32 paths only.
        tolerance: Largest allowed |quality - fp32 quality|.
        rounds: Timing rounds; medians and min-max are over rounds.
        calls_per_round: Batch-1 predictions per candidate and round.
        calibration: Training slices that calibrate int8 activation ranges.
        batch_size: Batch size of the quality check (timing is always batch 1).

    Returns:
        The record written: ``path`` (the choice), ``candidates`` (per path: ``ms``, ``min_ms``, ``max_ms``, ``ratio``
        to PyTorch fp32, ``quality``, ``quality_diff``, ``max_patient_diff``, ``accepted``, ``reason``), ``quality``
        (metric, tolerance, patients, reference value), ``calibration_patients``, ``host``, ``threads``,
        ``load_average`` before and after, the weights' and served file's hashes.
    """
    folder = Path(artifact_dir)
    (folder / INT8_FILE).unlink(missing_ok=True)  # an earlier export's file was judged by an earlier record
    task = ArtifactConfig.parse(read_config(folder)).task
    load_before = os.getloadavg()
    built, failed, calibration_patients = _build_candidates(folder, data, calibration)

    split = folder / "split.json"
    test = sorted(load_split(split)["roles"]["test"]) if split.is_file() else []
    missing = sorted(set(test) - set(data.patients)) if data is not None else test
    candidates: dict[str, dict[str, Any]] = {name: {"accepted": False, "reason": why} for name, why in failed.items()}
    quality_info: dict[str, Any] = {"metric": "patient_dice" if task == "segment" else "slice_accuracy",
                                    "tolerance": tolerance, "patients": 0}
    scores: dict[str, tuple[float, dict[str, float]]] = {}
    if test and not missing:
        scores = {name: held_out_quality(p, data, test, batch_size) for name, p in built.items()}
        quality_info.update(patients=len(test), reference=scores[REFERENCE][0])
    for name in built:
        entry: dict[str, Any] = {"accepted": True, "reason": None}
        if name in scores:
            (value, per_patient), reference = scores[name], scores[REFERENCE][1]
            diff = value - quality_info["reference"]
            entry.update(quality=value, quality_diff=diff,
                         max_patient_diff=max(abs(per_patient[p] - reference[p]) for p in test))
            if PATHS[name][1] in ("bf16", "int8") and not abs(diff) <= tolerance:
                entry.update(accepted=False, reason=f"held-out quality {diff:+.4f} from fp32 (tolerance {tolerance})")
        elif PATHS[name][1] in ("bf16", "int8"):
            why = ("no evaluation data (pass --data-dir)" if data is None
                   else "no split.json: the held-out patients are unknown" if not test
                   else f"{len(missing)} of {len(test)} test patients not in the data")
            entry.update(accepted=False, reason=f"not checked against fp32: {why}")
        candidates[name] = entry

    slice_ = np.random.default_rng(0).integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
    times = time_interleaved({name: (lambda p=p: p.predict(slice_, batch_size=1)) for name, p in built.items()},
                             rounds, calls_per_round)
    reference_ms = statistics.median(times[REFERENCE])
    for name, ms in times.items():
        median = statistics.median(ms)
        candidates[name].update(ms=median, min_ms=min(ms), max_ms=max(ms), ratio=reference_ms / median)

    accepted = [name for name in built if candidates[name]["accepted"]]
    choice = min(accepted, key=lambda name: candidates[name]["ms"])
    if "onnxruntime-int8" in built and not candidates["onnxruntime-int8"]["accepted"]:
        (folder / INT8_FILE).unlink()
    engine, precision = PATHS[choice]
    record = {
        "version": RECORD_VERSION,
        "path": choice,
        "weights_sha256": file_sha256(folder / "model.safetensors"),
        "file_sha256": (file_sha256(folder / (INT8_FILE if precision == "int8" else ONNX_FILE))
                        if engine == "onnxruntime" else None),
        "host": host(),
        "threads": torch.get_num_threads(),
        "batch": 1,
        "rounds": rounds,
        "calls_per_round": calls_per_round,
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quality": quality_info,
        "calibration_patients": calibration_patients,
        "candidates": {name: candidates[name] for name in PATHS if name in candidates},
    }
    write_record(folder, record)
    return record


def record_table(record: dict[str, Any]) -> str:
    """A markdown table of a serving.json record: each path's ms per slice at batch 1, ratio to PyTorch fp32,
    held-out quality difference from fp32 (mean, and the largest for one patient) and whether it is served."""
    metric = "Dice" if record["quality"]["metric"] == "patient_dice" else "accuracy"
    lines = [f"| path | ms/slice, median (min–max) | vs PyTorch fp32 | {metric} − fp32 | largest per patient "
             "| served |", "|---|---:|---:|---:|---:|---|"]
    for name, c in record["candidates"].items():
        timing = (f"{c['ms']:.1f} ({c['min_ms']:.1f}–{c['max_ms']:.1f}) | {c['ratio']:.2f}x" if "ms" in c
                  else "– | –")
        diff = f"{c['quality_diff']:+.4f} | {c['max_patient_diff']:.4f}" if "quality_diff" in c else "– | –"
        verdict = "**yes**" if name == record["path"] else ("no" if c["accepted"] else f"no: {c['reason']}")
        lines.append(f"| {name} | {timing} | {diff} | {verdict} |")
    return "\n".join(lines)
