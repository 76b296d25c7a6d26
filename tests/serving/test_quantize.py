"""int8 per-channel weight files: the round trip, the size, the header check against tampering, and
``lgg quantize-weights`` keeping int8 weights only when the held-out scores do not move."""
from __future__ import annotations

import fnmatch
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lgg_core.cli import main
from lgg_core.data.cache import load_dataset
from lgg_core.evaluation.quantize import quantize_artifact
from lgg_core.models import ArtifactError, LGGModel, hub_model
from lgg_core.models.hub_model import (
    INT8_PER_CHANNEL,
    QUANTIZATION_KEY,
    SCALE_SUFFIX,
    check_weights,
    load_weights,
    stored_quantization,
)
from lgg_core.serving.artifacts import load_artifact
from lgg_core.serving.hub import UPLOAD_PATTERNS
from lgg_core.serving.onnx_backend import export_artifact, onnx_status
from lgg_core.serving.records import DEMO_DIR, resolve_models


def _varied_model(arch: str, **kwargs) -> LGGModel:
    """A model whose BatchNorm statistics are not the defaults, so every kind of tensor is exercised."""
    torch.manual_seed(0)
    model = LGGModel(arch, kwargs)
    for key, t in model.state_dict().items():
        if t.is_floating_point() and t.ndim == 1:
            t.copy_(torch.rand_like(t) + 0.5)
    return model.eval()


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), "pt") as f:
        return {key: f.get_tensor(key) for key in f.keys()}, f.metadata()


@torch.no_grad()
def test_round_trip_is_within_half_a_step_per_channel(tmp_path: Path) -> None:
    model = _varied_model("unet-mini")
    model.save_pretrained(tmp_path, weights_dtype=torch.int8)
    stored, metadata = _read(tmp_path / "model.safetensors")
    assert metadata == {"format": "pt", QUANTIZATION_KEY: INT8_PER_CHANNEL}
    loaded = load_weights(tmp_path / "model.safetensors")
    for key, original in model.state_dict().items():
        assert loaded[key].shape == original.shape
        if original.is_floating_point() and original.ndim >= 2:
            scale = stored[key + SCALE_SUFFIX]
            assert stored[key].dtype == torch.int8 and scale.shape == (original.shape[0],)
            assert loaded[key].dtype == torch.float32
            step = scale.reshape(-1, *[1] * (original.ndim - 1))
            assert ((loaded[key] - original).abs() <= step / 2 * (1 + 1e-5)).all(), key
        elif original.is_floating_point():
            assert stored[key].dtype == loaded[key].dtype == torch.float16  # load_state_dict makes it float32
            assert torch.equal(loaded[key], original.half())
        else:
            assert torch.equal(loaded[key], original)  # num_batches_tracked stays int64
    x = torch.randn(1, 3, 64, 64)
    reloaded = LGGModel.from_pretrained(tmp_path)
    torch.testing.assert_close(reloaded(x), model(x), atol=0.05, rtol=0.05)


def test_int8_file_is_about_half_the_float16_file(tmp_path: Path) -> None:
    model = _varied_model("unet-mini")
    model.save_pretrained(tmp_path / "fp16", weights_dtype=torch.float16)
    model.save_pretrained(tmp_path / "int8", weights_dtype=torch.int8)
    fp16, int8 = ((tmp_path / d / "model.safetensors").stat().st_size for d in ("fp16", "int8"))
    assert 0.45 < int8 / fp16 < 0.55


@torch.no_grad()
def test_a_model_checked_without_the_meta_device_loads_too(tmp_path: Path) -> None:
    # SegFormer's builder reads tensor values, so its header is bounded but not compared; the loader checks scales.
    model = _varied_model("segformer")
    model.save_pretrained(tmp_path, weights_dtype=torch.int8)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(LGGModel.from_pretrained(tmp_path)(x), model(x), atol=0.05, rtol=0.05)


def test_zero_and_non_finite_rows() -> None:
    q, scale = hub_model.quantize_rows(torch.zeros(3, 2))
    assert not q.any() and (scale == 1).all()
    with pytest.raises(ValueError, match="non-finite"):
        hub_model.quantize_rows(torch.tensor([[1.0, float("nan")]]))


def _rewrite(change: Callable[[dict, dict], None]) -> Callable[[Path], None]:
    """Edit the tensors and metadata of a weights file and write it back."""
    def tamper(path: Path) -> None:
        tensors, metadata = _read(path)
        change(tensors, metadata)
        save_file(tensors, str(path), metadata=metadata)
    return tamper


def _first_conv(tensors: dict) -> str:
    return next(k for k, t in tensors.items() if t.dtype == torch.int8)


def _first_bias(tensors: dict) -> str:
    return next(k for k, t in tensors.items() if k.endswith("bias"))


def _int8_bias(tensors: dict, metadata: dict) -> None:
    key = _first_bias(tensors)
    tensors[key] = tensors[key].to(torch.int8)
    tensors[key + SCALE_SUFFIX] = torch.ones(1)


TAMPERED = {
    "wrong scale shape": (_rewrite(lambda t, m: t.update({_first_conv(t) + SCALE_SUFFIX: torch.ones(3)})),
                          r"int8-per-channel: net\.\S+::scale is float \(3,\) in the file, float \(\d+,\) in"),
    "scale missing": (_rewrite(lambda t, m: t.pop(_first_conv(t) + SCALE_SUFFIX)), r"missing tensors net\.\S+::scale$"),
    "extra int8 tensor": (_rewrite(lambda t, m: t.update({"net.extra.weight": torch.zeros(2, 2, dtype=torch.int8),
                                                          "net.extra.weight::scale": torch.ones(2)})),
                          r"unexpected tensors net.extra.weight, net.extra.weight::scale$"),
    "int8 for a 1-d tensor": (_rewrite(_int8_bias),
                              r"unexpected tensors net\.\S+bias::scale; net\.\S+bias is int8 \(\d+,\) in the file"),
    "int8 without the metadata": (_rewrite(lambda t, m: m.pop(QUANTIZATION_KEY)), "does not match"),
    "unknown scheme": (_rewrite(lambda t, m: m.update({QUANTIZATION_KEY: "int4"})), "int4"),
    "pickle": (lambda path: torch.save({"net.0.weight": torch.zeros(1)}, path), "not a readable safetensors file"),
}


