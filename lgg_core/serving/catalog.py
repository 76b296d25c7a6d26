"""The model catalog: which models the app shows, as local artifact folders and/or Hub repos at a revision.

The catalog is a TOML file (default ``models.toml`` at the repository root, or ``$LGG_CATALOG``)::

    [[model]]
    name = "unet-mini"
    path = "artifacts/unet-mini"          # relative to the catalog file

    [[model]]
    name = "unet-resnet34-gpu"
    repo_id = "someone/lgg-unet-resnet34"
    revision = "main"                     # pin a commit hash for reproducibility

    [[crossval]]
    name = "unet-resnet50-transfer"
    path = "artifacts/cv/unet-resnet50-transfer"   # train/cv.sh's run folder: fold-*/ artifacts

:func:`resolve_entry` turns an entry into a local artifact folder, pulling Hub entries into the HF cache.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from lgg_core.serving.hub import HubError, check_repo_id, pull

CATALOG_ENV = "LGG_CATALOG"
_KEYS = {"name", "path", "repo_id", "revision"}
DEFAULT_CATALOG = Path(__file__).resolve().parents[2] / "models.toml"


class CatalogError(ValueError):
    """A catalog file or one of its entries is unusable; the message says which and why."""


@dataclass(frozen=True)
class CatalogEntry:
    """One model the app can show: a local ``path`` or a Hub ``repo_id`` (with ``revision``)."""

    name: str
    path: Path | None = None
    repo_id: str | None = None
    revision: str | None = None


def crossval_command(folder: Path) -> str:
    """The ``train/cv.sh`` call that writes run ``folder`` (named ``CONFIG``, ``CONFIG-eEPOCHS``, or ``FROM+eEPOCHS``
    for a run continued from run ``FROM``; a config in a folder of configs, such as ``v2/unet``, keeps its folder)."""
    # cv.sh writes every run under artifacts/cv/; the catalog's absolute path would name this server's disk
    parts = folder.parts
    under_cv = parts[len(parts) - parts[::-1].index("cv"):] if "cv" in parts[:-1] else parts[-1:]
    name = "/".join(under_cv)
    if continued := re.fullmatch(r"(.+)\+e(\d+)", name):
        config = crossval_command(Path("artifacts/cv") / continued[1]).split()[1]
        return f"train/cv.sh {config} {continued[2]} artifacts/cv/{continued[1]}"
    match = re.fullmatch(r"(.+?)(?:-e(\d+))?", name)
    return " ".join(filter(None, ["train/cv.sh", *match.groups()]))


def rebuild_command(path: Path) -> str:
    """The command that trains the artifact at ``path`` again (with ``LGG_DATA_DIR`` set): ``train/zoo.sh <name>``
    for a zoo model (``artifacts/<name>``), or for a cross-validation fold (``artifacts/cv/<run>/fold-F``) the
    :func:`crossval_command` of its run, which trains every fold."""
    path = Path(path)
    if re.fullmatch(r"fold-\d+", path.name) and "cv" in path.parts[:-2]:
        return crossval_command(path.parent)
    return f"train/zoo.sh {path.name}"


def missing_weights_message(path: Path) -> str:
    """Why an artifact cannot run, and the commands that bring its weights."""
    return (f"{path.name} ships its evaluation record only: its weights are not bundled (size budget). Train them "
            f"with `{rebuild_command(path)}` (LGG_DATA_DIR set), or pull a published copy with `lgg pull`.")


def catalog_path(path: str | Path | None = None) -> Path:
    """The catalog file to use: the argument, else ``$LGG_CATALOG``, else the repository's ``models.toml``."""
    return Path(path or os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG)


@dataclass(frozen=True)
class CrossvalEntry:
    """One model's cross-validation run: a folder of ``fold-*`` artifacts (``train/cv.sh``)."""

    name: str
    path: Path


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise CatalogError(f"model catalog {path} not found (set ${CATALOG_ENV} or create it)") from err
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise CatalogError(f"model catalog {path} is unreadable: {err}") from err


