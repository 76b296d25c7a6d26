"""The repository deploys as a Hugging Face Docker Space: README front matter, Dockerfile, Streamlit config."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from huggingface_hub import metadata_load

from lgg_core.serving.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[2]


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            pairs.append((instruction.upper(), args.strip()))
    return pairs


def _instructions(name: str) -> list[str]:
    return [args for instruction, args in _dockerfile() if instruction == name]


def _requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[name.lower()] = version
    return pins


def test_readme_front_matter() -> None:
    meta = metadata_load(ROOT / "README.md")
    assert meta is not None, "README.md has no YAML front matter"
    for key in ("title", "emoji", "colorFrom", "colorTo", "short_description", "license"):
        assert isinstance(meta.get(key), str) and meta[key], f"front matter needs {key}"
    assert meta["sdk"] == "docker" and meta["app_port"] == 8501
    # The Hub rejects longer short descriptions.
    assert len(meta["short_description"]) <= 60
    assert isinstance(meta["models"], list)
    # The Space page links the Hub models the app pulls.
    hub_models = {e.repo_id for e in load_catalog() if e.repo_id}
    assert hub_models <= set(meta["models"])


def test_dockerfile_runs_the_browser_tests_command() -> None:
    spec = importlib.util.spec_from_file_location("e2e_server", ROOT / "tests" / "e2e" / "server.py")
    server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(server)
    (cmd,) = _instructions("CMD")
    assert json.loads(cmd) == server.streamlit_command(8501)
    assert _instructions("EXPOSE") == ["8501"]


def test_dockerfile_layout() -> None:
    (base,) = _instructions("FROM")
    assert re.fullmatch(r"python:3\.\d+-slim", base)
    runs = " ".join(_instructions("RUN"))
    assert "--uid 1000" in runs and _instructions("USER") == ["user"]
    assert "pip install --user -r requirements.txt" in runs
    assert "export-onnx --catalog" in runs
    (healthcheck,) = _instructions("HEALTHCHECK")
    assert "http://localhost:8501/_stcore/health" in healthcheck
    assert any(args.split()[-1] == "." for args in _instructions("COPY"))


def test_dockerfile_cpu_torch_matches_requirements() -> None:
    pins = _requirement_pins()
    (cpu_install,) = [r for r in _instructions("RUN") if "download.pytorch.org/whl/cpu" in r]
    for package in ("torch", "torchvision"):
        assert f"{package}=={pins[package]}" in cpu_install.split()


def test_dockerignore() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "runs", "artifacts/**/model.onnx"} <= ignored
    # The shipped models and the catalog go into the image.
    assert not any(p in ignored for p in ("artifacts", "artifacts/", "models.toml", "*.safetensors"))


def test_streamlit_config_suits_the_space() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["enableXsrfProtection"] is False and server["headless"] is True
    assert isinstance(server["maxUploadSize"], int) and server["maxUploadSize"] >= 1
    assert config["browser"]["gatherUsageStats"] is False


@pytest.mark.parametrize("path", ["streamlit_app.py", "requirements.txt", "models.toml"])
def test_files_the_image_needs_exist(path: str) -> None:
    assert (ROOT / path).is_file()


def test_the_images_warm_up_steps_run_and_fill_the_cache(app_env: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The image cannot be built here, so its `python -c` steps (artifact verdicts, decoded demo set, the
    Leaderboard's stored tables) run as they would in it, into a cache of their own."""
    monkeypatch.setenv("LGG_CACHE_DIR", str(tmp_path))
    steps = [args.split(" ", 2)[2] for args in _instructions("RUN") if args.startswith("python -c ")]
    assert len(steps) == 3
    for step in steps:
        code = step.strip().strip('"')
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{code}\n{done.stderr[-2000:]}"
    assert list((tmp_path / "artifact-checks").glob("*.json"))
    # Each tab's tables: the first view's forest plot and the pair tests of a tab that is not drawn first.
    stored = {path.name.rsplit("-", 1)[0] for path in (tmp_path / "tables").glob("*.parquet")}
    assert {"against-best", "pairs"} <= stored, stored
