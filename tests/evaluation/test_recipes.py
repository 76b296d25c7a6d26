"""The recipe search: 2.5D inputs, modality dropout, the per-patient validation record and the table built on it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lgg_core.cli import main as lgg_main
from lgg_core.data.inputs import INPUTS, lone_slice_inputs, missing_sequences, stack_inputs
from lgg_core.data.transforms import drop_modalities
from lgg_core.evaluation.evaluator import _patient_probs
from lgg_core.evaluation.postprocessing import LONE, holds_everywhere, variant_dice, variant_table
from lgg_core.evaluation.recipes import find_runs, recipe_curve, recipe_table
from lgg_core.evaluation.stats import paired_difference
from lgg_core.models import ArtifactError
from lgg_core.serving.artifacts import artifact_inputs, load_artifact, write_reference
from lgg_core.serving.checks import checked_artifact
from lgg_core.serving.inference import predict
from lgg_core.serving.postprocess import POSTPROCESSING
from lgg_core.training.trainer import TrainConfig, train

TINY = dict(k=3, epochs=1, batch_size=4, limit_train_batches=2, crop=128, val_patients=2)


def _volume(patients: dict[str, int]) -> tuple[np.ndarray, pd.DataFrame]:
    """Slices whose FLAIR value is 10 * slice number + patient number, other channels distinct."""
    images, rows = [], []
    for p_number, (patient, n) in enumerate(patients.items()):
        for s in range(1, n + 1):
            image = np.zeros((4, 4, 3), np.uint8)
            image[..., 0], image[..., 1], image[..., 2] = 200, 10 * s + p_number, 250
            images.append(image)
            rows.append({"patient": patient, "slice": s})
    return np.stack(images), pd.DataFrame(rows)


def test_flair_25d_stacks_neighbours_within_each_patient() -> None:
    images, index = _volume({"A": 3, "B": 2})
    stacked = stack_inputs(images, index, "flair-2.5d")
    # (previous, this, next) FLAIR; a volume's first and last slice repeat themselves, never a neighbour patient's.
    expected = [(10, 10, 20), (10, 20, 30), (20, 30, 30), (11, 11, 21), (11, 21, 21)]
    assert [tuple(s[0, 0]) for s in stacked] == expected


@pytest.mark.parametrize("inputs", INPUTS)
def test_some_rows_get_the_same_inputs_as_the_whole_volume(inputs: str) -> None:
    images, index = _volume({"A": 4, "B": 3})
    rows = np.array([0, 3, 4, 6, 2])  # volume edges, a lone middle slice, out of order
    np.testing.assert_array_equal(stack_inputs(images, index, inputs, rows), stack_inputs(images, index, inputs)[rows])


def test_a_lone_slice_gets_its_own_flair_as_neighbours() -> None:
    images, _ = _volume({"A": 2})
    assert lone_slice_inputs(images, "sequences") is images
    assert [tuple(s[0, 0]) for s in lone_slice_inputs(images, "flair-2.5d")] == [(10, 10, 10), (20, 20, 20)]


def test_sequences_are_the_slices_themselves_and_unknown_inputs_list_valid_ones() -> None:
    images, index = _volume({"A": 2})
    assert stack_inputs(images, index, "sequences") is images
    with pytest.raises(ValueError, match="valid: " + ", ".join(INPUTS)):
        stack_inputs(images, index, "t2")


def test_missing_sequences_counts_channels_that_repeat_flair() -> None:
    images, index = _volume({"A": 2, "B": 2, "C": 2})
    images[2:4, ..., 0] = images[2:4, ..., 1]  # B lacks pre-contrast
    images[4:6, ..., 0] = images[4:6, ..., 1]
    images[4:6, ..., 2] = images[4:6, ..., 1]  # C has FLAIR only
    images[0, ..., 2] = images[0, ..., 1]  # one slice of A alone is no missing sequence
    assert missing_sequences(images, index) == {"B": 1, "C": 2}


@pytest.mark.parametrize("p, dropped", [(0.0, 0.0), (1.0, 1.0), (0.5, 0.5)])
def test_modality_dropout_replaces_contrast_channels_by_flair(p: float, dropped: float) -> None:
    x = torch.stack([torch.full((64, 8, 8), v) for v in (0.1, 0.5, 0.9)], 1)
    out = drop_modalities(x, p, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, 1], x[:, 1])
    for channel in (0, 2):
        share = (out[:, channel, 0, 0] == 0.5).float().mean().item()
        assert share == pytest.approx(dropped, abs=0.2)
        assert torch.all((out[:, channel] == x[:, channel]) | (out[:, channel] == x[:, 1]))


@pytest.mark.parametrize("values, message", [({"inputs": "t2"}, "unknown inputs"),
                                             ({"modality_dropout": 1.5}, "probability")])
def test_bad_recipe_fields_are_rejected(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(arch="unet-mini", **values)


@pytest.fixture(scope="module")
def runs(sample_data, tmp_path_factory) -> Path:
    """A baseline and a 2.5D run on the same fold: the recipe search in miniature."""
    folder = tmp_path_factory.mktemp("recipes")
    train(TrainConfig(arch="unet-mini", **TINY), sample_data, folder / "base", progress=False)
    train(TrainConfig(arch="unet-mini", inputs="flair-2.5d", modality_dropout=0.3, **TINY), sample_data,
          folder / "flair", progress=False)
    return folder


def test_each_validation_patient_dice_is_recorded(runs: Path) -> None:
    training = json.loads((runs / "flair" / "config.json").read_text())["training"]
    assert (training["inputs"], training["modality_dropout"]) == ("flair-2.5d", 0.3)
    dice = training["val_patient_dice"]
    assert len(dice) == training["patients"]["val"] == 2
    assert np.mean(list(dice.values())) == pytest.approx(training["best_val_score"])


def test_recipe_table_pairs_each_run_with_its_baseline(runs: Path) -> None:
    table = recipe_table(find_runs([runs]), n_boot=200).set_index("run")
    assert table.loc["base", "changes"] == "baseline" and pd.isna(table.loc["base", "diff"])
    assert table.loc["flair", "changes"] == "inputs=flair-2.5d, modality_dropout=0.3"
    dice = {name: pd.Series(json.loads((runs / name / "config.json").read_text())["training"]["val_patient_dice"])
            for name in ("base", "flair")}
    expected = paired_difference(dice["flair"].sort_index().to_numpy(), dice["base"].sort_index().to_numpy())
    assert table.loc["flair", "diff"] == pytest.approx(expected["mean_diff"])
    assert table.loc["flair", "dice"] == pytest.approx(dice["flair"].mean())
    assert table.loc["flair", "best_epoch"] == 1 == table.loc["flair", "epochs"]  # counted from 1, as the curve is
    alone = recipe_table(find_runs([runs / "flair"]), n_boot=200).set_index("run")
    assert alone.loc["flair", "changes"] == ("inputs=flair-2.5d, modality_dropout=0.3, "
                                              "no baseline run of this model")
    assert "diff" not in alone.columns


def test_lgg_recipes_prints_the_table_and_refuses_a_folder_without_runs(runs: Path, tmp_path: Path, capsys) -> None:
    assert lgg_main(["recipes", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "| flair | unet-mini | 0 | inputs=flair-2.5d, modality_dropout=0.3 |" in out
    assert lgg_main(["recipes", str(tmp_path)]) == 2
    assert "holds no recipe run" in capsys.readouterr().err


def test_a_2_5d_model_is_evaluated_on_its_volume_neighbours(runs: Path, sample_data) -> None:
    model, config = load_artifact(runs / "flair")
    assert artifact_inputs(config) == "flair-2.5d"
    rows = sample_data.rows(sample_data.patients[:2])
    (first_rows, raw, _), *_ = _patient_probs(model, sample_data, rows, 4, config["training"]["input_size"],
                                              "flair-2.5d")
    stacked = stack_inputs(sample_data.images, sample_data.index, "flair-2.5d", first_rows)
    expected = predict(model, stacked, "segment", 4, config["training"]["input_size"])
    np.testing.assert_allclose(raw, expected, atol=1e-6)
    # Fed the three sequences, the same model says something else: the evaluator must not do that.
    sequences = predict(model, sample_data.images[first_rows], "segment", 4, config["training"]["input_size"])
    assert np.abs(sequences - expected).max() > 1e-3


def test_an_unknown_input_kind_is_refused_with_the_valid_ones(runs: Path, tmp_path: Path) -> None:
    shutil.copytree(runs / "flair", tmp_path / "t2")
    config = json.loads((tmp_path / "t2" / "config.json").read_text())
    config["training"]["inputs"] = "t2"
    (tmp_path / "t2" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="training.inputs.*valid: sequences, flair-2.5d"):
        load_artifact(tmp_path / "t2")
    assert "valid: sequences, flair-2.5d" in checked_artifact(tmp_path / "t2")[2]


def test_a_composite_of_parts_taking_different_inputs_is_refused(runs: Path) -> None:
    with pytest.raises(ValueError, match="differ in inputs"):
        write_reference(runs / "ensemble", "ensemble", [runs / "base", runs / "flair"])


def test_the_gain_is_also_given_without_the_patients_lacking_a_sequence(runs: Path) -> None:
    found = find_runs([runs])
    first = found[0].dice.index[0]
    table = recipe_table(found, apart=[first], n_boot=200).set_index("run")
    flair, base = (next(r for r in found if r.name == name).dice for name in ("flair", "base"))
    rest = flair.index.drop(first)
    assert table.loc["flair", "whole_diff"] == pytest.approx((flair[rest] - base[rest]).mean())
    assert first in table.loc["flair", "apart"]


def test_postprocessing_is_chosen_on_validation_patients_only(runs: Path, sample_data, monkeypatch) -> None:
    read = []
    real_rows = type(sample_data).rows
    monkeypatch.setattr(type(sample_data), "rows", lambda self, patients: read.extend(patients) or
                        real_rows(self, patients))
    dice = {name: variant_dice(runs / name, sample_data) for name in ("base", "flair")}
    val = json.loads((runs / "flair" / "split.json").read_text())["roles"]["val"]
    assert set(read) == set(val)
    assert LONE in dice["flair"].columns and LONE not in dice["base"].columns  # only a 2.5D model misses neighbours
    assert list(dice["base"].columns) == list(POSTPROCESSING)
    table = variant_table(dice, n_boot=200)
    none = table[table["variant"] == "none"]
    assert (none["diff"] == 0).all()
    lcc = table.set_index(["run", "variant"]).loc[("flair", "lcc")]
    assert lcc["diff"] == pytest.approx((dice["flair"]["lcc"] - dice["flair"]["none"]).mean())
    assert holds_everywhere(table)["lcc"] == bool((table.query("variant == 'lcc'")["diff"] > 0).all())


def test_lgg_postprocess_prints_each_variant(runs: Path, sample_root: Path, capsys) -> None:
    assert lgg_main(["postprocess", str(runs / "flair"), "--data-dir", str(sample_root)]) == 0
    out = capsys.readouterr().out
    assert out.count("| flair |") == len(POSTPROCESSING) + 1 and "| flair | lone slices | 2 |" in out


def test_the_card_says_which_input_the_model_takes(runs: Path) -> None:
    flair, base = ((runs / name / "README.md").read_text() for name in ("flair", "base"))
    assert "| input | FLAIR of slices n−1, n, n+1, 256x256" in flair and "its own FLAIR three times" in flair
    assert "| input | 3 channels (pre-contrast, FLAIR, post-contrast), 256x256" in base and "n−1" not in base


def test_the_curve_spends_each_runs_cpu_time_over_its_epochs(runs: Path, capsys) -> None:
    found = find_runs([runs])
    curve = recipe_curve(found)
    for run in found:
        rows = curve[curve["run"] == run.name]
        epochs = pd.read_csv(run.folder / "epochs.csv")
        assert rows["epoch"].tolist() == (epochs["epoch"] + 1).tolist()
        assert rows["dice"].tolist() == pytest.approx(epochs["val_score"].tolist())
        assert rows["cpu_min"].is_monotonic_increasing
        assert rows["cpu_min"].iloc[-1] == pytest.approx(run.training.cpu_time_s / 60)
    assert lgg_main(["recipes", str(runs), "--curve"]) == 0
    assert "| flair | inputs=flair-2.5d, modality_dropout=0.3 | 1 |" in capsys.readouterr().out


def test_the_curve_figure_draws_one_line_per_run(runs: Path) -> None:
    from lgg_core.app.charts import recipe_curve_figure

    fig = recipe_curve_figure(recipe_curve(find_runs([runs])))
    assert sorted(trace.name.split(" (")[0] for trace in fig.data) == ["base", "flair"]
    assert fig.layout.xaxis.title.text.startswith("CPU-minutes")
