"""Hub push and pull, tested at the network boundary (HfApi.create_repo / upload_folder, snapshot_download)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import httpx2
import huggingface_hub
import pytest
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import filter_repo_objects

from lgg_core.serving.artifacts import DATASET_ID, load_artifact
from lgg_core.cli import main
from lgg_core.evaluation.evaluator import evaluate
from lgg_core.serving.hub import HubError, pull, push
from lgg_core.models import LGGModel
from lgg_core.training.trainer import TrainConfig, train

TOKEN = "hf_notARealTokenButSecret0123456789"
SHA = "0123456789abcdef0123456789abcdef01234567"
REPO = "someone/lgg-cnn-encdec"


@pytest.fixture(scope="module")
def artifact(sample_data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real trained and evaluated (tiny) artifact: weights, config, split, epoch log, eval tables, card."""
    root = tmp_path_factory.mktemp("hub")
    cfg = TrainConfig(arch="cnn-encdec", arch_kwargs={"base_width": 8}, epochs=1, limit_train_batches=2, k=3,
                      device="cpu", mixed_precision=False)
    out = train(cfg, sample_data, root / "cnn-encdec", root / "run", progress=False)
    evaluate(out, sample_data)
    return out


class FakeHub:
    """Records what create_repo and upload_folder received; upload_folder snapshots the staged folder."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_with: Exception | None = None) -> None:
        self.repos: list[dict] = []
        self.uploads: list[dict] = []
        self.fail_with = fail_with
        # Plain functions on the class, so each call also receives the HfApi instance (to check its token).
        monkeypatch.setattr(HfApi, "create_repo", lambda api, *args, **kwargs: self.create_repo(api, *args, **kwargs))
        monkeypatch.setattr(HfApi, "upload_folder", lambda api, **kwargs: self.upload_folder(api, **kwargs))

    def create_repo(self, api: HfApi, repo_id: str, **kwargs) -> str:
        if self.fail_with:
            raise self.fail_with
        self.repos.append({"repo_id": repo_id, "token": api.token, **kwargs})
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, api: HfApi, *, folder_path: Path, repo_id: str, **kwargs) -> SimpleNamespace:
        folder = Path(folder_path)
        every_file = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()]
        # The selection upload_folder itself makes from allow_patterns.
        files = sorted(filter_repo_objects(every_file, allow_patterns=kwargs["allow_patterns"]))
        card = ModelCard.load(folder / "README.md")
        self.uploads.append({"repo_id": repo_id, "files": files, "card": card, **kwargs})
        return SimpleNamespace(oid=SHA, commit_url=f"https://huggingface.co/{repo_id}/commit/{SHA}")


def test_push_uploads_artifact_with_card_metadata(
    artifact: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub = FakeHub(monkeypatch)

    assert main(["push", str(artifact), REPO, "--private"]) == 0

    assert hub.repos == [{"repo_id": REPO, "token": None, "repo_type": "model", "private": True, "exist_ok": True}]
    (upload,) = hub.uploads
    assert upload["files"] == ["README.md", "config.json", "epochs.csv", "eval/calibration.json", "eval/patients.csv",
                               "eval/predictions.npz", "eval/slices.csv", "eval/summary.json", "model.safetensors",
                               "split.json"]
    assert upload["repo_type"] == "model" and upload["commit_message"] == "Upload cnn-encdec"
    data = upload["card"].data
    assert (data.library_name, data.license, data.datasets) == ("lgg-core", "mit", [DATASET_ID])
    assert {"medical-imaging", "brain-mri", "safetensors"} <= set(data.tags)
    headline = json.loads((artifact / "eval" / "summary.json").read_text())["headline"]
    assert {r.metric_type: r.metric_value for r in data.eval_results} == {
        k: round(v, 4) for k, v in headline.items()
    }
    assert data.to_dict()["model-index"][0]["name"] == "cnn-encdec"
    assert "not a medical device" in upload["card"].text
    out, err = capsys.readouterr()
    assert f"{REPO} at {SHA}" in out and f"https://huggingface.co/{REPO}/commit/{SHA}" in out
    assert TOKEN not in out + err


def test_push_with_onnx_and_explicit_token(artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    folder = tmp_path / "a"
    shutil.copytree(artifact, folder)
    (folder / "notes.txt").write_text("local scratch file, not part of the model")
    with pytest.raises(HubError, match="lgg export-onnx"):
        push(folder, REPO, include_onnx=True, token=TOKEN)
    (folder / "model.onnx").write_bytes(b"onnx")
    (folder / "model.int8.onnx").write_bytes(b"int8 onnx")
    (folder / "serving.json").write_text("{}")  # this host's speed record: says nothing about another CPU
    hub = FakeHub(monkeypatch)
    result = push(folder, REPO, include_onnx=True, token=TOKEN, revision="dev", commit_message="v2")
    assert (result.repo_id, result.revision) == (REPO, SHA)
    assert hub.repos[0]["token"] == TOKEN
    assert {"model.onnx", "model.int8.onnx"} <= set(hub.uploads[0]["files"])
    assert not {"notes.txt", "serving.json"} & set(hub.uploads[0]["files"])
    assert hub.uploads[0]["revision"] == "dev" and hub.uploads[0]["commit_message"] == "v2"


def test_push_bare_model_keeps_its_card_but_needs_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    LGGModel("cnn-encdec", {"base_width": 4}).save_pretrained(tmp_path)
    # The mixin's default card has no dataset, so pushing it would publish an unindexed card.
    with pytest.raises(HubError, match="lacks datasets"):
        push(tmp_path, REPO)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["push", "ARTIFACT", "not a repo"], "invalid Hub repo id"),
        (["push", "ARTIFACT", "a/b/c"], "invalid Hub repo id"),
        (["push", "MISSING", REPO], "is not a model artifact"),
    ],
)
def test_push_bad_input_is_a_clean_error(
    args: list[str], fragment: str, artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub = FakeHub(monkeypatch)
    paths = {"ARTIFACT": str(artifact), "MISSING": str(tmp_path)}
    assert main([paths.get(a, a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and "Traceback" not in err
    assert hub.repos == [] and hub.uploads == []


def test_push_without_token(artifact: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    hub = FakeHub(monkeypatch)
    with pytest.raises(HubError, match="HF_TOKEN"):
        push(artifact, REPO)
    assert hub.repos == []


def test_push_refused_by_hub(artifact: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    FakeHub(monkeypatch, fail_with=HfHubHTTPError("403 Forbidden: no write access",
                                                  response=httpx2.Response(403, request=request)))
    assert main(["push", str(artifact), REPO]) == 2
    err = capsys.readouterr().err
    assert "pushing to someone/lgg-cnn-encdec failed: 403 Forbidden" in err and TOKEN not in err


def test_pull_pins_revision(artifact: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    calls = []

    def fake_snapshot_download(repo_id: str, **kwargs) -> str:
        calls.append({"repo_id": repo_id, **kwargs})
        return str(artifact)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    assert main(["pull", REPO, "--revision", SHA]) == 0
    assert capsys.readouterr().out.strip() == str(artifact)
    (call,) = calls
    assert (call["repo_id"], call["revision"], call["repo_type"]) == (REPO, SHA, "model")
    assert call["local_files_only"] is False and call["cache_dir"] is None
    assert {"model.safetensors", "config.json", "model.onnx"} <= set(call["allow_patterns"])


def _fill_hf_cache(cache: Path, repo_id: str, artifact: Path) -> Path:
    """The HF cache layout snapshot_download writes: snapshots/<commit>/ plus refs/main -> commit."""
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / SHA
    shutil.copytree(artifact, snapshot)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(SHA)
    return snapshot


def test_pull_uses_cache_offline(artifact: Path, tmp_path: Path) -> None:
    snapshot = _fill_hf_cache(tmp_path / "hub", REPO, artifact)
    for revision in (SHA, None):
        folder = pull(REPO, revision, cache_dir=tmp_path / "hub", local_files_only=True)
        assert folder == snapshot
    model, config = load_artifact(folder)
    assert config["arch"] == "cnn-encdec" and model.task == "segment"


def test_pull_offline_without_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(HubError, match="not in the Hugging Face cache"):
        pull(REPO, SHA, cache_dir=tmp_path, local_files_only=True)
    assert main(["pull", REPO, "--offline", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {REPO}@main is not in the Hugging Face cache") and "Traceback" not in err


def test_hf_hub_offline_environment(artifact: Path, tmp_path: Path) -> None:
    """HF_HUB_OFFLINE is read when huggingface_hub is imported, so it is set for a fresh process."""
    _fill_hf_cache(tmp_path / "hub", REPO, artifact)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "lgg_core.cli", "pull", REPO, "other/missing"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout.strip() == str(tmp_path / "hub" / f"models--{REPO.replace('/', '--')}" / "snapshots" / SHA)
    assert done.stderr.startswith("error: other/missing@main is not in the Hugging Face cache")
