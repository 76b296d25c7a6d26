"""CPU serving paths: the engine and number format a model is served with, the int8 export, and the recorded choice.

A *path* is one of :data:`PATHS`: ``pytorch`` (PyTorch eager, fp32: the reference), ``pytorch-bf16`` (bf16 autocast
with channels_last), ``onnxruntime`` (ONNX Runtime fp32, ``model.onnx``) and ``onnxruntime-int8`` (ONNX Runtime with
statically quantized weights and activations, ``model.int8.onnx``). ``lgg export-onnx`` times them on the host,
checks the reduced-precision ones against fp32 on the held-out patients
(:func:`lgg_core.evaluation.serving_choice.choose_serving_path`) and records the fastest that passes in
``serving.json``. :func:`recorded_path` says whether that record still holds: same weights, same served file, same
CPU and library versions. A speed measured on another CPU or with another ONNX Runtime says nothing about this one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import tempfile
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from lgg_core.serving.artifacts import write_json
from lgg_core.serving.hub import INT8_FILE, ONNX_FILE

SERVING_FILE = "serving.json"
# Path name -> (engine, precision). "pytorch" and "onnxruntime" keep the names load_predictor always accepted.
PATHS: dict[str, tuple[str, str]] = {
    "pytorch": ("pytorch", "fp32"),
    "pytorch-bf16": ("pytorch", "bf16"),
    "onnxruntime": ("onnxruntime", "fp32"),
    "onnxruntime-int8": ("onnxruntime", "int8"),
}
ONNX_FILES = {"fp32": ONNX_FILE, "int8": INT8_FILE}
REFERENCE = "pytorch"
# Largest |held-out per-patient Dice (accuracy for classifiers) - fp32's| a reduced-precision path may have.
QUALITY_TOLERANCE = 0.005
RECORD_VERSION = 1
_MAX_RECORD_BYTES = 1 << 20
_HEAVY_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
# Instruction sets that decide which kernels (and so which path) are fastest.
_ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "asimd", "bf16",
              "i8mm")


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cpuinfo() -> tuple[str | None, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, set()
    name, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware") and name is None:
            name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return name, flags


@cache
def host() -> dict[str, Any]:
    """What a speed measurement depends on: CPU model and instruction sets, torch and onnxruntime versions."""
    name, flags = _cpuinfo()
    return {
        "cpu": name or platform.processor() or platform.machine(),
        "cpu_flags": sorted(flags & set(_ISA_FLAGS)),
        "machine": platform.machine(),
        "torch": metadata.version("torch"),
        "onnxruntime": metadata.version("onnxruntime"),
    }


class _Batches:
    """ONNX Runtime's calibration reader protocol over preprocessed (N, 3, S, S) inputs, one slice at a time."""

    def __init__(self, input_name: str, inputs: np.ndarray) -> None:
        self.input_name, self.inputs, self.next = input_name, inputs, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.next >= len(self.inputs):
            return None
        self.next += 1
        return {self.input_name: self.inputs[self.next - 1 : self.next]}

    def rewind(self) -> None:
        self.next = 0


def _fp32_nodes(graph: onnx.GraphProto) -> list[str]:
    """Nodes kept in fp32 by :func:`quantize_int8`: the preamble before the first heavy op and the output nodes.

    On ``unet`` (standardize=True), 9 validation patients: quantizing everything gave masks whose 3D Dice with
    the fp32 masks was 0.972; keeping the standardisation in fp32, 0.991, for the same speed.
    """
    heavy = next((i for i, n in enumerate(graph.node) if n.op_type in _HEAVY_OPS), 0)
    outputs = {o.name for o in graph.output}
    return [n.name for n in graph.node[:heavy]] + [n.name for n in graph.node if outputs & set(n.output)]


