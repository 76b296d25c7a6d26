"""Shared fixtures: the real 6-patient sample, a tiny synthetic dataset, and an isolated cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from lgg_core.cache import LGGData, load_dataset

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "shared/data/lgg-sample"


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory):
    """Keep tests off the user's ~/.cache and independent of a caller's LGG_DATA_DIR."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LGG_CACHE_DIR", str(tmp_path_factory.mktemp("lgg-cache")))
        patch.delenv("LGG_DATA_DIR", raising=False)
        yield


@pytest.fixture(scope="session")
def sample_root() -> Path:
    """The ``kaggle_3m`` folder of the real 6-patient sample (142 slices, 50 with tumor)."""
    root = SAMPLE_DIR / "kaggle_3m"
    if not (root / "TCGA_CS_4941_19960909").is_dir():
        pytest.fail(
            f"LGG sample dataset not found at {root}: the tests need the 6-patient sample in "
            "../shared/data/lgg-sample/kaggle_3m relative to the repository root",
            pytrace=False,
        )
    return root


@pytest.fixture(scope="session")
def sample_data(sample_root: Path) -> LGGData:
    """The decoded sample (cached in the session's temporary LGG_CACHE_DIR)."""
    return load_dataset(sample_root, progress=False)


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