@pytest.mark.parametrize("case", TAMPERED)
def test_tampered_int8_files_are_refused_before_anything_is_built(case: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    tamper, message = TAMPERED[case]
    model = _varied_model("cnn-encdec", base_width=8)
    model.save_pretrained(tmp_path, config={"task": "segment"}, weights_dtype=torch.int8)
    tamper(tmp_path / "model.safetensors")
    devices = []
    real_create = hub_model.create_model
    monkeypatch.setattr(hub_model, "create_model",
                        lambda *a, **k: devices.append(torch.get_default_device().type) or real_create(*a, **k))
    with pytest.raises(ArtifactError, match=message):
        LGGModel.from_pretrained(tmp_path)
    assert set(devices) <= {"meta"}


@pytest.mark.parametrize("case", ["wrong scale shape", "scale missing"])
def test_the_loader_checks_scales_itself(case: str, tmp_path: Path) -> None:
    # What stands between a model the header check cannot build on the meta device and a bad file.
    _varied_model("cnn-encdec", base_width=8).save_pretrained(tmp_path, weights_dtype=torch.int8)
    TAMPERED[case][0](tmp_path / "model.safetensors")
    with pytest.raises(ArtifactError, match="needs a floating"):
        load_weights(tmp_path / "model.safetensors")


def test_an_orphan_scale_is_refused_by_the_loader(tmp_path: Path) -> None:
    _varied_model("cnn-encdec", base_width=8).save_pretrained(tmp_path, weights_dtype=torch.int8)
    _rewrite(lambda t, m: t.update({"net.nothing::scale": torch.ones(2)}))(tmp_path / "model.safetensors")
    with pytest.raises(ArtifactError, match="belongs to no int8 tensor"):
        load_weights(tmp_path / "model.safetensors")
    with pytest.raises(ArtifactError, match="unexpected tensors net.nothing::scale$"):
        check_weights("cnn-encdec", {"base_width": 8}, tmp_path / "model.safetensors")


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def segmenter(zoo_catalog: Path, tmp_path: Path) -> Path:
    """A copy of the tiny zoo's evaluated segmenter, with model.onnx exported from its float weights."""
    folder = tmp_path / "unet-mini"
    shutil.copytree(zoo_catalog.parent / "unet-mini", folder)
    export_artifact(folder)
    return folder


def test_command_keeps_int8_weights_within_the_tolerance(segmenter: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    size = (segmenter / "model.safetensors").stat().st_size
    assert main(["quantize-weights", str(segmenter), "--data-dir", str(DEMO_DIR)]) == 0
    assert "int8 per channel kept" in capsys.readouterr().out
    assert stored_quantization(segmenter / "model.safetensors") == INT8_PER_CHANNEL
    assert (segmenter / "model.safetensors").stat().st_size < size / 2  # the tiny zoo stores float32
    record = json.loads((segmenter / "config.json").read_text())["training"]["weights_quantization"]
    before, after = record["scores"]["patient_dice"]["before"], record["scores"]["patient_dice"]["after"]
    assert abs(after - before) <= record["tolerance"] == 0.005
    # The eval/ tables and the card describe the weights that ship.
    assert json.loads((segmenter / "eval" / "summary.json").read_text())["headline"]["patient_dice"] == after
    assert "int8 per output channel" in (segmenter / "README.md").read_text()
    assert not (segmenter / "model.onnx").exists()  # exported from the old weights
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    # Everything that ships is still matched by the Hub's upload patterns.
    assert all(any(fnmatch.fnmatch(name, p) for p in UPLOAD_PATTERNS) for name in _files(segmenter))
    model, _ = load_artifact(segmenter)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    export_artifact(segmenter)  # ONNX export runs on the dequantized model
    assert onnx_status(segmenter) is None
    assert main(["quantize-weights", str(segmenter), "--data-dir", str(DEMO_DIR)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_command_restores_the_original_when_scores_move(segmenter: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = _files(segmenter)
    assert main(["quantize-weights", str(segmenter), "--data-dir", str(DEMO_DIR), "--tolerance", "-1"]) == 1
    assert "original weights kept" in capsys.readouterr().out
    assert _files(segmenter) == original
    assert not [p.name for p in segmenter.parent.iterdir() if ".tmp-" in p.name]


def test_classifier_to_a_new_folder_and_the_app_records(zoo_catalog: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    source = zoo_catalog.parent / "resnet18"
    original = _files(source)
    result = quantize_artifact(source, load_dataset(DEMO_DIR, progress=False), out=tmp_path / "resnet18")
    assert result.accepted and set(result.scores) == {"accuracy", "auroc"}
    assert _files(source) == original  # --out leaves the original alone
    (tmp_path / "models.toml").write_text('[[model]]\nname = "resnet18"\npath = "resnet18"\n')
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    records, problem = resolve_models(tmp_path / "models.toml")
    assert problem is None and records[0].ok and records[0].has_weights, records[0].problem


def test_reference_artifacts_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ensemble"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"arch": "ensemble", "task": "segment", "parts": ["../resnet18"]}))
    with pytest.raises(ValueError, match="no weights of its own"):
        quantize_artifact(folder, data=None)  # refused before any data is needed