def load_catalog(path: str | Path | None = None) -> list[CatalogEntry]:
    """Parse and validate the catalog; local paths are made absolute relative to the catalog file."""
    path = catalog_path(path)
    raw = _read(path)
    entries, seen = [], set()
    for i, item in enumerate(raw.get("model", [])):
        where = f"{path}: [[model]] #{i + 1}"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise CatalogError(f"{where} needs a name")
        # Before the path/repo_id check, so a typo ("repo = ...") is reported as such.
        unknown = sorted(set(item) - _KEYS)
        if unknown:
            raise CatalogError(f"{where} ({item['name']}): unknown keys {', '.join(unknown)}")
        if ("path" in item) == ("repo_id" in item):
            raise CatalogError(f"{where} ({item['name']}) needs exactly one of path or repo_id")
        if "revision" in item and "repo_id" not in item:
            raise CatalogError(f"{where} ({item['name']}): revision only applies to repo_id entries")
        if "repo_id" in item:
            _check_repo_id(item["repo_id"], f"{where} ({item['name']})")
        if item["name"] in seen:
            raise CatalogError(f"{where}: duplicate name {item['name']!r}")
        seen.add(item["name"])
        local = (path.parent / item["path"]).resolve() if "path" in item else None
        entries.append(CatalogEntry(item["name"], local, item.get("repo_id"), item.get("revision")))
    return entries


def load_crossval(path: str | Path | None = None) -> list[CrossvalEntry]:
    """The catalog's ``[[crossval]]`` runs, paths made absolute relative to the catalog file.

    Kept apart from :func:`load_catalog` so that a bad run entry never hides the models.
    """
    path = catalog_path(path)
    entries, seen = [], set()
    for i, item in enumerate(_read(path).get("crossval", [])):
        where = f"{path}: [[crossval]] #{i + 1}"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(
                item.get("path"), str):
            raise CatalogError(f"{where} needs a name and a path")
        if unknown := sorted(set(item) - {"name", "path"}):
            raise CatalogError(f"{where} ({item['name']}): unknown keys {', '.join(unknown)}")
        if item["name"] in seen:
            raise CatalogError(f"{where}: duplicate name {item['name']!r}")
        seen.add(item["name"])
        entries.append(CrossvalEntry(item["name"], (path.parent / item["path"]).resolve()))
    return entries


def _check_repo_id(repo_id: object, where: str) -> None:
    if not isinstance(repo_id, str):
        raise CatalogError(f"{where}: repo_id must be a string")
    try:
        check_repo_id(repo_id)
    except HubError as err:
        raise CatalogError(f"{where}: {err}") from None


def resolve_entry(entry: CatalogEntry, *, local_files_only: bool = False) -> Path:
    """The artifact folder of ``entry``: its local path, or its Hub repo pulled at its revision into the HF cache.

    Args:
        entry: A catalog entry.
        local_files_only: Never contact the Hub; use the cached snapshot (also implied by ``HF_HUB_OFFLINE=1``).

    Raises:
        CatalogError: The local folder is not an artifact, or the Hub entry cannot be pulled (message says why).
    """
    if entry.path is not None:
        # Weights may be absent: an evaluation record without them is still shown (see records.weights_problem).
        if not (entry.path / "config.json").is_file():
            if not entry.path.is_dir():
                raise CatalogError(f"catalog model {entry.name!r}: artifact folder {entry.path} does not exist "
                                   "(not trained yet?)")
            raise CatalogError(f"catalog model {entry.name!r}: {entry.path} lacks config.json")
        return entry.path
    try:
        return pull(entry.repo_id, entry.revision, local_files_only=local_files_only)
    except HubError as err:
        raise CatalogError(f"catalog model {entry.name!r}: {err}") from None
