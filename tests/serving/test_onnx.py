"""ONNX export of every registry entry, parity with PyTorch, and the ONNX Runtime prediction backend."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lgg_core.cli import main
from lgg_core.serving.device import pick_device
from lgg_core.models import LGGModel, create_model, list_models
from lgg_core.serving.onnx_backend import (
    ONNX_FILE,
    WEIGHTS_HASH_KEY,
    OnnxBackendError,
    OnnxPredictor,
    TorchPredictor,
    export_artifact,
    export_model,
    load_predictor,
    max_abs_diff,
    weights_sha256,
)
from lgg_core.training.trainer import TrainConfig, train

# Exports that take 6-30 s each on 2 busy cores; the default run keeps a fast member of each family
# (plain CNNs, SegNet's unpooling, attention gates, an smp U-Net, SegFormer, a torchvision ResNet, the gated composite).
SLOW_EXPORTS = {
    "deeplabv3plus", "ensemble", "fpn", "inception-resnet-v2", "inception-v3", "resnet50", "unet",
    "unet-mobilenetv2", "unet-resnet34", "unet-resnet50", "unet-resnet50-frozen", "unetplusplus",
}


def test_slow_exports_are_registered() -> None:
    assert SLOW_EXPORTS <= set(list_models())


@pytest.mark.parametrize(
    "arch", [pytest.param(a, marks=pytest.mark.slow) if a in SLOW_EXPORTS else a for a in list_models()]
)
def test_export_parity(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(arch).eval()
    path = export_model(model, tmp_path / "m.onnx", input_size=128)
    diff, tolerance = max_abs_diff(model, path, input_size=128, batch=2)
    assert diff <= tolerance, f"{arch}: max |onnx - torch| = {diff:.3g} > {tolerance:.3g}"
    # The batch axis is symbolic, so another batch size runs too.
    batch_dim = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value
    diff, tolerance = max_abs_diff(model, path, input_size=128, batch=1, seed=1)
    assert diff <= tolerance


def test_export_keeps_slice_standardization(tmp_path: Path) -> None:
    # The standardization is a forward pre-hook: the exported graph must contain it, so a darker scan gives the
    # same ONNX output as the original.
    torch.manual_seed(0)
    model = LGGModel("unet-mini", {"standardize": True}).eval()
    path = export_model(model, tmp_path / "m.onnx", input_size=128)
    diff, tolerance = max_abs_diff(model, path, input_size=128, batch=2)
    assert diff <= tolerance
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 128, 128)).astype(np.float32)
    name = session.get_inputs()[0].name
    out, darker = (session.run(None, {name: v})[0] for v in (x, (0.4 * x - 1).astype(np.float32)))
    np.testing.assert_allclose(darker, out, rtol=1e-3, atol=1e-3)


def _train(sample_data, root: Path, arch: str, **kwargs) -> Path:
    cfg = TrainConfig(arch=arch, epochs=1, limit_train_batches=2, k=3, batch_size=8, device="cpu",
                      mixed_precision=False, **kwargs)
    return train(cfg, sample_data, root / arch, root / f"{arch}.run", progress=False)


@pytest.fixture(scope="module")
def artifacts(sample_data, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny trained artifacts with model.onnx: a segmenter at the native 256 and a classifier resized to 64."""
    root = tmp_path_factory.mktemp("onnx")
    folders = {
        "segment": _train(sample_data, root, "cnn-encdec", arch_kwargs={"base_width": 8}),
        "classify": _train(sample_data, root, "resnet18", input_size=64, loss="bce"),
    }
    for folder in folders.values():
        # model.onnx alone, no serving.json: these tests cover the fp32 rule (test_serving_choice the record).
        assert main(["export-onnx", str(folder), "--no-measure"]) == 0
    return folders


@pytest.mark.parametrize("task", ["segment", "classify"])
def test_onnx_predictor_matches_pytorch(task: str, artifacts: dict[str, Path], sample_data) -> None:
    folder = artifacts[task]
    images = sample_data.images[:20]
    onnx_predictor = load_predictor(folder, backend="onnxruntime")
    torch_predictor = load_predictor(folder, backend="pytorch")
    assert isinstance(onnx_predictor, OnnxPredictor) and isinstance(torch_predictor, TorchPredictor)
    assert onnx_predictor.task == torch_predictor.task == task
    for tta in (False, True):
        got = onnx_predictor.predict(images, batch_size=8, tta=tta)
        expected = torch_predictor.predict(images, batch_size=8, tta=tta)
        assert got.shape == expected.shape == ((20, 256, 256) if task == "segment" else (20,))
        assert np.abs(got - expected).max() < 1e-4
    assert onnx_predictor.predict(images[:0]).shape == (0,)