def quantize_int8(onnx_path: str | Path, out_path: str | Path, calibration: np.ndarray,
                  metadata_props: dict[str, str]) -> Path:
    """Write a static int8 copy of an fp32 ONNX graph, atomically.

    QDQ format, int8 weights per output channel, uint8 activations with ranges from min-max calibration: the
    u8 x s8 form that VNNI and AMX kernels run. The input standardisation (every node before the first
    convolution or matrix product) and the nodes that write the outputs stay fp32: quantizing the per-slice
    z-score's arithmetic to 8 bits cost most of the agreement with fp32 (see :func:`_fp32_nodes`).

    Args:
        onnx_path: The fp32 graph (``model.onnx``).
        out_path: Where the int8 graph goes.
        calibration: Preprocessed float32 inputs (N, 3, S, S); the caller guarantees they come from training
            patients only.
        metadata_props: Stored in the file (the weights' hash, so a stale file is never served).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_path = Path(out_path)
    quant_logger = logging.getLogger("onnxruntime.quantization")
    level = quant_logger.level
    # Its advice to pre-process is followed below; the rest is notes for quantization developers.
    quant_logger.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
            # Shape inference and graph fusions (Conv+BN) first, so that the quantizer sees the graph ORT runs.
            quant_pre_process(str(onnx_path), str(prepared))
            graph = onnx.load(str(prepared), load_external_data=False).graph
            quantize_static(str(prepared), str(quantized), _Batches(graph.input[0].name, calibration),
                            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                            nodes_to_exclude=_fp32_nodes(graph))
            proto = onnx.load(str(quantized))
            onnx.helper.set_model_props(proto, metadata_props)
            tmp_out = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
            onnx.save(proto, str(tmp_out))
            os.replace(tmp_out, out_path)
    finally:
        quant_logger.setLevel(level)
    return out_path


def write_record(artifact_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write ``serving.json`` atomically."""
    path = Path(artifact_dir) / SERVING_FILE
    write_json(path, record)
    return path


def read_record(artifact_dir: str | Path) -> dict[str, Any] | None:
    """The artifact's ``serving.json``, or None when there is none.

    Raises:
        ValueError: The file is too large, not JSON or not an object.
    """
    path = Path(artifact_dir) / SERVING_FILE
    if not path.is_file():
        return None
    if path.stat().st_size > _MAX_RECORD_BYTES:
        raise ValueError(f"{path} is larger than {_MAX_RECORD_BYTES} bytes")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(record, dict):
        raise ValueError(f"{path} is not a JSON object")
    return record


def recorded_path(artifact_dir: str | Path) -> tuple[str | None, str | None]:
    """The path ``serving.json`` says to serve and None, or None and why the record does not hold here.

    ``(None, None)`` when there is no record. The record holds when it names a known path, was measured from these
    weights on a host like this one (CPU model and instruction sets, torch and onnxruntime versions), and the ONNX
    file it names is the one it measured.
    """
    folder = Path(artifact_dir)
    hint = f"run `lgg export-onnx {folder}` on this host again"
    try:
        record = read_record(folder)
    except (OSError, ValueError) as err:
        return None, f"{err}; {hint}"
    if record is None:
        return None, None
    path = record.get("path")
    if record.get("version") != RECORD_VERSION or not isinstance(path, str) or path not in PATHS:
        return None, f"{folder / SERVING_FILE} records an unknown path ({path!r}); {hint}"
    if record.get("weights_sha256") != file_sha256(folder / "model.safetensors"):
        return None, f"{folder / SERVING_FILE} was measured with other weights; {hint}"
    if record.get("host") != host():
        measured = record.get("host") if isinstance(record.get("host"), dict) else {}
        changed = sorted(k for k, v in host().items() if measured.get(k) != v)
        return None, f"{folder / SERVING_FILE} was measured on another host ({', '.join(changed)} differ); {hint}"
    engine, precision = PATHS[path]
    if engine == "onnxruntime":
        file = folder / ONNX_FILES[precision]
        if not file.is_file():
            return None, f"{file} is missing; {hint}"
        if record.get("file_sha256") != file_sha256(file):
            return None, f"{file} is not the file {SERVING_FILE} measured; {hint}"
    return path, None
