"""Pooling one model's fold artifacts into cross-validation results (lgg_core.evaluation.crossval, `lgg crossval`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lgg_core.cli import main
from lgg_core.evaluation.crossval import (compare_runs, fold_dirs, fold_patients, run_report, runs_display, summary,
                                         summary_markdown, training_cpu_minutes)
from lgg_core.evaluation.stats import paired_difference


def _fold(root: Path, fold: int, dice: dict[str, float], arch: str = "unet", epochs: int = 8,
          init_from: str | None = None, k: int = 5) -> Path:
    """A fold artifact as `lgg evaluate` leaves it, reduced to what pooling reads (``k=1``: a run complete in one)."""
    directory = root / f"fold-{fold}"
    (directory / "eval").mkdir(parents=True)
    training = {"fold": fold, "k": k, "split_seed": 0, "dataset_hash": "abc", "epochs": epochs, "input_size": 128,
                "init_from": init_from}
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
    markdown = summary_markdown(summary(pooled, n_boot=500))
    assert "|---|---:|---:|---|---|---|\n| as predicted | 2 | 5 | 0.770 (" in markdown


def test_cli_pairs_a_run_against_another_on_shared_patients(folds: list[Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    longer = _fold(tmp_path / "longer", 0, {"TCGA_CS_1": 0.95, "TCGA_DU_2": 0.6})
    assert main(["crossval", str(longer), "--against", *map(str, folds)]) == 0
    out = capsys.readouterr().out
    # Only fold 0's two patients are shared; the other run's fold 1 has none of them.
    assert "| as predicted | 2 | 0.775 | 0.700 | +0.075 (+0.050 to +0.100) |" in out


def test_complete_runs_are_compared_pair_by_pair_on_the_patients_both_hold_out(folds: list[Path],
                                                                               tmp_path: Path) -> None:
    base = _fold(tmp_path / "base", 0, {"TCGA_CS_1": 0.9, "TCGA_DU_2": 0.5}, k=2)
    _fold(tmp_path / "base", 1, {"TCGA_HT_3": 0.8, "TCGA_FG_4": 0.7, "TCGA_DU_5": 0.95}, k=2)
    longer = _fold(tmp_path / "longer", 0, {"TCGA_CS_1": 0.95, "TCGA_DU_2": 0.6, "TCGA_CS_9": 0.1}, k=1)
    other = _fold(tmp_path / "other", 0, {"TCGA_HT_3": 0.6, "TCGA_FG_4": 0.5, "TCGA_DU_5": 0.9}, k=1)
    reports = [run_report(name, folder) for name, folder in
               (("base", base.parent), ("longer", longer.parent), ("other", other.parent))]
    reports.append(run_report("gone", tmp_path / "gone"))  # not poolable: left out
    reports.append(run_report("running", tmp_path))  # 2 of 5 folds: joins the family once complete
    pairs = compare_runs(reports, n_boot=500).set_index(["a", "b"])
    # Ranked by mean: base 0.770, other 0.667, longer 0.550; each pair on the patients both hold out.
    assert pairs.index.tolist() == [("base", "other"), ("base", "longer"), ("other", "longer")]
    expected = paired_difference(np.array([0.9, 0.5]), np.array([0.95, 0.6]), n_boot=500)
    assert pairs.loc[("base", "longer"), "n"] == 2  # TCGA_CS_9 only "longer" holds
    assert pairs.loc[("base", "longer"), "mean_diff"] == pytest.approx(expected["mean_diff"]) == -0.075
    assert pairs.loc[("base", "other"), ["n", "mean_diff"]].tolist() == pytest.approx([3, np.mean([0.2, 0.2, 0.05])])
    assert pairs.loc[("other", "longer"), "n"] == 0
    lcc = compare_runs(reports, variant="lcc", n_boot=500).set_index(["a", "b"])
    assert lcc.loc[("base", "longer"), "mean_diff"] == pytest.approx(-0.075)  # both shifted by 0.01


def test_patient_held_out_by_two_folds_is_refused(tmp_path: Path) -> None:
    folds = [_fold(tmp_path, 0, {"TCGA_CS_1": 0.9}), _fold(tmp_path, 1, {"TCGA_CS_1": 0.8, "TCGA_DU_2": 0.7})]
    with pytest.raises(ValueError, match="held out by more than one fold: TCGA_CS_1"):
        fold_patients(folds)


def test_same_fold_twice_is_refused(folds: list[Path]) -> None:
    with pytest.raises(ValueError, match="both fold 0"):
        fold_patients([folds[0], folds[0]])


@pytest.mark.parametrize("other", [{"arch": "segnet"}, {"epochs": 30}, {"init_from": "artifacts/cv/unet/fold-1"}])
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


def test_a_run_folder_expands_to_its_folds_in_fold_order(tmp_path: Path) -> None:
    made = [_fold(tmp_path, f, {f"TCGA_CS_{f}": 0.8}) for f in (10, 2, 0)]
    (tmp_path / "resnet50-fold-0").mkdir()  # cv.sh's classifier folds sit beside the segmenter's
    assert fold_dirs([tmp_path]) == [made[2], made[1], made[0]]
    assert fold_dirs([made[1]]) == [made[1]]
    with pytest.raises(ValueError, match="neither a fold artifact"):
        fold_dirs([tmp_path / "resnet50-fold-0"])


def test_a_run_in_progress_reports_the_evaluated_folds_so_far(folds: list[Path], tmp_path: Path) -> None:
    _fold(tmp_path, 2, {"TCGA_EZ_6": 0.6})
    (tmp_path / "fold-2" / "eval" / "patients.csv").unlink()  # fold 2 is still training
    report = run_report("unet", tmp_path, n_boot=200)
    assert (report.folds, report.expected, report.problem) == (2, 5, None)
    assert set(report.pooled["patient"]) == {"TCGA_CS_1", "TCGA_DU_2", "TCGA_HT_3", "TCGA_FG_4", "TCGA_DU_5"}
    assert report.table.set_index("variant").at["raw", "patients"] == 5


def _cost(artifact: Path, seconds: float | None, **starts: str) -> None:
    config = json.loads((artifact / "config.json").read_text())
    config["training"].update(cpu_time_s=seconds, **starts)
    (artifact / "config.json").write_text(json.dumps(config))


def test_a_runs_training_cost_counts_what_each_fold_started_from(tmp_path: Path, monkeypatch) -> None:
    """A fold's own CPU time, its encoder's classifier and, for a longer run, the fold it continued from."""
    monkeypatch.chdir(tmp_path)  # training records starting points relative to the folder it ran from
    first = [_fold(tmp_path / "runs" / "unet", f, {f"TCGA_CS_{f}": 0.8}) for f in range(2)]
    classifier = _fold(tmp_path / "runs" / "unet", 9, {"TCGA_CS_9": 0.8})
    _cost(classifier, 300.0)
    _cost(first[0], 600.0, encoder_init="runs/unet/fold-9")
    _cost(first[1], 1200.0)
    later = _fold(tmp_path / "runs" / "unet+e8", 0, {"TCGA_CS_0": 0.9}, init_from="runs/unet/fold-0")
    _cost(later, 60.0)
    assert training_cpu_minutes(first) == pytest.approx(35.0)
    assert training_cpu_minutes([later]) == pytest.approx(16.0)
    _cost(first[1], None)
    assert training_cpu_minutes(first) is None


def test_the_runs_table_gives_each_runs_training_cost(folds: list[Path], tmp_path: Path) -> None:
    for seconds, fold in zip((600.0, 900.0), folds):
        _cost(fold, seconds)
    row = runs_display([run_report("unet", tmp_path, n_boot=200)]).iloc[0]
    assert row["Training (CPU-min)"] == "25"


@pytest.mark.parametrize("setup,fragment", [
    (lambda root: None, "neither a fold artifact"),
    (lambda root: _fold(root, 0, {"TCGA_CS_1": 0.9}).joinpath("eval", "patients.csv").unlink(), "no fold"),
    (lambda root: _fold(root, 0, {"TCGA_CS_1": 0.9}).joinpath("config.json").write_text("[1]"), "not a JSON object"),
    (lambda root: _fold(root, 0, {"TCGA_CS_1": 0.9}).joinpath("eval", "patients.csv").write_text("a\n1\n"),
     "lacks the column(s) dice, patient, variant"),
])
def test_a_broken_run_is_a_problem_message(tmp_path: Path, setup, fragment: str) -> None:
    tmp_path.joinpath("run").mkdir()
    setup(tmp_path / "run")
    report = run_report("broken", tmp_path / "run", n_boot=100)
    assert report.table is None and fragment in report.problem


def test_cli_pools_a_run_folder_and_warns_when_folds_are_missing(folds: list[Path], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crossval", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "| as predicted | 2 | 5 |" in out and "2 of 5 folds" in err


def _catalog_with_runs(tmp_path: Path, zoo_catalog: Path) -> Path:
    """One tiny-zoo model, the ``folds`` fixture's run (2 of 5 folds, still training), a run folder that does not
    exist and two complete one-fold runs sharing two patients with each other and with the first."""
    _fold(tmp_path / "longer", 0, {"TCGA_CS_1": 0.95, "TCGA_DU_2": 0.6}, k=1)
    _fold(tmp_path / "shorter", 0, {"TCGA_CS_1": 0.9, "TCGA_DU_2": 0.5, "TCGA_HT_3": 0.4}, k=1)
    catalog = tmp_path / "models.toml"
    catalog.write_text(f'[[model]]\nname = "unet-mini"\npath = "{zoo_catalog.parent / "unet-mini"}"\n'
                       f'[[crossval]]\nname = "unet"\npath = "{tmp_path}"\n'
                       f'[[crossval]]\nname = "gone"\npath = "{tmp_path / "gone"}"\n'
                       f'[[crossval]]\nname = "unet, longer"\npath = "{tmp_path / "longer"}"\n'
                       f'[[crossval]]\nname = "unet, shorter"\npath = "{tmp_path / "shorter"}"\n')
    return catalog


def test_cli_leaderboard_adds_the_catalog_runs(folds: list[Path], tmp_path: Path, zoo_catalog: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", "--catalog", str(_catalog_with_runs(tmp_path, zoo_catalog))]) == 0
    out, err = capsys.readouterr()
    assert "| `unet-mini` |" in out
    [row] = [line for line in out.splitlines() if line.startswith("| unet | ")]
    assert row.startswith("| unet | 2 of 5 (running) | 5 | 0.770 (") and row.endswith(f"| train/cv.sh {tmp_path.name} |")
    assert "skipped cross-validation run 'gone'" in err


def test_cli_leaderboard_pairs_compare_the_runs_on_the_patients_both_hold_out(
        folds: list[Path], tmp_path: Path, zoo_catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", "--catalog", str(_catalog_with_runs(tmp_path, zoo_catalog)), "--pairs"]) == 0
    out = capsys.readouterr().out
    assert "Complete cross-validation runs against each other" in out and "(m = 1)" in out
    [row] = [line for line in out.splitlines() if line.startswith("| `unet") and "`unet, longer`" in line]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # Two shared patients: the shorter run's 0.9 and 0.5 against the longer run's 0.95 and 0.6; the run still
    # training ("unet", with the same two) is not in the family.
    means = dict(zip([cells[0].strip("`"), cells[1].strip("`")], map(float, cells[3:5])))
    assert cells[2] == "2" and means == {"unet, shorter": pytest.approx(0.7), "unet, longer": pytest.approx(0.775)}


def test_leaderboard_shows_each_catalog_run_and_a_broken_one_as_a_warning(folds: list[Path], tmp_path: Path,
                                                                          zoo_catalog: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import json as json_module

    from streamlit.testing.v1 import AppTest

    catalog = _catalog_with_runs(tmp_path, zoo_catalog)
    monkeypatch.setenv("LGG_CATALOG", str(catalog))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "streamlit_app.py"), default_timeout=120)
    at.query_params["section"] = "Cross-validation"  # the Leaderboard's tab
    at.run().switch_page("pages/leaderboard.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Cross-validation: every patient held out once" in [h.value for h in at.subheader]
    shown = next(d.value for d in at.dataframe if "Median (95% CI)" in d.value.columns).set_index("Run")
    assert shown.index.tolist() == ["unet, longer", "unet", "unet, shorter"]  # best mean first
    assert shown.loc["unet", "Folds"] == "2 of 5 (running)" and shown.loc["unet", "Patients"] == 5
    assert shown.loc["unet", "Mean per-patient Dice (95% CI)"].startswith("0.770 (")
    assert f"train/cv.sh {tmp_path.name}  # unet" in [c.value for c in at.code][0].splitlines()
    assert (shown.loc["unet", "+ largest 3D component"], shown.loc["unet", "+ flip TTA"]) == ("0.780", "0.790")
    assert shown.loc["unet, longer", "Folds"] == "1 of 1"
    assert any("'gone'" in w.value for w in at.warning)
    boxes = [json_module.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert any(f["layout"]["title"]["text"].startswith("Per-patient Dice by held-out fold") for f in boxes)
    runs = next(d.value for d in at.dataframe if "mean_diff" in d.value.columns and "unet, longer" in set(d.value["a"]))
    assert runs[["a", "b", "n"]].values.tolist() == [["unet, longer", "unet, shorter", 2]]  # not the running one
    assert "Holm over these 1 pairs" in " ".join(c.value for c in at.caption)


@pytest.mark.parametrize(("folder", "command"), [("unet-resnet50-transfer", "train/cv.sh unet-resnet50-transfer"),
                                                 ("unet-e30", "train/cv.sh unet 30"),
                                                 ("unet-e30+e10", "train/cv.sh unet 10 artifacts/cv/unet-e30"),
                                                 ("v2/unet-mini", "train/cv.sh v2/unet-mini"),
                                                 ("v2/unet-e30+e10", "train/cv.sh v2/unet 10 artifacts/cv/v2/unet-e30")])
def test_crossval_command_follows_cv_sh_folder_names(folder: str, command: str) -> None:
    from lgg_core.serving.catalog import crossval_command, rebuild_command

    assert crossval_command(Path("artifacts/cv") / folder) == command
    assert crossval_command(Path("/srv/app/artifacts/cv") / folder) == command
    assert rebuild_command(Path("/srv/app/artifacts/cv") / folder / "fold-3") == command  # one fold of the run


def test_the_bundled_reference_leaves_out_a_run_still_training(folds: list[Path], tmp_path: Path,
                                                              zoo_catalog: Path) -> None:
    from lgg_core.evaluation.reference import build_reference

    complete = tmp_path / "complete"
    for fold in range(5):
        _fold(complete, fold, {f"TCGA_CS_{fold}0": 0.5 + fold / 10})
    catalog = tmp_path / "models.toml"
    catalog.write_text(f'[[model]]\nname = "unet-mini"\npath = "{zoo_catalog.parent / "unet-mini"}"\n'
                       f'[[crossval]]\nname = "training"\npath = "{tmp_path}"\n'
                       f'[[crossval]]\nname = "complete"\npath = "{complete}"\n')
    runs = build_reference(catalog).query("kind == 'crossval'")
    assert set(runs["name"]) == {"complete"} and len(runs) == 5  # "training" has 2 of its 5 folds


def test_cli_scores_the_patients_lacking_a_contrast_sequence_apart(synthetic_root: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import tifffile

    for image in sorted((synthetic_root / "TCGA_HT_A002_20010101").glob("*[0-9].tif")):
        pixels = tifffile.imread(image)
        tifffile.imwrite(image, np.repeat(pixels[..., 1:2], 3, axis=-1))  # pre- and post-contrast replaced by FLAIR
    run = [_fold(tmp_path / "v2", 0, {"TCGA_CS_0001": 0.9}), _fold(tmp_path / "v2", 1, {"TCGA_HT_A002": 0.8})]
    champion = _fold(tmp_path / "v1", 0, {"TCGA_CS_0001": 0.95, "TCGA_HT_A002": 0.4})
    args = ["crossval", *map(str, run), "--against", str(champion), "--data-dir", str(synthetic_root),
            "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    out = capsys.readouterr().out
    apart = out.split("The 1 pooled patients lacking a contrast sequence (FLAIR repeated in its place), apart:")[1]
    assert "| as predicted | 1 | 1 | 0.800 (" in apart  # fold 1's patient only
    assert "| as predicted | 1 | 0.800 | 0.400 | +0.400" in apart
    assert main(args[:-4]) == 0  # without the dataset it says how to get the subgroup
    assert "scored apart when the dataset is given" in capsys.readouterr().err
