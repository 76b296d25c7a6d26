"""A visitor's segmenter, given by reference, opened safely: an ONNX graph, a zipped ``lgg_core`` artifact, or a Hub
repo (only where the server allows visitors to make it download).

Everything here comes from a stranger. An ONNX graph passes :class:`~lgg_core.serving.onnx_backend.ForeignOnnxSegmenter`'s
checks (no custom operators, no external data, one N x 3 x H x W input); an artifact's archive is judged by its table
of contents before anything is inflated, only its ``config.json`` and ``model.safetensors`` are written, to a
temporary folder that is gone once the model is in memory, and they pass every check of
:func:`~lgg_core.serving.artifacts.load_artifact` (safetensors only, a header that matches the architecture). Files
are bounded by :data:`MAX_MODEL_BYTES`.

Example::

    segmenter = open_model("mine.onnx", Path("mine.onnx").read_bytes())
    probs = segmenter.predict(images)  # (N, 256, 256) tumor probabilities
"""
from __future__ import annotations

import io
import os
import re
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.constants import CONFIG_NAME, SAFETENSORS_SINGLE_FILE

from lgg_core.data.external import checked_members, read_member
from lgg_core.models import ArtifactError, check_config
from lgg_core.serving.artifact_config import ArtifactConfig
from lgg_core.serving.artifacts import read_config
from lgg_core.serving.hub import check_repo_id
from lgg_core.serving.onnx_backend import ForeignOnnxSegmenter, OnnxBackendError, TorchPredictor

MAX_MODEL_BYTES = 200 << 20  # the zoo's largest weights (unet-resnet50) are ~100 MB
MAX_ARCHIVE_FILES = 256  # an artifact folder holds a dozen; its eval/ tables may come along and are ignored
SUFFIXES = (".onnx", ".zip")
HUB_ENV = "LGG_VISITOR_HUB"  # "1": visitors may name a Hub repo, which this server then downloads
ARTIFACT_FILES = (CONFIG_NAME, SAFETENSORS_SINGLE_FILE)

Segmenter = ForeignOnnxSegmenter | TorchPredictor


class ForeignModelError(ValueError):
    """A visitor's model that will not be run here; the message says why, for the visitor."""


def hub_enabled() -> bool:
    """Whether this server downloads Hub repos that visitors name (``$LGG_VISITOR_HUB=1``; off by default, since a
    visitor's request should not make the server reach the network unless its operator wants that)."""
    return os.environ.get(HUB_ENV) == "1"


def _file_name(name: str) -> str:
    """A harmless file name that keeps the visitor's stem (messages name it)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", PurePosixPath(name.replace("\\", "/")).name)[-80:] or "model"


def open_model(name: str, content: bytes) -> Segmenter:
    """A segmenter from an uploaded ``.onnx`` graph or ``.zip`` of an ``lgg_core`` artifact folder.

    Raises:
        ForeignModelError: the file is empty, too large, of another kind, or fails the checks of its kind.
    """
    if not content:
        raise ForeignModelError(f"{name} is empty (0 bytes)")
    if len(content) > MAX_MODEL_BYTES:
        raise ForeignModelError(f"{name} is {len(content) >> 20} MiB; at most {MAX_MODEL_BYTES >> 20} MiB are accepted")
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise ForeignModelError(f"{name}: expected an ONNX graph (.onnx) or a .zip of an lgg_core artifact folder "
                                "(config.json and model.safetensors)")
    with tempfile.TemporaryDirectory(prefix="lgg-visitor-model-") as tmp:
        if suffix == ".onnx":
            path = Path(tmp) / _file_name(name)
            path.write_bytes(content)
            try:
                return ForeignOnnxSegmenter(path)  # ONNX Runtime holds the graph in memory: the file may go
            except OnnxBackendError as err:
                raise ForeignModelError(str(err)) from None
        _extract_artifact(name, content, Path(tmp))
        return artifact_segmenter(Path(tmp), name)


def _extract_artifact(name: str, content: bytes, folder: Path) -> None:
    """Write the archive's config.json and model.safetensors (one of each, side by side) into ``folder``."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        raise ForeignModelError(f"{name} is not a .zip archive (or it is damaged)") from None
    with archive:
        try:
            infos = checked_members(archive, MAX_ARCHIVE_FILES, lambda _: MAX_MODEL_BYTES, MAX_MODEL_BYTES + (1 << 20))
        except ValueError as err:
            raise ForeignModelError(f"{name}: {err}") from None
        found = {f: [i for i in infos if PurePosixPath(i.filename).name == f] for f in ARTIFACT_FILES}
        if missing := [f for f, hits in found.items() if not hits]:
            raise ForeignModelError(f"{name} is not an lgg_core artifact: it holds no {' and no '.join(missing)}")
        if any(len(hits) > 1 for hits in found.values()):
            raise ForeignModelError(f"{name} holds more than one artifact: zip one folder")
        config, weights = (found[f][0] for f in ARTIFACT_FILES)
        if PurePosixPath(config.filename).parent != PurePosixPath(weights.filename).parent:
            raise ForeignModelError(f"{name}: config.json and model.safetensors are in different folders")
        for info in (config, weights):
            try:
                (folder / PurePosixPath(info.filename).name).write_bytes(read_member(archive, info))
            except ValueError as err:
                raise ForeignModelError(f"{name}: {err}") from None


