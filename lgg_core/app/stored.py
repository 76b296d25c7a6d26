"""Tables the Leaderboard computes (bootstraps, paired tests), kept on disk under a digest of what they are computed
from, so a fresh server process reads them instead of computing them again.

A table is stored under ``$LGG_CACHE_DIR/tables/`` as Parquet (no pickle: the folder is read back by the app),
named by the digest of its inputs' content and of the code that computes it (``lgg_core/evaluation``, numpy, scipy),
so a re-evaluated model or a changed statistic makes a new name and the old file is never read again. The folder
holds at most :data:`MAX_FILES` tables, the least recently written removed first. A visitor's own entry never comes
here: the page computes whatever includes it in that session only.
"""
from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from lgg_core.data.cache import default_cache_dir

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

MAX_FILES = 512
_LIBRARIES = ("numpy", "scipy", "pandas")


@functools.cache
def code_version() -> str:
    """A digest of the evaluation code and the numerical libraries' versions: what a stored table depends on
    besides its inputs."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1] / "evaluation"
    for path in sorted(package.glob("*.py")):
        digest.update(f"{path.name}\0".encode() + path.read_bytes())
    for name in _LIBRARIES:
        digest.update(f"{name}=={metadata.version(name)}\0".encode())
    return digest.hexdigest()


def content_digest(what: str, inputs: Sequence[pd.DataFrame | str]) -> str:
    """A digest of the computation's name and of every input's content (a table's columns, types and values)."""
    digest = hashlib.sha256(f"{what}\0{code_version()}\0".encode())
    for value in inputs:
        if isinstance(value, pd.DataFrame):
            digest.update(f"frame\0{list(value.columns)}\0{list(map(str, value.dtypes))}\0".encode())
            digest.update(pd.util.hash_pandas_object(value, index=False).to_numpy().tobytes())
        else:
            digest.update(f"text\0{value}\0".encode())
    return digest.hexdigest()


def tables_dir() -> Path:
    return default_cache_dir() / "tables"


def stored_table(what: str, inputs: Sequence[pd.DataFrame | str], compute: Callable[[], pd.DataFrame]
                 ) -> pd.DataFrame:
    """``compute()``, read from disk when a table of ``what`` was stored for the same inputs and code.

    Args:
        what: a name for the computation (part of the file name, so files say what they hold).
        inputs: everything ``compute`` reads, as tables or text.
        compute: makes the table; its index is not kept.
    """
    path = tables_dir() / f"{what}-{content_digest(what, inputs)[:32]}.parquet"
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError):  # damaged (pyarrow's errors derive from these): computed again
        path.unlink(missing_ok=True)
    table = compute().reset_index(drop=True)
    try:
        _write(path, table)
    except OSError:
        pass  # a read-only or full cache folder costs speed only
    return table


def fill(page: str = "pages/leaderboard.py") -> list[str]:
    """Render ``page`` (relative to the working directory) once per tab, so that the tables each tab stores are on
    disk before the first visitor of a fresh server opens it: the Space's image build runs this.

    Returns:
        The labels of the tabs rendered.

    Raises:
        RuntimeError: the page raised in one of its tabs.
    """
    labels = [tab.label for tab in _render(page, None).tabs]
    for label in labels[1:]:
        _render(page, label)
    return labels


def _render(page: str, section: str | None) -> AppTest:
    """One run of ``page`` in Streamlit's AppTest, with the tab ``section`` open (None: the first)."""
    from streamlit.testing.v1 import AppTest

    from lgg_core.app.state import SECTION_PARAM

    at = AppTest.from_file(str(Path(page).resolve()), default_timeout=600)  # else relative to this file
    if section is not None:
        at.query_params[SECTION_PARAM] = section
    at.run()
    if at.exception:
        raise RuntimeError(f"{page}, tab {section or 'first'}: {[e.value for e in at.exception]}")
    return at


def _write(path: Path, table: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own per write: two sessions of one server may store the same table at once.
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    try:
        table.to_parquet(tmp, index=False)
        os.replace(tmp, path)  # readers see the whole file or none
    finally:
        tmp.unlink(missing_ok=True)
    _prune(path.parent)


def _prune(folder: Path) -> None:
    for old in sorted(folder.glob("*.parquet"), key=_written)[:-MAX_FILES]:
        old.unlink(missing_ok=True)


def _written(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by another process's pruning
        return 0.0
