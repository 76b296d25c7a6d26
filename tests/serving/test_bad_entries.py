"""A catalog of broken and hostile artifacts: each is listed as unavailable with its reason (or served safely), no
page shows a traceback, loading never reaches the network or builds something huge, and the CLI prints one error.

The corpus is generated from a good tiny artifact in the tests; nothing crafted is committed.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import warnings
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
import torch
from streamlit.testing.v1 import AppTest

from lgg_core.cli import main
from lgg_core.models import ArtifactError, hub_model
from lgg_core.serving.artifacts import load_artifact
from lgg_core.serving.onnx_backend import OnnxPredictor, TorchPredictor, export_artifact, load_predictor
from lgg_core.serving.records import read_card, read_epochs, read_eval, read_split, resolve_models

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
PAGES = ["leaderboard", "compare", "explain", "failures", "upload", "models", "patient"]


def _edit_config(folder: Path, change: Callable[[dict], None]) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def _truncate_weights(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _pickle_weights(folder: Path) -> None:
    torch.save({"net.0.weight": torch.zeros(1)}, folder / "model.safetensors")


def _nested_config(folder: Path) -> None:
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)


# name -> (how to break a copy of the good segmenter, what the reason must say)
UNLOADABLE = {
    "unknown-arch": (lambda f: _edit_config(f, lambda c: c.update(arch="no-such-net")), "unknown model"),
    "truncated-weights": (_truncate_weights, "not a readable safetensors file"),
    "pickle-weights": (_pickle_weights, "not a readable safetensors file"),
    "nested-config": (_nested_config, "not valid JSON"),
    "training-null": (lambda f: _edit_config(f, lambda c: c.update(training=None)), "training must be an object"),
    "huge-input": (lambda f: _edit_config(f, lambda c: c["training"].update(input_size=2048)), "input_size"),
    "wide-net": (lambda f: _edit_config(f, lambda c: c["arch_kwargs"].update(base_width=256)), "does not match"),
    "url-in-kwargs": (lambda f: _edit_config(f, lambda c: c["arch_kwargs"].update(
        pretrained_cfg_overlay={"url": "http://example.invalid/w.pth"})), "unknown keys"),
}


def _garbage_onnx(folder: Path) -> None:
    (folder / "model.onnx").write_bytes(b"\x08\x07garbage, not a protobuf" * 50)


def _external_onnx(folder: Path) -> None:
    # onnx refuses to write such a file itself, so the reference to a file outside the folder is set by hand.
    export_artifact(folder)
    proto = onnx.load(str(folder / "model.onnx"))
    tensor = proto.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../outside.bin")
    (folder / "model.onnx").write_bytes(proto.SerializeToString())


def _lying_onnx(folder: Path) -> None:
    # A graph from other weights that claims this folder's hash: only running it can tell.
    export_artifact(folder)
    proto = onnx.load(str(folder / "model.onnx"))
    for tensor in proto.graph.initializer:
        if tensor.data_type == onnx.TensorProto.FLOAT and len(tensor.dims) == 4:
            array = onnx.numpy_helper.to_array(tensor) * -3.0
            tensor.CopyFrom(onnx.numpy_helper.from_array(array, tensor.name))
            break
    onnx.save(proto, str(folder / "model.onnx"))


def _bad_summary(folder: Path) -> None:
    (folder / "eval/summary.json").write_text(json.dumps({"task": "segment", "variants": {"raw": {}}}))


SERVED_BY_PYTORCH = {"garbage-onnx": _garbage_onnx, "external-onnx": _external_onnx, "lying-onnx": _lying_onnx}
SIDE_FILES = {
    "bad-eval": _bad_summary,
    "bad-epochs": lambda f: (f / "epochs.csv").write_text("nonsense\n1\n"),
    "bad-split": lambda f: (f / "split.json").write_text(json.dumps({"roles": 5})),
}


@pytest.fixture(scope="module")
def bad_catalog(zoo_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny zoo's good models plus one broken copy of its cnn-encdec per case above."""
    good = zoo_catalog.parent
    root = tmp_path_factory.mktemp("bad-zoo")
    entries = ["cnn-encdec", "unet-mini", "resnet18"]
    for name in entries:
        shutil.copytree(good / name, root / name)
    for name, breaker in {**{k: v[0] for k, v in UNLOADABLE.items()}, **SERVED_BY_PYTORCH, **SIDE_FILES}.items():
        shutil.copytree(good / "cnn-encdec", root / name)
        breaker(root / name)
        entries.append(name)
    catalog = root / "models.toml"
    catalog.write_text("".join(f'[[model]]\nname = "{n}"\npath = "{n}"\n\n' for n in entries))
    return catalog


