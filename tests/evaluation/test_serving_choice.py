"""The CPU serving path: measured and recorded at export, reduced precision gated on held-out Dice, int8 calibrated
on training patients only, and a record that no longer holds served safely."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from lgg_core.cli import main
from lgg_core.data.splits import load_split
from lgg_core.data.transforms import normalize, resize_input
from lgg_core.evaluation import serving_choice
from lgg_core.evaluation.serving_choice import calibration_inputs, choose_serving_path
from lgg_core.models import LGGModel
from lgg_core.serving.cpu_paths import INT8_FILE, PATHS, SERVING_FILE, read_record, recorded_path
from lgg_core.serving.device import cpu_has_fast_bf16
from lgg_core.serving.onnx_backend import (
    ONNX_FILE,
    OnnxBackendError,
    OnnxPredictor,
    TorchPredictor,
    export_artifact,
    load_predictor,
)

FAST = {"rounds": 1, "calls_per_round": 1}


@pytest.fixture
def cpu_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host without a GPU, as on a Space: ``backend="auto"`` chooses among the CPU paths."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture(scope="module")
def exported(zoo_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny zoo's segmenter (trained on the demo patients, k=3) with model.onnx, exported once."""
    folder = shutil.copytree(zoo_catalog.parent / "unet-mini", tmp_path_factory.mktemp("choice") / "unet-mini",
                             ignore=shutil.ignore_patterns("*.onnx", SERVING_FILE))
    export_artifact(folder)
    return folder


@pytest.fixture
def artifact(exported: Path, tmp_path: Path) -> Path:
    """A fresh copy of ``exported`` for a test to change."""
    return shutil.copytree(exported, tmp_path / "unet-mini")


