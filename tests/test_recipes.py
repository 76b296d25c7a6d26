"""The recipe search: 2.5D inputs, modality dropout, the per-patient validation record and the table built on it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lgg_core.cli import main as lgg_main
from lgg_core.data.inputs import INPUTS, missing_sequences, stack_inputs
from lgg_core.data.transforms import drop_modalities
from lgg_core.evaluation.recipes import find_runs, recipe_table
from lgg_core.evaluation.stats import paired_difference
from lgg_core.models import ArtifactError
from lgg_core.serving.artifacts import load_artifact
from lgg_core.serving.checks import checked_artifact
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


def test_lgg_recipes_prints_the_table_and_refuses_a_folder_without_runs(runs: Path, tmp_path: Path, capsys) -> None:
    assert lgg_main(["recipes", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "| flair | unet-mini | 0 | inputs=flair-2.5d, modality_dropout=0.3 |" in out
    assert lgg_main(["recipes", str(tmp_path)]) == 2
    assert "holds no recipe run" in capsys.readouterr().err


def test_a_model_trained_on_other_inputs_is_refused_by_serving(runs: Path) -> None:
    with pytest.raises(ArtifactError, match="'flair-2.5d' inputs"):
        load_artifact(runs / "flair")
    config, _, problem = checked_artifact(runs / "flair")
    assert config is None and "recipe search" in problem
    load_artifact(runs / "base")  # the three sequences: served as before


def test_the_gain_is_also_given_without_the_patients_lacking_a_sequence(runs: Path) -> None:
    found = find_runs([runs])
    first = found[0].dice.index[0]
    table = recipe_table(found, apart=[first], n_boot=200).set_index("run")
    flair, base = (next(r for r in found if r.name == name).dice for name in ("flair", "base"))
    rest = flair.index.drop(first)
    assert table.loc["flair", "whole_diff"] == pytest.approx((flair[rest] - base[rest]).mean())
    assert first in table.loc["flair", "apart"]