@pytest.fixture
def records(bad_catalog: Path) -> dict:
    found, problem = resolve_models(bad_catalog)
    assert problem is None
    return {r.name: r for r in found}


@pytest.mark.parametrize("name", UNLOADABLE)
def test_unloadable_entry_is_listed_with_its_reason(name: str, records: dict) -> None:
    record = records[name]
    assert not record.ok and UNLOADABLE[name][1] in record.problem
    with pytest.raises((ArtifactError, OSError)):
        load_artifact(record.path)


@pytest.mark.parametrize("name", SERVED_BY_PYTORCH)
def test_onnx_that_does_not_match_the_weights_is_never_served(name: str, records: dict) -> None:
    record = records[name]
    assert record.ok
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor = load_predictor(record.path)
    assert isinstance(predictor, TorchPredictor) and not isinstance(predictor, OnnxPredictor)
    assert any("serving" in str(w.message) and "PyTorch" in str(w.message) for w in caught)


def test_side_files_with_missing_keys_are_reported(records: dict) -> None:
    tables, problem = read_eval(records["bad-eval"])
    assert tables is None and "unreadable" in problem
    assert read_epochs(records["bad-epochs"]) is None
    assert read_split(records["bad-split"]) is None


def test_loading_never_reaches_the_network(records: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "asks-for-imagenet"
    shutil.copytree(records["resnet18"].path, folder)
    _edit_config(folder, lambda c: c["arch_kwargs"].update(pretrained=True))

    def refuse(*args, **kwargs):
        raise AssertionError("loading an artifact opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    model, config = load_artifact(folder)
    assert config["arch_kwargs"] == {"pretrained": True} and model.arch_kwargs == {"pretrained": True}


def test_huge_config_is_refused_before_anything_is_allocated(records: dict, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "billions"
    shutil.copytree(records["cnn-encdec"].path, folder)
    _edit_config(folder, lambda c: c.update(arch="unet", arch_kwargs={"base_width": 1024}))  # ~8e9 parameters
    devices = []
    real_create = hub_model.create_model
    monkeypatch.setattr(hub_model, "create_model",
                        lambda *a, **k: devices.append(torch.get_default_device().type) or real_create(*a, **k))
    with pytest.raises(ArtifactError, match="does not match"):
        load_artifact(folder)
    assert devices == ["meta"]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_survives_the_bad_catalog(page: str, bad_catalog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LGG_CATALOG", str(bad_catalog))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at = at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    if page == "leaderboard":
        status = at.dataframe[0].value.set_index("model")["status"]
        assert status["cnn-encdec"] == "evaluated"
        for name in [*UNLOADABLE, "bad-eval"]:
            assert status[name] != "evaluated", name
    if page == "models":
        for option in at.selectbox[0].options:
            at.selectbox[0].set_value(option).run()
            assert not at.exception, (option, [e.value for e in at.exception])


@pytest.mark.parametrize("command", ["evaluate", "export-onnx"])
def test_cli_prints_one_clear_error(command: str, records: dict, sample_root: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    for name in UNLOADABLE:
        args = [command, str(records[name].path)] + (["--data-dir", str(sample_root)] if command == "evaluate" else [])
        assert main(args) == 2, name
        err = capsys.readouterr().err  # may also hold the data-loading progress bar
        assert "Traceback" not in err and len([line for line in err.splitlines() if "error" in line]) == 1, err
        assert err.rstrip().splitlines()[-1].startswith("error: "), err


def test_model_cards_render_without_remote_images(records: dict, tmp_path: Path) -> None:
    folder = tmp_path / "tracking-card"
    shutil.copytree(records["cnn-encdec"].path, folder)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# Card\n![pixel](https://tracker.invalid/p.gif)\n"
                                      "![logo][l]\n\n[l]: https://tracker.invalid/logo.png\n[a link](https://ok.invalid)\n")
    card = read_card(dataclasses.replace(records["cnn-encdec"], path=folder))
    assert "![" not in card and "tracker.invalid/p.gif" not in card
    assert "[image: pixel]" in card and "[a link](https://ok.invalid)" in card