def _fastest(winner: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the timing say ``winner`` is fastest (real timings on a busy test machine decide nothing)."""
    def fake(calls: dict, rounds: int, calls_per_round: int) -> dict[str, list[float]]:
        return {name: [1.0 if name == winner else 10.0] for name in calls}
    monkeypatch.setattr(serving_choice, "time_interleaved", fake)


def test_export_measures_and_records_a_choice(artifact: Path, sample_root: Path, cpu_host: None,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-onnx", str(artifact), "--data-dir", str(sample_root)]) == 0
    out, err = capsys.readouterr()
    assert f"wrote {artifact / SERVING_FILE}" in out and "| path |" in err
    record = read_record(artifact)
    test = load_split(artifact / "split.json")["roles"]["test"]
    assert record["path"] in PATHS and record["candidates"][record["path"]]["accepted"]
    assert record["quality"]["patients"] == len(test) and record["threads"] == torch.get_num_threads()
    for name, c in record["candidates"].items():
        if name != "pytorch-bf16" or cpu_has_fast_bf16():
            assert c["min_ms"] <= c["ms"] <= c["max_ms"] and "quality_diff" in c, name
    assert record["candidates"]["pytorch"]["ratio"] == 1.0
    # The served path is the fastest accepted one, and auto serves it.
    accepted = {n: c["ms"] for n, c in record["candidates"].items() if c["accepted"]}
    assert record["path"] == min(accepted, key=accepted.get)
    assert recorded_path(artifact) == (record["path"], None)
    served = load_predictor(artifact)
    assert (served.backend, served.precision) == PATHS[record["path"]]


@pytest.mark.parametrize("winner", ["onnxruntime-int8", "pytorch-bf16", "pytorch"])
def test_auto_serves_the_recorded_path(winner: str, artifact: Path, sample_data, cpu_host: None,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if winner == "pytorch-bf16" and not cpu_has_fast_bf16():
        pytest.skip("bf16 is only a candidate on CPUs with native bf16")
    _fastest(winner, monkeypatch)
    record = choose_serving_path(artifact, sample_data, tolerance=1.0, **FAST)
    assert record["path"] == winner
    served = load_predictor(artifact)
    assert (served.backend, served.precision) == PATHS[winner]
    images = sample_data.images[:3]
    reference = load_predictor(artifact, "pytorch").predict(images)
    # Reduced precision moves probabilities a little, never the shape or the bulk of the masks.
    got = served.predict(images)
    assert got.shape == reference.shape and np.mean((got > 0.5) == (reference > 0.5)) > 0.9


def test_without_data_only_fp32_paths_qualify(artifact: Path, cpu_host: None) -> None:
    record = choose_serving_path(artifact, None, **FAST)
    assert record["path"] in ("pytorch", "onnxruntime")
    assert "no data to calibrate" in record["candidates"]["onnxruntime-int8"]["reason"]
    if cpu_has_fast_bf16():
        assert "not checked against fp32: no evaluation data" in record["candidates"]["pytorch-bf16"]["reason"]
    assert not (artifact / INT8_FILE).exists() and record["quality"]["patients"] == 0


def _negated_quantizer(onnx_path: Path, out_path: Path, calibration: np.ndarray,
                       metadata_props: dict[str, str]) -> Path:
    """A stand-in for the int8 export that drifts as far as it can: it flips the sign of the logits."""
    proto = onnx.load(str(onnx_path))
    output = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [f"{name}_pre" if name == output else name for name in node.output]
    proto.graph.node.append(onnx.helper.make_node("Neg", [f"{output}_pre"], [output]))
    onnx.helper.set_model_props(proto, metadata_props)
    onnx.save(proto, str(out_path))
    return out_path


def test_reduced_path_beyond_tolerance_is_rejected(artifact: Path, sample_data, cpu_host: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving_choice, "quantize_int8", _negated_quantizer)
    _fastest("onnxruntime-int8", monkeypatch)
    record = choose_serving_path(artifact, sample_data, **FAST)
    int8 = record["candidates"]["onnxruntime-int8"]
    assert not int8["accepted"] and "from fp32 (tolerance 0.005)" in int8["reason"]
    assert abs(int8["quality_diff"]) > 0.005
    # The fastest acceptable path is served instead, and the rejected file is not left beside the weights.
    assert record["path"] != "onnxruntime-int8" and not (artifact / INT8_FILE).exists()
    assert load_predictor(artifact).precision != "int8"


def test_tolerance_bounds_reduced_precision_only(artifact: Path, sample_data, cpu_host: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A negative tolerance rejects every reduced path, however close; the fp32 paths are exact and always qualify.
    _fastest("onnxruntime-int8", monkeypatch)
    record = choose_serving_path(artifact, sample_data, tolerance=-1.0, **FAST)
    assert {n for n, c in record["candidates"].items() if c["accepted"]} == {"pytorch", "onnxruntime"}
    assert record["path"] in ("pytorch", "onnxruntime")


def test_calibration_never_uses_held_out_patients(artifact: Path, sample_data,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    roles = load_split(artifact / "split.json")["roles"]
    inputs, patients = calibration_inputs(artifact, sample_data, n=1000)
    assert patients and set(patients) <= set(roles["train"])
    assert not set(patients) & (set(roles["test"]) | set(roles["val"]))
    assert len(inputs) == len(sample_data.rows(roles["train"]))  # every training slice, when n allows

    # What actually reaches the quantizer matches no held-out slice.
    seen = []
    monkeypatch.setattr(serving_choice, "quantize_int8",
                        lambda src, dst, calibration, props: seen.append(calibration) or _negated_quantizer(
                            src, dst, calibration, props))
    record = choose_serving_path(artifact, sample_data, **FAST)
    assert set(record["calibration_patients"]) <= set(roles["train"])
    held_out = resize_input(normalize(sample_data.images[sample_data.rows(roles["test"] + roles["val"])]), None)
    flat = held_out.numpy().reshape(len(held_out), -1)
    for x in seen[0]:
        assert not np.any(np.all(np.isclose(flat, x.reshape(-1)), axis=1))


def test_no_training_patients_no_int8(artifact: Path, sample_data, cpu_host: None) -> None:
    split = json.loads((artifact / "split.json").read_text())
    split["roles"]["train"] = ["TCGA_XX_0000"]  # a patient the data does not hold
    (artifact / "split.json").write_text(json.dumps(split))
    record = choose_serving_path(artifact, sample_data, **FAST)
    assert "training patients is in" in record["candidates"]["onnxruntime-int8"]["reason"]


@pytest.fixture(scope="module")
def int8_record(exported: Path, sample_data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``exported`` whose record serves ONNX Runtime int8 (records hold wherever the folder is)."""
    folder = shutil.copytree(exported, tmp_path_factory.mktemp("int8") / "unet-mini")
    with pytest.MonkeyPatch.context() as patch:
        _fastest("onnxruntime-int8", patch)
        assert choose_serving_path(folder, sample_data, tolerance=1.0, **FAST)["path"] == "onnxruntime-int8"
    return folder


@pytest.fixture
def int8_served(int8_record: Path, tmp_path: Path, cpu_host: None) -> Path:
    """A fresh copy of ``int8_record``, served through int8 before a test spoils it."""
    folder = shutil.copytree(int8_record, tmp_path / "unet-mini")
    assert load_predictor(folder).precision == "int8"
    return folder


def _edit_record(folder: Path, **changes) -> None:
    record = json.loads((folder / SERVING_FILE).read_text())
    for key, value in changes.items():
        record[key] = value if key != "host" else {**record["host"], **value}
    (folder / SERVING_FILE).write_text(json.dumps(record))


@pytest.mark.parametrize("spoil, message", [
    (lambda f: _edit_record(f, host={"cpu": "another CPU"}), "measured on another host \\(cpu differ"),
    (lambda f: _edit_record(f, host={"onnxruntime": "0.1"}), "onnxruntime differ"),
    (lambda f: (f / INT8_FILE).unlink(), "model.int8.onnx is missing"),
    (lambda f: (f / INT8_FILE).write_bytes((f / ONNX_FILE).read_bytes()), "is not the file serving.json measured"),
    (lambda f: _edit_record(f, path="tensorrt-fp8"), "unknown path"),
    (lambda f: _edit_record(f, path=["onnxruntime-int8"]), "unknown path"),
    (lambda f: (f / SERVING_FILE).write_text("{not json"), "not valid JSON"),
], ids=["other-cpu", "other-onnxruntime", "file-missing", "file-replaced", "unknown-path", "path-not-a-string",
     "garbage"])
def test_record_that_no_longer_holds_falls_back_with_a_warning(spoil, message: str, int8_served: Path) -> None:
    spoil(int8_served)
    with pytest.warns(UserWarning, match=message):
        served = load_predictor(int8_served)
    # The fp32 rule from before any record: model.onnx, which still reproduces the weights.
    assert isinstance(served, OnnxPredictor) and served.precision == "fp32"


def test_new_weights_void_the_record(int8_served: Path) -> None:
    config = {k: v for k, v in json.loads((int8_served / "config.json").read_text()).items()
              if k not in ("arch", "arch_kwargs")}
    LGGModel("unet-mini", {"base_width": 4}).save_pretrained(int8_served, config=config)
    with pytest.warns(UserWarning) as caught:
        served = load_predictor(int8_served)
    messages = " | ".join(str(w.message) for w in caught)
    assert "measured with other weights" in messages and "serving" in messages
    assert isinstance(served, TorchPredictor) and served.precision == "fp32"
    with pytest.raises(OnnxBackendError, match="exported from other weights"):
        load_predictor(int8_served, "onnxruntime-int8")


def test_without_split_reduced_paths_are_not_checked(artifact: Path, sample_data, cpu_host: None) -> None:
    (artifact / "split.json").unlink()
    record = choose_serving_path(artifact, sample_data, **FAST)
    assert "no split.json" in record["candidates"]["onnxruntime-int8"]["reason"]
    assert record["path"] in ("pytorch", "onnxruntime") and record["quality"]["patients"] == 0
