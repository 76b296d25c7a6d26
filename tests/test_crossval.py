"""Pooling one model's fold artifacts into cross-validation results (lgg_core.evaluation.crossval, `lgg crossval`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lgg_core.cli import main
from lgg_core.evaluation.crossval import fold_patients, summary, summary_markdown


def _fold(root: Path, fold: int, dice: dict[str, float], arch: str = "unet", epochs: int = 8) -> Path:
    """A fold artifact as `lgg evaluate` leaves it, reduced to what pooling reads."""
    directory = root / f"fold-{fold}"
    (directory / "eval").mkdir(parents=True)
    training = {"fold": fold, "k": 5, "split_seed": 0, "dataset_hash": "abc", "epochs": epochs, "input_size": 128}
    (directory / "config.json").write_text(json.dumps({"arch": arch, "task": "segment", "training": training}))
    rows = [{"variant": variant, "patient": p, "institution": p.split("_")[1], "dice": d + shift}
            for variant, shift in (("raw", 0.0), ("lcc", 0.01), ("tta", 0.02)) for p, d in dice.items()]
    pd.DataFrame(rows).to_csv(directory / "eval" / "patients.csv", index=False)
    return directory


@pytest.fixture
def folds(tmp_path: Path) -> list[Path]:
    return [_fold(tmp_path, 0, {"TCGA_CS_1": 0.9, "TCGA_DU_2": 0.5}),
            _fold(tmp_path, 1, {"TCGA_HT_3": 0.8, "TCGA_FG_4": 0.7, "TCGA_DU_5": 0.95})]


def test_pools_every_held_out_patient_once(folds: list[Path]) -> None:
    pooled = fold_patients(folds)
    raw = pooled[pooled["variant"] == "raw"]
    assert sorted(raw["patient"]) == ["TCGA_CS_1", "TCGA_DU_2", "TCGA_DU_5", "TCGA_FG_4", "TCGA_HT_3"]
    assert raw.set_index("patient")["fold"].to_dict()["TCGA_HT_3"] == 1
    table = summary(pooled, n_boot=500).set_index("variant")
    dice = np.array([0.9, 0.5, 0.8, 0.7, 0.95])
    assert table.at["raw", "mean"] == pytest.approx(dice.mean())
    assert table.at["lcc", "mean"] == pytest.approx(dice.mean() + 0.01)
    assert table.at["raw", "median"] == pytest.approx(0.8)
    assert table.at["raw", "reach_085"] == pytest.approx(2 / 5)
    assert table.at["raw", "mean_low"] <= dice.mean() <= table.at["raw", "mean_high"]
    assert table.at["raw", "folds"] == 2 and table.at["raw", "patients"] == 5
    assert "| as predicted | 2 | 5 | 0.770 (" in summary_markdown(summary(pooled, n_boot=500))


def test_patient_held_out_by_two_folds_is_refused(tmp_path: Path) -> None:
    folds = [_fold(tmp_path, 0, {"TCGA_CS_1": 0.9}), _fold(tmp_path, 1, {"TCGA_CS_1": 0.8, "TCGA_DU_2": 0.7})]
    with pytest.raises(ValueError, match="held out by more than one fold: TCGA_CS_1"):
        fold_patients(folds)


def test_same_fold_twice_is_refused(folds: list[Path]) -> None:
    with pytest.raises(ValueError, match="both fold 0"):
        fold_patients([folds[0], folds[0]])


@pytest.mark.parametrize("other", [{"arch": "segnet"}, {"epochs": 30}])
def test_folds_of_different_models_or_recipes_are_refused(tmp_path: Path, other: dict) -> None:
    folds = [_fold(tmp_path / "a", 0, {"TCGA_CS_1": 0.9}), _fold(tmp_path / "b", 1, {"TCGA_DU_2": 0.8}, **other)]
    with pytest.raises(ValueError, match="pool one model's folds"):
        fold_patients(folds)


def test_unevaluated_fold_is_refused(folds: list[Path]) -> None:
    (folds[1] / "eval" / "patients.csv").unlink()
    with pytest.raises(ValueError, match="not evaluated: run `lgg evaluate"):
        fold_patients(folds)


def test_cli_prints_the_table_and_writes_the_pooled_patients(folds: list[Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crossval", *map(str, folds), "--out", str(tmp_path / "pooled.csv")]) == 0
    out = capsys.readouterr().out
    assert "largest 3D component" in out and "| 2 | 5 |" in out
    assert len(pd.read_csv(tmp_path / "pooled.csv")) == 15
    assert main(["crossval", str(folds[0]), str(folds[0])]) == 2
    assert "error: " in capsys.readouterr().err
