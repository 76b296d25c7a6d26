"""Tables kept on disk by the content they are computed from: read back exactly, recomputed when anything they
depend on changes or the file is damaged, and bounded in number."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lgg_core.app import stored
from lgg_core.evaluation.stats import pairwise


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LGG_CACHE_DIR", str(tmp_path))
    return tmp_path / "tables"


def dice(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"model": np.repeat(["a", "b", "c"], 12), "patient": np.tile([f"P{i}" for i in range(12)], 3),
                         "dice": rng.uniform(0.3, 0.95, 36)})


class Counted:
    def __init__(self, values: pd.DataFrame) -> None:
        self.values, self.calls = values, 0

    def __call__(self) -> pd.DataFrame:
        self.calls += 1
        return pairwise(self.values, n_boot=200)


def test_a_stored_table_is_read_back_exactly_without_computing(cache: Path) -> None:
    compute = Counted(dice())
    first = stored.stored_table("pairs", [compute.values], compute)
    again = stored.stored_table("pairs", [compute.values.copy()], compute)
    assert compute.calls == 1 and len(list(cache.glob("pairs-*.parquet"))) == 1
    pd.testing.assert_frame_equal(again, first)
    pd.testing.assert_frame_equal(again, pairwise(compute.values, n_boot=200))  # types and values as computed


@pytest.mark.parametrize("change", ["value", "name", "what"])
def test_other_inputs_or_another_computation_are_computed_afresh(cache: Path, change: str) -> None:
    values = dice()
    compute = Counted(values)
    stored.stored_table("pairs", [values, "x"], compute)
    other = values.assign(dice=values["dice"].where(values.index != 5, 0.1)) if change == "value" else values
    stored.stored_table("pairs" if change != "what" else "pairs-lcc", [other, "y" if change == "name" else "x"],
                        compute)
    assert compute.calls == 2


def test_the_code_version_is_part_of_the_name(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compute = Counted(dice())
    stored.stored_table("pairs", [compute.values], compute)
    monkeypatch.setattr(stored, "code_version", lambda: "another version of lgg_core/evaluation")
    stored.stored_table("pairs", [compute.values], compute)
    assert compute.calls == 2


def test_a_damaged_file_is_computed_again_and_replaced(cache: Path) -> None:
    compute = Counted(dice())
    first = stored.stored_table("pairs", [compute.values], compute)
    [path] = cache.glob("pairs-*.parquet")
    path.write_bytes(b"PAR1 not really parquet")
    pd.testing.assert_frame_equal(stored.stored_table("pairs", [compute.values], compute), first)
    assert compute.calls == 2
    pd.testing.assert_frame_equal(pd.read_parquet(path), first)


def test_the_folder_keeps_the_newest_files_only(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stored, "MAX_FILES", 2)
    for seed in range(4):
        stored.stored_table("pairs", [dice(seed)], Counted(dice(seed)))
    assert len(list(cache.glob("*.parquet"))) == 2
    newest = Counted(dice(3))
    stored.stored_table("pairs", [dice(3)], newest)
    assert newest.calls == 0


def test_an_unwritable_cache_costs_speed_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LGG_CACHE_DIR", str(blocker))
    compute = Counted(dice())
    assert len(stored.stored_table("pairs", [compute.values], compute)) == 3
    stored.stored_table("pairs", [compute.values], compute)
    assert compute.calls == 2


def test_sessions_storing_the_same_table_at_once_leave_one_whole_file(cache: Path) -> None:
    values = dice()
    expected = pairwise(values, n_boot=200)
    with ThreadPoolExecutor(8) as pool:
        tables = list(pool.map(lambda _: stored.stored_table("pairs", [values], lambda: expected), range(16)))
    assert all(t.equals(expected) for t in tables)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".parquet")] == []  # no temporary file left
    pd.testing.assert_frame_equal(pd.read_parquet(next(cache.glob("pairs-*.parquet"))), expected)
