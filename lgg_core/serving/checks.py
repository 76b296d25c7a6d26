"""The checks that list a catalog entry as usable or not, remembered per host so that listing needs no torch.

:func:`~lgg_core.serving.artifacts.inspect_artifact` builds each model on the meta device to compare it with its
weights' header, which imports torch and every model library: seconds on a cold server, for pages such as the
Leaderboard that run no model. Its verdict depends only on the files it reads (each config.json, the weights'
header and size, those of a composite's parts) and on the code and libraries that build the models, so it is kept in
``$LGG_CACHE_DIR/artifact-checks`` and reused while all of those are unchanged. Loading a model checks everything
again, so a stale verdict could only list an entry wrongly, never load an unsafe one.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from huggingface_hub.constants import CONFIG_NAME, SAFETENSORS_SINGLE_FILE

from lgg_core.data.cache import default_cache_dir

# The checks refuse larger weights headers and configs whatever they hold, so no more is read of them.
MAX_HEADER_BYTES = 100_000_000
MAX_CONFIG_BYTES = 1_000_000
# Libraries whose version can change what a registry builder makes, hence which weights match it.
MODEL_LIBRARIES = ("torch", "torchvision", "timm", "segmentation-models-pytorch", "safetensors", "huggingface-hub")
_CHECKING_CODE = ("models/*.py", "serving/artifacts.py", "serving/checks.py")


@cache
def _code_version() -> str:
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(p for pattern in _CHECKING_CODE for p in package.glob(pattern)):
        digest.update(f"{path.relative_to(package)}\0".encode() + path.read_bytes())
    for name in MODEL_LIBRARIES:
        try:
            digest.update(f"{name}=={metadata.version(name)}\0".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name} missing\0".encode())
    return digest.hexdigest()


def _digest(path: Path) -> str | None:
    """What the checks read of a file: a config's bytes, a weights file's header and size (None: no such file)."""
    if not path.is_file():
        return None
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if path.name != SAFETENSORS_SINGLE_FILE:
            return f"{size}:{hashlib.sha256(f.read(MAX_CONFIG_BYTES + 1)).hexdigest()}"
        head = f.read(8)
        length = int.from_bytes(head, "little")
        if len(head) == 8 and length <= min(size - 8, MAX_HEADER_BYTES):
            head += f.read(length)
        return f"{size}:{hashlib.sha256(head).hexdigest()}"


def _digests(files: list[str]) -> dict[str, str | None]:
    return {name: _digest(Path(name)) for name in files}


def _inspect(folder: Path) -> dict[str, Any]:
    """Run the checks (this imports torch): the verdict, and what the files it depends on held before it ran."""
    from lgg_core.models import ArtifactError, read_config
    from lgg_core.serving.artifacts import inspect_artifact, part_dirs

    folders = [folder]
    try:
        config = read_config(folder)
        if "parts" in config:
            folders += part_dirs(folder, config)
    except ArtifactError:
        pass  # a config or parts list the checks refuse: the verdict depends on the folder's own files only
    # Read before the checks, so that a file changed while they run makes the next listing check again.
    files = _digests([str(f / name) for f in folders for name in (CONFIG_NAME, SAFETENSORS_SINGLE_FILE)])
    try:
        config, has_weights = inspect_artifact(folder)
        verdict = {"config": config, "has_weights": has_weights, "problem": None}
    except ArtifactError as err:
        verdict = {"config": None, "has_weights": False, "problem": str(err)}
    return {**verdict, "code": _code_version(), "files": files}


def _verdict_file(folder: Path) -> Path:
    return default_cache_dir() / "artifact-checks" / f"{hashlib.sha256(str(folder).encode()).hexdigest()}.json"


def _remembered(path: Path) -> tuple[dict[str, Any] | None, bool, str | None] | None:
    try:
        verdict = json.loads(path.read_text())
        if verdict["code"] == _code_version() and verdict["files"] == _digests(list(verdict["files"])):
            return verdict["config"], verdict["has_weights"], verdict["problem"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or unreadable: check again
    return None


def _remember(path: Path, verdict: dict[str, Any]) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
            tmp = Path(f.name)
            json.dump(verdict, f)
        os.replace(tmp, path)  # whole files only: another thread or server may be reading it
    except OSError:
        if tmp is not None:
            tmp.unlink(missing_ok=True)  # a full or read-only cache: the next listing checks again


def checked_artifact(folder: Path) -> tuple[dict[str, Any] | None, bool, str | None]:
    """``(config, whether its weights are all present, None)`` of an artifact that passes the checks of
    :func:`~lgg_core.serving.artifacts.inspect_artifact`, else ``(None, False, why not)``.

    Raises:
        OSError: a file cannot be read (not remembered: it may be passing).
    """
    folder = Path(folder).resolve()
    path = _verdict_file(folder)
    if (remembered := _remembered(path)) is not None:
        return remembered
    verdict = _inspect(folder)
    _remember(path, verdict)
    return verdict["config"], verdict["has_weights"], verdict["problem"]
