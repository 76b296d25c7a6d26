"""A visitor's model opened from an upload or a Hub id: what passes runs as the zoo's would, what does not is one clear
message, and nothing stays on disk."""
from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lgg_core.data.cache import load_dataset
from lgg_core.serving import foreign
from lgg_core.serving.artifacts import load_artifact
from lgg_core.serving.foreign import ForeignModelError, open_model, pull_model
from lgg_core.serving.inference import predict
from lgg_core.serving.onnx_backend import export_model
from lgg_core.serving.records import DEMO_DIR


def zipped(folder: Path, prefix: str = "mine/", files: tuple[str, ...] = ("config.json", "model.safetensors"),
           extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in files:
            archive.write(folder / name, prefix + name)
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary folders of this test only, so that the test can see whether any is left behind."""
    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


@pytest.fixture(scope="module")
def slices() -> np.ndarray:
    return load_dataset(DEMO_DIR, progress=False).images[:8]


def test_an_uploaded_artifact_predicts_what_the_artifact_does(zoo_catalog: Path, slices: np.ndarray,
                                                              private_tmp: Path) -> None:
    folder = zoo_catalog.parent / "unet-mini"
    model, config = load_artifact(folder)
    expected = predict(model, slices, "segment", input_size=config["training"].get("input_size"))
    segmenter = open_model("mine.zip", zipped(folder, extra={"mine/eval/summary.json": b"{}"}))
    assert segmenter.backend == "pytorch"
    assert np.allclose(segmenter.predict(slices), expected, atol=1e-5)
    assert not any(private_tmp.iterdir())  # the extracted files went with their folder


def test_an_uploaded_graph_predicts_and_leaves_nothing_behind(zoo_catalog: Path, slices: np.ndarray,
                                                              private_tmp: Path, tmp_path: Path) -> None:
    model, config = load_artifact(zoo_catalog.parent / "unet-mini")
    graph = export_model(model, tmp_path / "mine.onnx", config["training"].get("input_size") or 256)
    expected = predict(model, slices, "segment", input_size=config["training"].get("input_size"))
    segmenter = open_model("../../mine.onnx", graph.read_bytes())
    assert segmenter.backend == "onnxruntime"
    assert np.allclose(segmenter.predict(slices), expected, atol=1e-4)
    assert not any(private_tmp.iterdir())


def _parts_artifact(zoo: Path, tmp: Path) -> bytes:
    folder = tmp / "parts"
    shutil.copytree(zoo / "unet-mini", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "parts": ["../unet-mini", "../unet-mini"]}))
    return zipped(folder)


def _bad_weights(zoo: Path, tmp: Path) -> bytes:
    folder = tmp / "bad"
    shutil.copytree(zoo / "unet-mini", folder)
    (folder / "model.safetensors").write_bytes(b"\xff" * 64)
    return zipped(folder)


def _escaping(zoo: Path, tmp: Path) -> bytes:
    return zipped(zoo / "unet-mini", prefix="../../")


def _two_artifacts(zoo: Path, tmp: Path) -> bytes:
    buffer = io.BytesIO(zipped(zoo / "unet-mini"))
    with zipfile.ZipFile(buffer, "a") as archive:
        for name in ("config.json", "model.safetensors"):
            archive.write(zoo / "unet-mini" / name, f"other/{name}")
    return buffer.getvalue()


BAD_UPLOADS = {
    "empty file": (lambda zoo, tmp: ("mine.zip", b""), "is empty"),
    "wrong kind": (lambda zoo, tmp: ("mine.pt", b"\x80\x04pickle"), "expected an ONNX graph"),
    "not a zip": (lambda zoo, tmp: ("mine.zip", b"PK but not really" * 10), "not a .zip archive"),
    "garbage graph": (lambda zoo, tmp: ("mine.onnx", b"nonsense" * 100), "not a readable ONNX model"),
    "no weights": (lambda zoo, tmp: ("mine.zip", zipped(zoo / "unet-mini", files=("config.json",))),
                   "no model.safetensors"),
    "escaping names": (lambda zoo, tmp: ("mine.zip", _escaping(zoo, tmp)), "points outside the archive"),
    "two artifacts": (lambda zoo, tmp: ("mine.zip", _two_artifacts(zoo, tmp)), "more than one artifact"),
    "a classifier": (lambda zoo, tmp: ("mine.zip", zipped(zoo / "resnet18")), "not a segmenter"),
    "an ensemble": (lambda zoo, tmp: ("mine.zip", _parts_artifact(zoo, tmp)), "assembled from other artifacts"),
    "damaged weights": (lambda zoo, tmp: ("mine.zip", _bad_weights(zoo, tmp)), "is refused"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_a_bad_upload_is_one_message_and_leaves_nothing_behind(case: str, zoo_catalog: Path, tmp_path: Path,
                                                                 private_tmp: Path) -> None:
    make, message = BAD_UPLOADS[case]
    name, content = make(zoo_catalog.parent, tmp_path)
    with pytest.raises(ForeignModelError, match=message) as caught:
        open_model(name, content)
    assert "lgg-visitor" not in str(caught.value)  # no server path in the message
    assert not any(private_tmp.iterdir())


def test_a_file_over_the_limit_is_refused_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(foreign, "MAX_MODEL_BYTES", 1000)
    with pytest.raises(ForeignModelError, match="at most 0 MiB"):
        open_model("mine.onnx", b"\0" * 1001)


class FakeHub:
    """The Hub's answers for one repo holding the tiny zoo's unet-mini: sizes first, then the files."""

    def __init__(self, folder: Path, sizes: dict[str, int] | None = None) -> None:
        self.folder, self.downloads = folder, []
        self.sizes = sizes or {f.name: f.stat().st_size for f in folder.iterdir() if f.is_file()}

    def model_info(self, repo_id: str, revision: str | None = None, files_metadata: bool = False):
        assert files_metadata  # sizes are checked before anything is downloaded
        return SimpleNamespace(sha="a" * 40, siblings=[SimpleNamespace(rfilename=n, size=s)
                                                       for n, s in self.sizes.items()])

    def download(self, repo_id: str, filename: str, revision: str, local_dir: str) -> str:
        self.downloads.append((filename, revision))
        return shutil.copy(self.folder / filename, Path(local_dir) / filename)


def test_a_hub_repo_is_off_unless_the_server_allows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(foreign.HUB_ENV, raising=False)
    monkeypatch.setattr(foreign, "hf_hub_download", lambda *a, **k: pytest.fail("the network was reached"))
    with pytest.raises(ForeignModelError, match="does not download models for visitors"):
        pull_model("me/mine")


def test_a_hub_repo_is_checked_by_size_then_pinned_and_loaded(zoo_catalog: Path, slices: np.ndarray,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               private_tmp: Path) -> None:
    monkeypatch.setenv(foreign.HUB_ENV, "1")
    hub = FakeHub(zoo_catalog.parent / "unet-mini")
    monkeypatch.setattr(foreign, "hf_hub_download", hub.download)
    segmenter = pull_model("me/mine", api=hub)
    assert sorted(hub.downloads) == [("config.json", "a" * 40), ("model.safetensors", "a" * 40)]
    assert segmenter.predict(slices).shape == (8, 256, 256)
    assert not any(private_tmp.iterdir())  # never the server's Hub cache, and the temporary copy is gone


@pytest.mark.parametrize("sizes, message", [({"config.json": 10}, "has no model.safetensors"),
                                            ({"config.json": 10, "model.safetensors": 1 << 40}, "MiB; at most")])
def test_a_hub_repo_that_is_no_artifact_or_too_large_is_never_downloaded(
        sizes: dict[str, int], message: str, zoo_catalog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(foreign.HUB_ENV, "1")
    hub = FakeHub(zoo_catalog.parent / "unet-mini", sizes)
    monkeypatch.setattr(foreign, "hf_hub_download", hub.download)
    with pytest.raises(ForeignModelError, match=message):
        pull_model("me/mine", api=hub)
    assert hub.downloads == []


def test_an_unreachable_hub_is_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(foreign.HUB_ENV, "1")

    class Offline:
        def model_info(self, *args, **kwargs):
            raise ConnectionError("no route to host")

    with pytest.raises(ForeignModelError, match=r"cannot download me/mine@main \(ConnectionError\)"):
        pull_model("me/mine", api=Offline())
    with pytest.raises(ForeignModelError, match="invalid Hub repo id"):
        pull_model("../../etc", api=Offline())
