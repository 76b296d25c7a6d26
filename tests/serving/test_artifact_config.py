"""config.json parsed once into typed records: every shipped artifact's fields read as its file says."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lgg_core.serving.artifact_config import ArtifactConfig, TrainingRecord
from lgg_core.serving.records import ModelRecord, resolve_models

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.parent for p in (REPO / "artifacts").glob("*/config.json"))


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_config_parses_to_what_its_file_says(folder: Path) -> None:
    raw = json.loads((folder / "config.json").read_text())
    spec = ArtifactConfig.parse(raw)
    training = raw.get("training", {})
    assert (spec.arch, spec.task, spec.params) == (raw["arch"], raw["task"], raw.get("params"))
    assert spec.standardize == bool(raw.get("arch_kwargs", {}).get("standardize"))
    assert spec.training.fold == training.get("fold") and spec.training.protocol == training.get("protocol")
    assert [getattr(spec.training, f"{role}_patients") for role in ("train", "val", "test")] == [
        (training.get("patients") or {}).get(role) for role in ("train", "val", "test")]
    assert spec.arch_kwargs == raw.get("arch_kwargs", {}) and spec.parts == (tuple(raw["parts"]) if "parts" in raw
                                                                             else None)
    assert (spec.training.lr, spec.training.loss) == (training.get("lr"), training.get("loss"))
    assert spec.training.inputs == training.get("inputs", "sequences")
    assert (spec.training.parts is None) == ("parts" not in training)
    assert spec.gated == (raw["arch"] == "gated")


def test_a_record_without_a_training_object_or_with_odd_fields_parses_to_blanks() -> None:
    spec = ArtifactConfig.parse({"arch": "unet", "task": "segment", "training": ["not", "an", "object"]})
    assert spec.training == TrainingRecord()
    assert TrainingRecord.parse({"patients": 18, "parts": "resnet50", "val_patient_dice": [0.5]}) == TrainingRecord()
    assert ArtifactConfig.parse({"arch": "ensemble", "task": "segment", "parts": "../unet",
                                 "arch_kwargs": ["odd"]}).parts is None


def test_a_recipe_run_records_each_validation_patient_and_its_levers() -> None:
    training = {"val_patient_dice": {"TCGA_CS_4941": 0.8}, "modality_dropout": None, "inputs": "flair-neighbours"}
    record = TrainingRecord.parse(training)
    assert record.val_patient_dice == {"TCGA_CS_4941": 0.8}
    assert (record.modality_dropout, record.inputs) == (0.0, "flair-neighbours")  # blank is the default


def test_records_carry_the_parsed_config(app_env: Path) -> None:
    records, _ = resolve_models(app_env)
    usable = [r for r in records if r.ok]
    assert usable and all(r.spec == ArtifactConfig.parse(r.config) for r in usable)
    assert all(r.spec is None for r in records if not r.ok)
    assert ModelRecord("gone", None, problem="missing").spec is None


@pytest.mark.parametrize("config", [{}, {"arch": "unet"}, {"arch": 3, "task": "segment"}])
def test_a_config_naming_no_arch_or_task_is_one_error(config: dict) -> None:
    with pytest.raises(ValueError, match="names no arch or task"):
        ArtifactConfig.parse(config)
