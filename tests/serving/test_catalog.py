"""The model catalog: parsing, validation, resolving entries to artifact folders (Hub mocked at snapshot_download)."""
from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import pytest

from lgg_core.serving import artifacts
from lgg_core.serving.catalog import (
    DEFAULT_CATALOG,
    CatalogEntry,
    CatalogError,
    CrossvalEntry,
    load_catalog,
    load_crossval,
    missing_weights_message,
    rebuild_command,
    resolve_entry,
)
from lgg_core.models import LGGModel
from lgg_core.serving.records import read_eval, resolve_models

SHA = "0123456789abcdef0123456789abcdef01234567"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return path


@pytest.fixture
def tiny_artifact(tmp_path: Path) -> Path:
    folder = tmp_path / "artifacts" / "tiny"
    LGGModel("cnn-encdec", {"base_width": 4}).save_pretrained(folder)
    return folder


def test_default_catalog_lists_shipped_local_models() -> None:
    entries = load_catalog()
    assert entries, "models.toml lists no models"
    artifacts = DEFAULT_CATALOG.parent / "artifacts"
    for entry in entries:
        assert entry.repo_id is None and entry.path is not None
        assert entry.path.is_relative_to(artifacts), f"{entry.name} should be a shipped artifact under {artifacts}"


@pytest.mark.parametrize("path, command", [
    ("artifacts/unet", "train/zoo.sh unet"),
    ("/clone/artifacts/cv/v2/unet-mini/fold-0", "train/cv.sh v2/unet-mini"),
    ("artifacts/cv/unet-resnet50-transfer+e8/fold-3",
     "train/cv.sh unet-resnet50-transfer 8 artifacts/cv/unet-resnet50-transfer"),
])
def test_rebuild_command_names_the_script_that_made_the_artifact(path: str, command: str) -> None:
    assert rebuild_command(Path(path)) == command
    assert f"`{command}`" in missing_weights_message(Path(path))


def test_catalog_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LGG_CATALOG", str(_write(tmp_path, '[[model]]\nname = "a"\npath = "x"\n')))
    assert load_catalog() == [CatalogEntry("a", tmp_path / "x")]


def test_mixed_catalog(tmp_path: Path) -> None:
    path = _write(tmp_path, f"""
[[model]]
name = "local"
path = "artifacts/tiny"

[[model]]
name = "hub"
repo_id = "someone/lgg-unet"
revision = "{SHA}"

[[model]]
name = "hub-main"
repo_id = "someone/lgg-resnet18"
""")
    assert load_catalog(path) == [
        CatalogEntry("local", (tmp_path / "artifacts" / "tiny").resolve()),
        CatalogEntry("hub", repo_id="someone/lgg-unet", revision=SHA),
        CatalogEntry("hub-main", repo_id="someone/lgg-resnet18"),
    ]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('[[model]]\npath = "a"\n', "needs a name"),
        ('[[model]]\nname = "a"\n', "exactly one of path or repo_id"),
        ('[[model]]\nname = "a"\npath = "a"\nrepo_id = "o/a"\n', "exactly one of path or repo_id"),
        ('[[model]]\nname = "a"\npath = "a"\n[[model]]\nname = "a"\npath = "b"\n', "duplicate name 'a'"),
        ('[[model]]\nname = "a"\nrepo = "o/a"\n', "unknown keys repo"),
        ('[[model]]\nname = "a"\npath = "a"\nrevision = "main"\n', "revision only applies to repo_id"),
        ('[[model]]\nname = "a"\nrepo_id = "not a repo"\n', "invalid Hub repo id"),
        ('[[model]]\nname = "a"\nrepo_id = "no-owner"\n', "owner/name"),
        ('[[model]\n', "unreadable"),
    ],
)
def test_invalid_catalogs(tmp_path: Path, body: str, fragment: str) -> None:
    with pytest.raises(CatalogError, match="models.toml") as excinfo:
        load_catalog(_write(tmp_path, body))
    assert fragment in str(excinfo.value)