def artifact_segmenter(folder: Path, label: str) -> TorchPredictor:
    """A PyTorch predictor (CPU) for the artifact in ``folder``, after every check loading makes.

    Raises:
        ForeignModelError: not a segmenter, assembled from other artifacts, or refused by the artifact checks.
    """
    try:
        config = read_config(folder)
        check_config(config)
        spec = ArtifactConfig.parse(config)
        if spec.parts is not None:
            raise ForeignModelError(f"{label} is assembled from other artifacts (an ensemble or gated pipeline), "
                                    "whose weights are not in it: bring one model with its own weights")
        if spec.task != "segment":
            raise ForeignModelError(f"{label} is not a segmenter (its task is {spec.task!r})")
        return TorchPredictor(folder, "cpu")
    except (ArtifactError, FileNotFoundError) as err:
        # The message names the temporary folder, which means nothing to the visitor.
        text = str(err).replace(f"{folder}/", "").replace(str(folder), "the artifact")
        raise ForeignModelError(f"{label} is refused: {text}") from None


def pull_model(repo_id: str, revision: str | None = None, api: HfApi | None = None) -> TorchPredictor:
    """A segmenter from an ``lgg_core`` artifact on the Hub, downloaded into a temporary folder that is gone once it is
    loaded (never into the server's Hub cache).

    Raises:
        ForeignModelError: downloads are off on this server (:func:`hub_enabled`), a bad id, a repo that cannot be
            reached or is not an artifact, weights larger than :data:`MAX_MODEL_BYTES`, or refused by the checks.
    """
    if not hub_enabled():
        raise ForeignModelError(f"this server does not download models for visitors (set {HUB_ENV}=1 to allow it): "
                                "zip your artifact folder and upload it, or run `lgg pull` and `lgg evaluate` yourself")
    try:
        check_repo_id(repo_id)
    except ValueError as err:
        raise ForeignModelError(str(err)) from None
    where = f"{repo_id}@{revision or 'main'}"
    try:
        info = (api or HfApi()).model_info(repo_id, revision=revision, files_metadata=True)
        sizes = {s.rfilename: s.size for s in info.siblings or []}
        if missing := [f for f in ARTIFACT_FILES if f not in sizes]:
            raise ForeignModelError(f"{where} is not an lgg_core artifact: it has no {' and no '.join(missing)}")
        if (size := sum(sizes[f] or 0 for f in ARTIFACT_FILES)) > MAX_MODEL_BYTES:
            raise ForeignModelError(f"{where} is {size >> 20} MiB; at most {MAX_MODEL_BYTES >> 20} MiB are accepted")
        with tempfile.TemporaryDirectory(prefix="lgg-visitor-hub-") as tmp:
            for file in ARTIFACT_FILES:  # pinned to the commit whose sizes were checked
                hf_hub_download(repo_id, file, revision=info.sha, local_dir=tmp)
            return artifact_segmenter(Path(tmp), where)
    except ForeignModelError:
        raise
    except Exception as err:  # the Hub client and the network raise assorted types
        raise ForeignModelError(f"cannot download {where} ({type(err).__name__}): check the id and the revision") \
            from None