def test_export_records_weights_hash(artifacts: dict[str, Path]) -> None:
    folder = artifacts["classify"]
    proto = onnx.load(str(folder / ONNX_FILE))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props == {WEIGHTS_HASH_KEY: weights_sha256(folder), "arch": "resnet18"}
    # The classifier was trained at 64x64, so the graph takes 64x64.
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]] == [3, 64, 64]


def test_auto_backend(artifacts: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "seg"
    shutil.copytree(artifacts["segment"], folder)
    expected = OnnxPredictor if pick_device().type == "cpu" else TorchPredictor
    assert type(load_predictor(folder)) is expected

    # New weights make the exported graph stale: never serve it.
    model = LGGModel("cnn-encdec", {"base_width": 8})
    model.save_pretrained(folder, config={k: v for k, v in load_predictor(folder, "pytorch").config.items()
                                          if k not in ("arch", "arch_kwargs")})
    with pytest.raises(OnnxBackendError, match="exported from other weights"):
        load_predictor(folder, backend="onnxruntime")
    if expected is OnnxPredictor:
        with pytest.warns(UserWarning, match="serving .* with PyTorch"):
            assert isinstance(load_predictor(folder), TorchPredictor)

    (folder / ONNX_FILE).unlink()
    assert isinstance(load_predictor(folder), TorchPredictor)
    with pytest.raises(OnnxBackendError, match="lgg export-onnx"):
        load_predictor(folder, backend="onnxruntime")
    with pytest.raises(ValueError, match="backend must be one of"):
        load_predictor(folder, backend="tensorrt")


def test_export_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-onnx", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a model artifact" in err and "Traceback" not in err
    assert main(["export-onnx"]) == 2
    assert "nothing to export" in capsys.readouterr().err


def test_export_catalog(artifacts: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "cls"
    shutil.copytree(artifacts["classify"], folder)
    (folder / ONNX_FILE).unlink()
    catalog = tmp_path / "models.toml"
    catalog.write_text('[[model]]\nname = "cls"\npath = "cls"\n\n[[model]]\nname = "hub"\nrepo_id = "o/hub"\n')
    assert main(["export-onnx", "--catalog", str(catalog), "--no-measure"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {folder / ONNX_FILE}"
    assert isinstance(load_predictor(folder, backend="onnxruntime"), OnnxPredictor)


def test_export_artifact_rejects_parity_failure(artifacts: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "seg"
    shutil.copytree(artifacts["segment"], folder)
    (folder / ONNX_FILE).unlink()
    monkeypatch.setattr("lgg_core.serving.onnx_backend.max_abs_diff", lambda *args, **kwargs: (0.5, 1e-4))
    with pytest.raises(OnnxBackendError, match="differs from PyTorch by 0.5"):
        export_artifact(folder)
    assert not (folder / ONNX_FILE).exists()


def test_dashboard_serves_through_onnx_runtime_once_exported(artifacts: dict[str, Path], tmp_path: Path,
                                                              sample_data, monkeypatch: pytest.MonkeyPatch) -> None:
    from lgg_core.serving.records import ModelRecord, load_predictor_for
    from lgg_core.models import read_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU host, as on a Space
    folder = shutil.copytree(artifacts["segment"], tmp_path / "m", ignore=shutil.ignore_patterns("model.onnx"))
    record = ModelRecord("m", folder, read_config(folder))
    assert load_predictor_for(record).backend == "pytorch"
    assert main(["export-onnx", str(folder), "--no-measure"]) == 0
    served = load_predictor_for(record)
    assert served.backend == "onnxruntime"
    images = sample_data.images[:4]
    np.testing.assert_allclose(served.predict(images), load_predictor(folder, backend="pytorch").predict(images),
                               atol=1e-4)


def test_onnx_sessions_do_not_spin(artifacts: dict[str, Path]) -> None:
    folder = artifacts["segment"]
    export_artifact(folder)
    options = load_predictor(folder, backend="onnxruntime").session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
