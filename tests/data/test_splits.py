"""Patient-level folds: leakage, balance, determinism, roles and split files."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lgg_core.data.reader import DatasetError
from lgg_core.data.splits import fold_roles, fold_summary, load_split, make_folds, save_split

# Patients per institution in the full dataset (110 patients).
INSTITUTIONS = {"CS": 16, "DU": 45, "EZ": 1, "FG": 14, "HT": 34}


@pytest.fixture(scope="module")
def synthetic_index() -> pd.DataFrame:
    """A slice index shaped like the full dataset: 110 patients, 20-88 slices each, varied tumor share."""
    rng = np.random.default_rng(42)
    rows = []
    for institution, count in INSTITUTIONS.items():
        for i in range(count):
            slices = int(rng.integers(20, 89))
            tumor = rng.random(slices) < rng.uniform(0.05, 0.7)
            rows += [
                {"patient": f"TCGA_{institution}_{i:04d}", "institution": institution, "slice": s + 1, "has_tumor": t}
                for s, t in enumerate(tumor)
            ]
    return pd.DataFrame(rows)


def _patients(index: pd.DataFrame) -> list[str]:
    return sorted(index["patient"].unique())


def _institution_counts(index: pd.DataFrame, folds: dict[str, int]) -> pd.DataFrame:
    table = index.drop_duplicates("patient").set_index("patient")
    return pd.crosstab(table["institution"], pd.Series(folds).reindex(table.index))


@pytest.mark.parametrize(("source", "k"), [("sample", 3), ("synthetic", 5), ("synthetic", 7)])
def test_every_patient_in_exactly_one_fold(request: pytest.FixtureRequest, source: str, k: int) -> None:
    index = request.getfixturevalue("sample_data").index if source == "sample" else request.getfixturevalue(
        "synthetic_index"
    )
    folds = make_folds(index, k=k, seed=3)
    assert sorted(folds) == _patients(index)
    assert set(folds.values()) == set(range(k))
    sizes = np.bincount(list(folds.values()), minlength=k)
    assert sizes.max() - sizes.min() <= 1
    # Slices follow their patient: no patient's slices end up in two folds.
    slice_folds = index["patient"].map(folds)
    assert (index.assign(fold=slice_folds).groupby("patient")["fold"].nunique() == 1).all()


def test_sample_roles_do_not_leak(sample_data) -> None:
    folds = make_folds(sample_data.index, k=3)
    for fold in range(3):
        roles = fold_roles(folds, fold)
        train, val, test = (set(sample_data.index.loc[sample_data.rows(roles[r]), "patient"]) for r in roles)
        assert not (train & test or train & val or val & test)
        assert test == {p for p, f in folds.items() if f == fold}
        assert len(val) == 1 and train | val | test == set(sample_data.patients)


def test_folds_balance_institutions_and_tumor_share(synthetic_index: pd.DataFrame) -> None:
    folds = make_folds(synthetic_index, k=5, seed=0)
    counts = _institution_counts(synthetic_index, folds)
    assert ((counts.max(axis=1) - counts.min(axis=1)) <= 1).all()
    summary = fold_summary(synthetic_index, folds)
    assert summary["patients"].sum() == 110 and summary["slices"].sum() == len(synthetic_index)
    assert np.ptp(summary["tumor_share"]) < 0.04
    assert np.ptp(summary["slices"]) / summary["slices"].mean() < 0.15
    per_patient = synthetic_index.groupby("patient")["has_tumor"].mean()
    mean_share = per_patient.groupby(pd.Series(folds)).mean()
    assert np.ptp(mean_share) < 0.04


def test_folds_beat_random_patient_splits(synthetic_index: pd.DataFrame) -> None:
    balanced = np.ptp(fold_summary(synthetic_index, make_folds(synthetic_index, k=5))["tumor_share"])
    rng = np.random.default_rng(0)
    patients = _patients(synthetic_index)
    random_folds = [{p: i % 5 for i, p in enumerate(rng.permutation(patients))} for _ in range(20)]
    random_spreads = [np.ptp(fold_summary(synthetic_index, folds)["tumor_share"]) for folds in random_folds]
    assert balanced < np.median(random_spreads)


def test_folds_deterministic_per_seed(synthetic_index: pd.DataFrame, sample_data) -> None:
    assert make_folds(synthetic_index, seed=5) == make_folds(synthetic_index, seed=5)
    assert make_folds(synthetic_index, seed=5) != make_folds(synthetic_index, seed=6)
    sample_splits = {tuple(make_folds(sample_data.index, k=3, seed=s).values()) for s in range(5)}
    assert len(sample_splits) > 1


def test_make_folds_errors(sample_data) -> None:
    with pytest.raises(DatasetError, match="7 patient-level folds from 5 patients"):
        make_folds(sample_data.index, k=7)
    with pytest.raises(ValueError, match="at least 2"):
        make_folds(sample_data.index, k=1)
    with pytest.raises(DatasetError, match="has_tumor"):
        make_folds(sample_data.index.drop(columns="has_tumor"), k=3)


def test_fold_roles_cover_disjoint_sorted(synthetic_index: pd.DataFrame) -> None:
    folds = make_folds(synthetic_index, k=5)
    val_sets = []
    for fold in range(5):
        roles = fold_roles(folds, fold, val_fraction=0.1, seed=0)
        assert list(roles) == ["train", "val", "test"]
        train, val, test = (set(roles[r]) for r in roles)
        assert not (train & val or train & test or val & test)
        assert train | val | test == set(folds)
        assert test == {p for p, f in folds.items() if f == fold}
        assert all(roles[r] == sorted(roles[r]) for r in roles)
        assert len(val) == round(0.1 * (110 - len(test)))
        assert fold_roles(folds, fold, seed=0) == roles
        val_sets.append(val)
    assert fold_roles(folds, 0, seed=1)["val"] != sorted(val_sets[0])


def test_fold_roles_errors() -> None:
    folds = {"a": 0, "b": 1, "c": 1}
    roles = fold_roles(folds, 0, val_fraction=0.01)
    assert len(roles["val"]) == 1 and len(roles["train"]) == 1
    with pytest.raises(ValueError, match="fold 2"):
        fold_roles(folds, 2)
    with pytest.raises(ValueError, match="val_fraction"):
        fold_roles(folds, 0, val_fraction=1.5)
    with pytest.raises(ValueError, match="need 2"):
        fold_roles(folds, 1)


def test_split_file_round_trip(tmp_path: Path, sample_data) -> None:
    folds = make_folds(sample_data.index, k=3, seed=2)
    path = tmp_path / "splits" / "lgg-k3.json"
    save_split(path, folds, k=3, seed=2, dataset_hash=sample_data.dataset_hash)
    loaded = load_split(path)
    assert loaded == {"k": 3, "seed": 2, "dataset_hash": sample_data.dataset_hash, "folds": folds}
    assert [p.name for p in path.parent.iterdir()] == ["lgg-k3.json"]  # no temp file left behind


VALID = {"k": 2, "seed": 0, "dataset_hash": "abc", "folds": {"TCGA_CS_0001": 0, "TCGA_CS_0002": 1}}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps([1, 2]), "malformed"),
        (json.dumps({k: v for k, v in VALID.items() if k != "folds"}), "malformed"),
        (json.dumps({**VALID, "k": "2"}), "bad k"),
        (json.dumps({**VALID, "folds": {"TCGA_CS_0001": 0, "TCGA_CS_0002": 2}}), "TCGA_CS_0002 has fold 2"),
        (json.dumps({**VALID, "folds": {"TCGA_CS_0001": 0, "TCGA_CS_0002": True}}), "has fold True"),
        (json.dumps({**VALID, "folds": {"TCGA_CS_0001": 0, "TCGA_CS_0002": 0}}), r"folds \[1\] have no patients"),
        (json.dumps({**VALID, "folds": {}}), "no folds"),
    ],
)
def test_malformed_split_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "split.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=expected) as excinfo:
        load_split(path)
    assert str(path) in str(excinfo.value)


def test_missing_split_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="absent.json"):
        load_split(tmp_path / "absent.json")


def test_save_split_rejects_inconsistent_folds(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="expected 0..1"):
        save_split(tmp_path / "s.json", {"a": 0, "b": 2}, k=2, seed=0, dataset_hash="x")
    assert not list(tmp_path.iterdir())


def test_split_file_is_readable_by_other_users(tmp_path: Path, sample_data) -> None:
    folds = make_folds(sample_data.index, k=3)
    previous = os.umask(0o022)
    try:
        save_split(tmp_path / "split.json", folds, k=3, seed=0, dataset_hash=sample_data.dataset_hash)
    finally:
        os.umask(previous)
    assert (tmp_path / "split.json").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["split.json"]
