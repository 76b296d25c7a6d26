"""End to end on the real 5-patient sample: train -> artifact -> evaluate, resume after a kill, config errors."""
from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors import SafetensorError
from safetensors.torch import load_file

import lgg_core.serving.artifacts as artifacts
import lgg_core.training.trainer as training
from lgg_core.serving.artifacts import load_artifact
from lgg_core.evaluation.evaluator import evaluate
from lgg_core.serving.inference import predict
from lgg_core.data.splits import load_split
from lgg_core.training.trainer import TrainConfig, train
from train.__main__ import main as train_main

TINY = dict(k=3, epochs=2, batch_size=4, limit_train_batches=2, crop=128)
ONE_EPOCH = {**TINY, "epochs": 1}


@pytest.fixture(scope="module")
def trained(sample_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("artifacts") / "unet-mini"
    return train(TrainConfig(arch="unet-mini", **TINY), sample_data, out, progress=False)


def test_artifact_holds_weights_config_split_log_and_card(trained: Path, sample_data) -> None:
    names = {p.name for p in trained.iterdir()}
    assert {"config.json", "model.safetensors", "split.json", "epochs.csv", "README.md"} <= names
    config = json.loads((trained / "config.json").read_text())
    t = config["training"]
    assert config["arch"] == "unet-mini" and config["task"] == "segment"
    assert t["fold"] == 0 and t["epochs_run"] == 2 and t["split_file"] == "split.json"
    assert t["dataset_hash"] == sample_data.dataset_hash and t["wall_time_s"] > 0 and t["code_revision"]
    assert len(pd.read_csv(trained / "epochs.csv")) == 2


def test_card_states_the_learning_rate_schedule(trained: Path) -> None:
    config = json.loads((trained / "config.json").read_text())
    assert "warm-up + cosine" in artifacts.render_card(config)
    config["training"]["warmup_epochs"] = 0  # a fine-tune from an artifact starts at its full rate
    card = artifacts.render_card(config)
    assert "cosine without warm-up" in card and "warm-up + cosine" not in card


def test_split_beside_artifact_is_patient_level(trained: Path, sample_data) -> None:
    split = load_split(trained / "split.json")
    roles = {k: set(v) for k, v in split["roles"].items()}
    assert not roles["train"] & roles["test"] and not roles["val"] & roles["test"] and not roles["train"] & roles["val"]
    assert roles["train"] | roles["val"] | roles["test"] == set(sample_data.patients)
    assert roles["test"] == {p for p, f in split["folds"].items() if f == 0}


def test_artifact_reloads_to_identical_predictions(trained: Path, sample_data) -> None:
    model, config = load_artifact(trained)
    again, _ = load_artifact(trained)
    images = sample_data.images[:4]
    np.testing.assert_array_equal(predict(model, images, "segment"), predict(again, images, "segment"))


def test_evaluate_writes_consistent_tables(trained: Path, sample_data) -> None:
    summary = evaluate(trained, sample_data)
    test = load_split(trained / "split.json")["roles"]["test"]
    slices = pd.read_csv(trained / "eval" / "slices.csv")
    patients = pd.read_csv(trained / "eval" / "patients.csv")
    n = len(sample_data.rows(test))
    assert len(slices) == 3 * n and set(slices["variant"]) == {"raw", "lcc", "tta"}
    assert set(slices["patient"]) == set(test)
    # The per-patient volume Dice must agree with the per-slice pixel counts it is made of.
    raw = slices[slices["variant"] == "raw"].groupby("patient")[["tp", "fp", "fn"]].sum()
    expected = (2 * raw.tp / (2 * raw.tp + raw.fp + raw.fn)).where(raw.tp + raw.fp + raw.fn > 0, 1.0)
    got = patients[patients["variant"] == "raw"].set_index("patient")["dice"]
    np.testing.assert_allclose(got.sort_index(), expected.sort_index(), atol=1e-9)
    raw_summary = summary["variants"]["raw"]
    assert raw_summary["patient_dice"] == pytest.approx(got.mean())
    low, high = raw_summary["patient_dice_ci"]
    assert low <= raw_summary["patient_dice"] <= high
    card = ModelCard.load(trained / "README.md")
    results = card.data.eval_results
    assert {r.metric_type for r in results} == {"patient_dice", "tumor_slice_dice", "hd95"}


def test_classifier_trains_and_evaluates(sample_data, tmp_path: Path) -> None:
    cfg = TrainConfig(arch="resnet18", loss="bce", pos_weight="auto", input_size=128, **{**TINY, "epochs": 1})
    out = train(cfg, sample_data, tmp_path / "resnet18", progress=False)
    summary = evaluate(out, sample_data)
    assert summary["task"] == "classify"
    raw = summary["variants"]["raw"]
    assert raw["tp"] + raw["fp"] + raw["tn"] + raw["fn"] == raw["slices"]
    assert json.loads((out / "config.json").read_text())["training"]["pos_weight_value"] > 1


def test_resume_after_kill_replays_the_same_run(sample_data, tmp_path: Path, monkeypatch) -> None:
    cfg = TrainConfig(arch="cnn-encdec", **TINY)
    straight = train(cfg, sample_data, tmp_path / "straight", progress=False)

    real_save = training.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        raise KeyboardInterrupt  # the process is killed right after epoch 0 is checkpointed

    monkeypatch.setattr(training, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, sample_data, tmp_path / "resumed", progress=False)
    assert not (tmp_path / "resumed").exists()  # nothing half-written where the artifact goes
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    resumed = train(cfg, sample_data, tmp_path / "resumed", progress=False)

    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    pd.testing.assert_frame_equal(
        pd.read_csv(straight / "epochs.csv").drop(columns=["train_seconds", "seconds"]),
        pd.read_csv(resumed / "epochs.csv").drop(columns=["train_seconds", "seconds"]),
    )


def test_resume_refuses_a_different_config(sample_data, tmp_path: Path) -> None:
    train(TrainConfig(arch="cnn-encdec", **{**TINY, "epochs": 1}), sample_data, tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="different config"):
        train(TrainConfig(arch="cnn-encdec", **{**TINY, "epochs": 1, "lr": 0.1}), sample_data, tmp_path / "a")


@pytest.mark.parametrize(
    "values, message",
    [({"arch": "unet", "bogus": 1}, "unknown config keys"), ({"arch": "unet", "loss": "l2"}, "unknown loss")],
)
def test_bad_config_is_rejected(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(values)


def test_cli_unknown_model_is_a_clear_error(capsys, sample_root) -> None:
    assert train_main(["no-such-net", "--data-dir", str(sample_root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'no-such-net'") and "unet-mini" in err and "Traceback" not in err


def test_cli_bad_data_dir_is_a_clear_error(capsys, tmp_path: Path) -> None:
    assert train_main(["unet-mini", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "error:" in capsys.readouterr().err


def test_cli_trains_with_overrides(sample_root, tmp_path: Path) -> None:
    out = tmp_path / "cli-model"
    args = ["cnn-encdec", "--data-dir", str(sample_root), "--out", str(out), "--epochs", "1", "--no-progress",
            "--set", "k=3", "--set", "limit_train_batches=1", "--set", "batch_size=4",
            "--set", "val_patients=null"]  # the shipped protocol wants 18 validation patients
    assert train_main(args) == 0
    t = json.loads((out / "config.json").read_text())["training"]
    assert (t["epochs"], t["k"], t["batch_size"]) == (1, 3, 4)


def test_shipped_configs_are_valid() -> None:
    from train.__main__ import CONFIG_DIR, load_config
    from lgg_core.models import list_models

    configs = sorted(CONFIG_DIR.glob("*.toml"))
    assert configs
    for path in configs:
        cfg = TrainConfig.from_dict(load_config(str(path)))
        assert cfg.arch in list_models(), path


def test_segmenter_trained_on_downsized_slices_predicts_full_size(sample_data, tmp_path: Path) -> None:
    cfg = TrainConfig(arch="cnn-encdec", input_size=128, **{**TINY, "epochs": 1, "crop": None})
    out = train(cfg, sample_data, tmp_path / "small", progress=False)
    model, config = load_artifact(out)
    probs = predict(model, sample_data.images[:3], "segment", input_size=config["training"]["input_size"])
    assert probs.shape == (3, 256, 256)
    assert evaluate(out, sample_data)["variants"]["raw"]["slices"] == len(
        sample_data.rows(load_split(out / "split.json")["roles"]["test"]))


# --- re-runs, leftovers, permissions and write errors --------------------------------------------------------


def _cli_args(sample_root: Path, out: Path, *extra: str) -> list[str]:
    """A 1-epoch, 1-batch ``python -m train`` command: about a second on a CPU."""
    return ["cnn-encdec", "--data-dir", str(sample_root), "--out", str(out), "--epochs", "1", "--no-progress",
            "--set", "k=3", "--set", "limit_train_batches=1", "--set", "batch_size=4", "--set", "val_patients=null", *extra]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_rerun_refuses_to_replace_an_evaluated_artifact(sample_root, sample_data, tmp_path: Path, capsys) -> None:
    out = tmp_path / "model"
    assert train_main(_cli_args(sample_root, out)) == 0
    evaluate(out, sample_data)
    capsys.readouterr()
    assert train_main(_cli_args(sample_root, out)) == 2
    err = _one_error_line(capsys)
    assert str(out) in err and "eval/summary.json" in err and "--overwrite" in err
    assert (out / "eval" / "summary.json").is_file() and ModelCard.load(out / "README.md").data.eval_results
    with pytest.raises(FileExistsError, match="overwrite=True"):
        train(TrainConfig(arch="cnn-encdec"), sample_data, out, progress=False)
    assert train_main(_cli_args(sample_root, out, "--overwrite")) == 0
    assert (out / "config.json").is_file() and not (out / "eval").exists()


def test_stale_copies_of_the_artifact_are_removed(sample_root, tmp_path: Path) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead, alive = finished.pid, os.getppid()
    for name in (f".model.tmp-{dead}", f"model.old-{dead}-1700000000", f"model.old-{alive}-1700000000",
                 f".model.tmp-{alive}", f".other.tmp-{dead}"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"partial")
    # A live pid on a copy older than this process: the pid was reused, the copy is a crashed write's.
    os.utime(tmp_path / f"model.old-{alive}-1700000000", (1_700_000_000, 1_700_000_000))
    assert train_main(_cli_args(sample_root, tmp_path / "model")) == 0
    # Kept: a copy that a live process may still be writing, and another artifact's.
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [f".model.tmp-{alive}", f".other.tmp-{dead}", "model", "model.run"]


def test_artifact_files_are_readable_by_other_users(sample_data, tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        out = train(TrainConfig(arch="cnn-encdec", **ONE_EPOCH), sample_data, tmp_path / "m", progress=False)
    finally:
        os.umask(old_umask)
    # safetensors (model.safetensors) and tempfile.mkstemp (split.json) create 0600 files whatever the umask.
    assert out.stat().st_mode & 0o777 == 0o755
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert modes == dict.fromkeys(["README.md", "config.json", "epochs.csv", "model.safetensors", "split.json"], 0o644)


def test_cli_disk_full_while_checkpointing_is_one_clear_error(
    sample_root, tmp_path: Path, capsys, monkeypatch
) -> None:
    def full(path, state):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(training, "save_checkpoint", full)
    out = tmp_path / "model"
    assert train_main(_cli_args(sample_root, out)) == 2
    err = _one_error_line(capsys)
    assert "No space left on device for the checkpoint" in err and str(out) + ".run" in err and "--run-dir" in err


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
], ids=["python", "safetensors"])
def test_disk_full_while_writing_the_artifact_leaves_nothing(
    error: Exception, sample_data, tmp_path: Path, monkeypatch
) -> None:
    real_save_split = artifacts.save_split

    def full(path, **split):
        real_save_split(path, **split)  # the weights and the split are written, then the disk is full
        raise error

    monkeypatch.setattr(artifacts, "save_split", full)
    out = tmp_path / "model"
    with pytest.raises(OSError, match=f"No space left on device for the artifact {re.escape(str(out))}.*--out") as raised:
        train(TrainConfig(arch="cnn-encdec", **ONE_EPOCH), sample_data, out, progress=False)
    assert raised.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.run"]  # no partial copy takes space


def test_cli_corrupt_checkpoint_is_one_clear_error(sample_root, tmp_path: Path, capsys) -> None:
    checkpoint = tmp_path / "run" / "checkpoint"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.json").write_text('{"__dict__": []}')
    (checkpoint / "tensors.safetensors").write_bytes(b"\x00" * 3)
    args = _cli_args(sample_root, tmp_path / "model", "--run-dir", str(tmp_path / "run"))
    assert train_main(args) == 2
    err = _one_error_line(capsys)
    assert f"checkpoint {checkpoint}" in err and "--no-resume" in err
    assert train_main([*args, "--no-resume"]) == 0  # the advice works


def test_card_is_titled_by_the_artifact_not_its_architecture(trained: Path, tmp_path: Path) -> None:
    from lgg_core.serving.artifacts import artifact_name, read_config, render_card

    config = read_config(trained)
    assert artifact_name(tmp_path / "unet-mini-transfer") == "unet-mini-transfer"
    assert artifact_name(tmp_path / "cv" / "unet" / "fold-3") == "unet, fold-3"
    card = render_card(config, name="unet-mini-transfer")
    assert "\n# unet-mini-transfer\n" in card and "model_name: unet-mini-transfer" in card
    assert "\n# unet-mini\n" in (trained / "README.md").read_text()  # written by training, after its folder