def test_crossval_runs_are_read_apart_from_the_models(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[model]]\nname = "m"\npath = "artifacts/m"\n'
                            '[[crossval]]\nname = "m"\npath = "artifacts/cv/m"\n')
    assert load_crossval(path) == [CrossvalEntry("m", (tmp_path / "artifacts/cv/m").resolve())]
    assert [e.name for e in load_catalog(path)] == ["m"]


@pytest.mark.parametrize(("body", "fragment"), [
    ('[[crossval]]\nname = "a"\n', "needs a name and a path"),
    ('[[crossval]]\nname = "a"\npath = "x"\nfolds = 5\n', "unknown keys folds"),
    ('[[crossval]]\nname = "a"\npath = "x"\n[[crossval]]\nname = "a"\npath = "y"\n', "duplicate name 'a'"),
])
def test_a_bad_crossval_entry_is_reported_and_leaves_the_models_alone(tmp_path: Path, body: str,
                                                                       fragment: str) -> None:
    path = _write(tmp_path, '[[model]]\nname = "m"\npath = "artifacts/m"\n' + body)
    with pytest.raises(CatalogError, match=fragment):
        load_crossval(path)
    assert [e.name for e in load_catalog(path)] == ["m"]


def test_missing_catalog(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "nope.toml")


def test_resolve_local_entry(tiny_artifact: Path, tmp_path: Path) -> None:
    assert resolve_entry(CatalogEntry("tiny", tiny_artifact)) == tiny_artifact
    with pytest.raises(CatalogError, match="'gone'.*does not exist"):
        resolve_entry(CatalogEntry("gone", tmp_path / "gone"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogError, match="'empty'.*lacks config.json"):
        resolve_entry(CatalogEntry("empty", tmp_path / "empty"))


def test_resolve_hub_entry_pulls_pinned_revision(tiny_artifact: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_snapshot_download(repo_id: str, **kwargs) -> str:
        calls.append((repo_id, kwargs["revision"], kwargs["local_files_only"]))
        return str(tiny_artifact)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    entry = CatalogEntry("hub", repo_id="someone/lgg-unet", revision=SHA)
    assert resolve_entry(entry) == tiny_artifact
    assert resolve_entry(entry, local_files_only=True) == tiny_artifact
    assert calls == [("someone/lgg-unet", SHA, False), ("someone/lgg-unet", SHA, True)]


def test_resolve_hub_entry_offline_without_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Offline with an empty cache: the real snapshot_download, which never reaches the network here.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    entry = CatalogEntry("hub", repo_id="someone/lgg-unet", revision=SHA)
    with pytest.raises(CatalogError, match=f"'hub'.*someone/lgg-unet@{SHA} is not in the Hugging Face cache"):
        resolve_entry(entry, local_files_only=True)


def test_default_catalog_lists_segmenters_best_first() -> None:
    # models.toml promises "best first": Compare preselects its first four segmenters.
    records, problem = resolve_models(DEFAULT_CATALOG)
    assert problem is None
    dice = [read_eval(r)[0].summary["variants"]["raw"]["patient_dice"] for r in records if r.task == "segment"]
    assert dice == sorted(dice, reverse=True)


def test_artifact_checks_are_remembered_until_a_file_they_read_changes(tiny_artifact: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def edit_config(**changes) -> None:
        config = json.loads((tiny_artifact / "config.json").read_text())
        (tiny_artifact / "config.json").write_text(json.dumps(config | changes))

    edit_config(task="segment")
    catalog = _write(tiny_artifact.parents[1], '[[model]]\nname = "tiny"\npath = "artifacts/tiny"\n')
    first = resolve_models(catalog)[0][0]
    assert first.ok and first.has_weights
    checked = []
    real = artifacts.inspect_artifact
    monkeypatch.setattr(artifacts, "inspect_artifact", lambda folder: checked.append(folder) or real(folder))
    again = resolve_models(catalog)[0][0]
    assert again == first and again.config == first.config and not checked

    edit_config(arch_kwargs={"base_width": 8})
    widened = resolve_models(catalog)[0][0]
    assert not widened.ok and "does not match" in widened.problem and len(checked) == 1
    assert resolve_models(catalog)[0][0] == widened and len(checked) == 1

    (tiny_artifact / "model.safetensors").unlink()
    assert resolve_models(catalog)[0][0].has_weights is False and len(checked) == 2
