"""Push artifact folders to the Hugging Face Hub and pull them back, pinned to a revision, into the HF cache.

Tokens follow huggingface_hub conventions: an explicit ``token`` argument, else ``$HF_TOKEN``, else the one saved
by ``hf auth login``. Tokens are never printed or put in error messages.

Example::

    commit = push("artifacts/unet-mini", "me/lgg-unet-mini")    # -> PushResult(repo_id, revision, commit_url)
    folder = pull("me/lgg-unet-mini", revision=commit.revision)  # a folder in the HF cache
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
from huggingface_hub.errors import HFValidationError, HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from lgg_core.serving.artifact_config import ArtifactConfig

# What a model repo holds: weights, config, card, split and training log, evaluation tables.
UPLOAD_PATTERNS = ["config.json", "model.safetensors", "README.md", "split.json", "epochs.csv", "eval/*.json",
                   "eval/*.csv", "eval/predictions.npz"]
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"  # lgg export-onnx's int8 export, kept only when it passed the held-out check
# Keys a card must carry so the Hub can index it (model-index is added once the artifact is evaluated).
REQUIRED_CARD_KEYS = ("library_name", "license", "datasets", "tags")


class HubError(ValueError):
    """A push or pull that cannot succeed; the message says why and what to do.

    A ``ValueError`` so the ``lgg`` command line reports it as ``error: ...`` like other bad input.
    """


@dataclass(frozen=True)
class PushResult:
    """Where a push landed: the repo, the commit hash (pin it in the catalog) and its URL."""

    repo_id: str
    revision: str
    commit_url: str


def check_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it is a valid ``owner/name`` model id, else raise :class:`HubError`."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise HubError(f"invalid Hub repo id {repo_id!r}: {err}") from None
    if repo_id.count("/") != 1:
        raise HubError(f"invalid Hub repo id {repo_id!r}: use the form owner/name")
    return repo_id


def _check_artifact(folder: Path) -> None:
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).is_file():
            raise HubError(f"{folder} is not a model artifact: {name} is missing")


def _check_card(folder: Path) -> None:
    card_path = folder / "README.md"
    if not card_path.is_file():
        raise HubError(f"{folder} has no README.md model card (`lgg evaluate {folder}` renders one)")
    from huggingface_hub import ModelCard  # with HfApi, ~0.4 s: the catalog imports this module

    data = ModelCard.load(card_path).data
    missing = [key for key in REQUIRED_CARD_KEYS if not getattr(data, key, None)]
    if missing:
        raise HubError(f"the model card {card_path} lacks {', '.join(missing)} in its metadata")


def push(
    artifact_dir: str | Path,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    include_onnx: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
) -> PushResult:
    """Create the model repo if needed and upload an artifact folder as one commit.

    The folder's README.md is the card (``lgg evaluate`` renders it with the model-index eval results); it must
    carry library_name, license, datasets and tags.

    Args:
        artifact_dir: Folder with config.json, model.safetensors and optionally README.md, split.json,
            epochs.csv and eval/.
        repo_id: ``owner/name`` on the Hub.
        revision: Branch to commit to (default: main).
        private: Create the repo private (ignored when it exists).
        include_onnx: Also upload model.onnx, and model.int8.onnx where ``lgg export-onnx`` kept one (off by
            default: they are larger than the weights and can be re-exported from them with ``lgg export-onnx``).
        commit_message: Defaults to "Upload <arch>".
        token: Defaults to ``$HF_TOKEN`` or the ``hf auth login`` token.

    Returns:
        The repo, commit hash and commit URL.

    Raises:
        HubError: Bad repo id or folder, no token, or the Hub refused the request.
    """
    folder = Path(artifact_dir)
    check_repo_id(repo_id)
    _check_artifact(folder)
    if include_onnx and not (folder / ONNX_FILE).is_file():
        raise HubError(f"{folder} has no {ONNX_FILE}: run `lgg export-onnx {folder}` first")
    _check_card(folder)
    if (token or huggingface_hub.get_token()) is None:
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (it needs write access)")
    try:
        arch = ArtifactConfig.parse(json.loads((folder / "config.json").read_text())).arch
    except ValueError as err:  # JSON errors are ValueErrors too
        raise HubError(f"{folder}/config.json: {err}") from None
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=folder, repo_type="model", revision=revision,
            allow_patterns=UPLOAD_PATTERNS + ([ONNX_FILE, INT8_FILE] if include_onnx else []),
            commit_message=commit_message or f"Upload {arch}",
        )
    except HfHubHTTPError as err:
        raise HubError(f"pushing to {repo_id} failed: {err}") from None
    return PushResult(repo_id, info.oid, info.commit_url)


def pull(
    repo_id: str,
    revision: str | None = None,
    *,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | None = None,
) -> Path:
    """Download a model repo at ``revision`` into the standard HF cache (or reuse it) and return its folder.

    Offline (``HF_HUB_OFFLINE=1`` or ``local_files_only``) the cached snapshot is used. ONNX files in the repo
    come along so CPU hosts can serve them.

    Raises:
        HubError: Bad repo id, unknown repo or revision, or offline without a cached copy.
    """
    check_repo_id(repo_id)
    where = f"{repo_id}@{revision or 'main'}"
    try:
        folder = huggingface_hub.snapshot_download(
            repo_id, repo_type="model", revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
            allow_patterns=UPLOAD_PATTERNS + [ONNX_FILE], token=token,
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise HubError(
            f"{where} is not in the Hugging Face cache and the Hub cannot be reached (offline?): pull it once "
            "while online (`lgg pull`), or copy the cache ($HF_HOME/hub) onto this machine"
        ) from None
    except HfHubHTTPError as err:
        raise HubError(f"cannot download {where}: {err}") from None
    folder = Path(folder)
    _check_artifact(folder)
    return folder
