"""The model catalog: which models the app shows, as local artifact folders and/or Hub repos at a revision.

The catalog is a TOML file (default ``models.toml`` at the repository root, or ``$LGG_CATALOG``)::

    [[model]]
    name = "unet-mini"
    path = "artifacts/unet-mini"          # relative to the catalog file

    [[model]]
    name = "unet-resnet34-gpu"
    repo_id = "someone/lgg-unet-resnet34"
    revision = "main"                     # pin a commit hash for reproducibility
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

CATALOG_ENV = "LGG_CATALOG"
DEFAULT_CATALOG = Path(__file__).resolve().parents[1] / "models.toml"


class CatalogError(ValueError):
    """A catalog file or one of its entries is unusable; the message says which and why."""


@dataclass(frozen=True)
class CatalogEntry:
    """One model the app can show: a local ``path`` or a Hub ``repo_id`` (with ``revision``)."""

    name: str
    path: Path | None = None
    repo_id: str | None = None
    revision: str | None = None


def catalog_path(path: str | Path | None = None) -> Path:
    """The catalog file to use: the argument, else ``$LGG_CATALOG``, else the repository's ``models.toml``."""
    return Path(path or os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG)


def load_catalog(path: str | Path | None = None) -> list[CatalogEntry]:
    """Parse and validate the catalog; local paths are made absolute relative to the catalog file."""
    path = catalog_path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise CatalogError(f"model catalog {path} not found (set ${CATALOG_ENV} or create it)") from err
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise CatalogError(f"model catalog {path} is unreadable: {err}") from err
    entries, seen = [], set()
    for i, item in enumerate(raw.get("model", [])):
        where = f"{path}: [[model]] #{i + 1}"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise CatalogError(f"{where} needs a name")
        if ("path" in item) == ("repo_id" in item):
            raise CatalogError(f"{where} ({item['name']}) needs exactly one of path or repo_id")
        if item["name"] in seen:
            raise CatalogError(f"{where}: duplicate name {item['name']!r}")
        seen.add(item["name"])
        local = (path.parent / item["path"]).resolve() if "path" in item else None
        entries.append(CatalogEntry(item["name"], local, item.get("repo_id"), item.get("revision")))
    return entries
