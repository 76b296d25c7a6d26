"""Shared fixtures: a real sample built from the repository's own slices, a tiny synthetic dataset, an isolated cache."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from e2e.zoo import build_tiny_zoo

from lgg_core.data.cache import LGGData, load_dataset

REPO = Path(__file__).resolve().parents[1]
# Real patients inside the repository: the app's demo volumes plus the tests' own (see tests/fixtures/README.md).
SAMPLE_SOURCES = (REPO / "demo/kaggle_3m", REPO / "tests/fixtures/kaggle_3m")


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory):
    """Keep tests off the user's ~/.cache and independent of a caller's LGG_DATA_DIR."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LGG_CACHE_DIR", str(tmp_path_factory.mktemp("lgg-cache")))
        patch.delenv("LGG_DATA_DIR", raising=False)
        yield


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``kaggle_3m`` folder of 5 real patients from 5 institutions (114 slices, 43 with tumor).

    A copy, so that no test can change the files the app and the suite ship with.
    """
    root = tmp_path_factory.mktemp("lgg-sample") / "kaggle_3m"
    header, rows = None, []
    for source in SAMPLE_SOURCES:
        for folder in sorted(p for p in source.iterdir() if p.is_dir()):
            shutil.copytree(folder, root / folder.name)
        first, *rest = (source / "data.csv").read_text().splitlines(keepends=True)
        assert header in (None, first), f"{source}/data.csv has another header"
        header, rows = first, rows + rest
    (root / "data.csv").write_text(header + "".join(rows))
    return root


@pytest.fixture(scope="session")
def sample_data(sample_root: Path) -> LGGData:
    """The decoded sample (cached in the session's temporary LGG_CACHE_DIR)."""
    return load_dataset(sample_root, progress=False)


@pytest.fixture(scope="session")
def zoo_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The catalog of the tiny trained-and-evaluated zoo (built once per session) for app tests."""
    return build_tiny_zoo(tmp_path_factory.getbasetemp() / "tiny-zoo")


@pytest.fixture
def app_env(zoo_catalog: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the app at the tiny zoo, offline; returns its catalog."""
    monkeypatch.setenv("LGG_CATALOG", str(zoo_catalog))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return zoo_catalog


def _write_slice(folder: Path, n: int, image: np.ndarray, mask: np.ndarray) -> None:
    tifffile.imwrite(folder / f"{folder.name}_{n}.tif", image)
    tifffile.imwrite(folder / f"{folder.name}_{n}_mask.tif", mask)


@pytest.fixture
def synthetic_root(tmp_path: Path) -> Path:
    """A valid two-patient, three-slices-each ``kaggle_3m`` folder with random pixels; slice 2 has tumor."""
    root = tmp_path / "kaggle_3m"
    rng = np.random.default_rng(0)
    for name in ("TCGA_CS_0001_20000101", "TCGA_HT_A002_20010101"):
        folder = root / name
        folder.mkdir(parents=True)
        for n in (1, 2, 3):
            mask = np.zeros((256, 256), dtype=np.uint8)
            if n == 2:
                mask[100:120, 100:130] = 255
            _write_slice(folder, n, rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), mask)
    (root / "data.csv").write_text("Patient,gender\nTCGA_CS_0001,1\nTCGA_HT_A002,2\n")
    return root


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line saying how many real-browser tests ran, so a silent skip cannot pass for a green run."""
    outcomes = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    for outcome in outcomes:
        reports = terminalreporter.stats.get(outcome, [])
        outcomes[outcome] = len({r.nodeid for r in reports if "browser" in getattr(r, "keywords", {})})
    if any(outcomes.values()):
        ran = outcomes["passed"] + outcomes["failed"]
        terminalreporter.write_line(
            f"browser tests: {ran} ran ({outcomes['passed']} passed, {outcomes['failed']} failed), "
            f"{outcomes['skipped']} skipped, {outcomes['error']} errors")
