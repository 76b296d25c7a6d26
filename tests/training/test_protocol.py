"""The zoo's training protocol: institution-balanced validation, balanced epochs, classifier-initialised encoders,
shared configs, and composite artifacts that reference their trained parts instead of copying them."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lgg_core.cli import main as lgg_main
from lgg_core.data.dataset import BalancedSampler
from lgg_core.data.splits import fold_roles, load_split
from lgg_core.evaluation.evaluator import evaluate
from lgg_core.models import ArtifactError, LGGModel, assemble, init_encoder_from_classifier, init_from_artifact
from lgg_core.training.trainer import TrainConfig, check_weights_source, train
from lgg_core.serving.artifacts import inspect_artifact, load_artifact, write_reference
from lgg_core.serving.catalog import CatalogEntry
from lgg_core.serving.predictions import PredictionsError, load_masks, save_masks
from lgg_core.serving.records import _resolve, load_model, weights_problem
from train.__main__ import read_toml

# --- validation patients and epochs ------------------------------------------------------------------------------


def _institutions(n_per: dict[str, int]) -> dict[str, str]:
    return {f"{inst}_{i:02d}": inst for inst, n in n_per.items() for i in range(n)}


def test_validation_patients_follow_institution_shares() -> None:
    institutions = _institutions({"DU": 40, "HT": 30, "CS": 20, "FG": 8, "EZ": 2})
    folds = {p: i % 5 for i, p in enumerate(sorted(institutions))}
    roles = fold_roles(folds, 0, val_patients=18, seed=0, institutions=institutions)
    counts = Counter(institutions[p] for p in roles["val"])
    rest = Counter(institutions[p] for p in roles["train"] + roles["val"])
    assert len(roles["val"]) == 18 and sum(counts.values()) == 18
    for inst, n in rest.items():  # largest remainders: within one of the exact share
        assert abs(counts[inst] - 18 * n / sum(rest.values())) < 1, (inst, counts)
    assert not set(roles["val"]) & (set(roles["train"]) | set(roles["test"]))
    assert fold_roles(folds, 0, val_patients=18, seed=0, institutions=institutions) == roles
    assert fold_roles(folds, 0, val_patients=18, seed=1, institutions=institutions)["val"] != roles["val"]
    # Without institutions the old draw is unchanged (artifacts record their split, but reruns must agree).
    assert fold_roles(folds, 0, 0.1, 0) == fold_roles(folds, 0)


def test_validation_patients_bounds() -> None:
    folds = {f"P{i}": i % 2 for i in range(6)}
    with pytest.raises(ValueError, match="val_patients must be in 1..2"):
        fold_roles(folds, 0, val_patients=3)


def test_balanced_sampler_draws_all_tumor_slices_and_as_many_empty() -> None:
    has_tumor = np.zeros(100, bool)
    has_tumor[::4] = True  # 25 tumor, 75 empty
    sampler = BalancedSampler(has_tumor, seed=3)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        picked = list(sampler)
        assert len(picked) == len(sampler) == 50 and len(set(picked)) == 50
        assert set(np.flatnonzero(has_tumor)) <= set(picked) and has_tumor[picked].sum() == 25
        epochs.append(picked)
    assert epochs[0] != epochs[1]
    sampler.set_epoch(1)
    assert list(sampler) == epochs[1]  # a resumed run replays the same epoch
    shards = [BalancedSampler(has_tumor, seed=3, rank=r, world=2) for r in range(2)]
    for s in shards:
        s.set_epoch(1)
    a, b = (list(s) for s in shards)
    assert len(a) == len(b) == 25 and not set(a) & set(b) and set(a) | set(b) == set(epochs[1])


# --- configs -----------------------------------------------------------------------------------------------------


def test_config_extends_merges_and_rejects_cycles(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text('epochs = 8\nlr = 0.001\n[arch_kwargs]\nstandardize = true\n')
    (tmp_path / "m.toml").write_text('extends = "base.toml"\narch = "unet"\nlr = 0.01\n[arch_kwargs]\nbase_width = 24\n')
    assert read_toml(tmp_path / "m.toml") == {
        "epochs": 8, "lr": 0.01, "arch": "unet", "arch_kwargs": {"standardize": True, "base_width": 24}}
    (tmp_path / "loop.toml").write_text('extends = "loop.toml"\n')
    with pytest.raises(ValueError, match="extends itself"):
        read_toml(tmp_path / "loop.toml")


def test_a_list_of_bases_applies_each_in_turn(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text('epochs = 8\nlr = 0.001\n[arch_kwargs]\nstandardize = true\n')
    (tmp_path / "m.toml").write_text('extends = "base.toml"\narch = "unet"\n[arch_kwargs]\nbase_width = 24\n')
    (tmp_path / "delta.toml").write_text('protocol = "v2"\nlr = 0.002\n[arch_kwargs]\nstandardize = false\n')
    (tmp_path / "v2.toml").write_text('extends = ["m.toml", "delta.toml"]\nepochs = 4\n')
    assert read_toml(tmp_path / "v2.toml") == {"epochs": 4, "lr": 0.002, "arch": "unet", "protocol": "v2",
                                               "arch_kwargs": {"standardize": False, "base_width": 24}}


def test_every_trainable_registry_model_has_a_protocol_config() -> None:
    from lgg_core.models import list_models
    from train.__main__ import CONFIG_DIR, load_config

    composites = {"ensemble", "gated"}  # assembled from trained parts with `lgg assemble`
    protocols = {load_config(name).get("protocol") for name in set(list_models()) - composites}
    assert protocols == {"lgg-zoo-v1"}
    epochs = {load_config(str(p))["epochs"] for p in CONFIG_DIR.glob("*.toml")}
    assert epochs == {8}, "every model of the comparison trains for the same number of epochs"


def test_each_v2_config_is_its_v1_config_with_the_v2_changes() -> None:
    from train.__main__ import CONFIG_DIR, load_config, read_toml

    changes = read_toml(CONFIG_DIR / "protocol" / "segment-v2.toml")
    assert (changes["protocol"], changes["inputs"], changes["epochs"]) == ("lgg-zoo-v2", "flair-2.5d", 16)
    v2 = sorted(p.stem for p in (CONFIG_DIR / "v2").glob("*.toml"))
    assert len(v2) >= 5  # the architectures the comparison is about, cross-validated under v2
    for name in v2:
        assert load_config(f"v2/{name}") == {**load_config(name), **changes}, name


# --- encoder transfer --------------------------------------------------------------------------------------------


def test_encoder_starts_from_classifier_backbone(zoo_catalog: Path, tmp_path: Path) -> None:
    classifier = zoo_catalog.parent / "resnet18"
    segmenter = LGGModel("unet-resnet34", {"encoder_name": "resnet18"})
    assert init_encoder_from_classifier(segmenter, classifier) == len(segmenter.net.encoder.state_dict())
    source = load_file(classifier / "model.safetensors")
    copied = segmenter.net.encoder.state_dict()
    assert torch.equal(copied["layer3.1.conv2.weight"], source["net.layer3.1.conv2.weight"].float())
    with pytest.raises(ArtifactError, match="does not fit unet-resnet34"):  # ResNet-34 has more blocks
        init_encoder_from_classifier(LGGModel("unet-resnet34"), classifier)
    with pytest.raises(ArtifactError, match="not a classifier"):
        init_encoder_from_classifier(segmenter, zoo_catalog.parent / "cnn-encdec")


def test_encoder_source_must_not_have_seen_the_runs_held_out_patients(zoo_catalog: Path) -> None:
    classifier = zoo_catalog.parent / "resnet18"
    roles = load_split(classifier / "split.json")["roles"]
    check_weights_source(classifier, roles)  # the same fold: nothing leaks
    swapped = {**roles, "test": roles["train"][:2], "train": roles["test"] + roles["train"][2:]}
    with pytest.raises(ValueError, match=f"learned from {len(swapped['test'])} of this run's test patients"):
        check_weights_source(classifier, swapped)
    into_val = {**roles, "val": roles["train"][:1]}
    with pytest.raises(ValueError, match="1 of this run's validation patients"):
        check_weights_source(classifier, into_val)
    with pytest.raises(ArtifactError, match="no split.json"):
        check_weights_source(zoo_catalog.parent / "no-such-artifact", roles)


def test_a_run_continues_from_an_artifact_of_the_same_model_at_another_input_size(zoo_catalog: Path,
                                                                                   tmp_path: Path) -> None:
    from lgg_core.data.cache import load_dataset
    from lgg_core.serving.records import DEMO_DIR

    source = zoo_catalog.parent / "cnn-encdec"
    config = json.loads((source / "config.json").read_text())
    model = LGGModel("cnn-encdec", config["arch_kwargs"])
    assert init_from_artifact(model, source) == len(model.state_dict())
    assert torch.equal(model.state_dict()["net.0.weight"],
                       load_file(source / "model.safetensors")["net.0.weight"].float())
    with pytest.raises(ArtifactError, match="only the same model can continue"):
        init_from_artifact(LGGModel("cnn-encdec", {"base_width": 4}), source)
    # The tiny zoo's split (k=3, fold 0): a 1-step fine-tune at 64² starts from the 256² weights and records them.
    cfg = TrainConfig(arch="cnn-encdec", arch_kwargs=config["arch_kwargs"], k=3, epochs=1, batch_size=8,
                      limit_train_batches=1, lr=1e-9, mixed_precision=False, device="cpu", input_size=64,
                      init_from=str(source))
    out = train(cfg, load_dataset(DEMO_DIR, progress=False), tmp_path / "tuned", resume=False, progress=False)
    tuned = load_file(out / "model.safetensors")["net.0.weight"].float()
    assert torch.allclose(tuned, model.state_dict()["net.0.weight"], atol=1e-5)  # lr ~0: the start is the source
    assert json.loads((out / "config.json").read_text())["training"]["init_from"] == str(source)
    assert f"every weight of `{source}`" in (out / "README.md").read_text()
    leaky = TrainConfig(**{**cfg.__dict__, "fold": 1})  # fold 1 tests a patient the source trained on
    with pytest.raises(ValueError, match="learned from 1 of this run's test patients"):
        train(leaky, load_dataset(DEMO_DIR, progress=False), tmp_path / "leaky", resume=False, progress=False)


# --- composite artifacts that reference their parts --------------------------------------------------------------


@pytest.fixture
def parts(zoo_catalog: Path, tmp_path: Path) -> Path:
    """Copies of the tiny zoo's classifier and segmenter, side by side, plus a second classifier.

    The classifiers' recorded input size is dropped: a composite feeds its parts one tensor, so they must share it
    (ResNets run at any size; the tiny segmenter was trained on whole slices).
    """
    shutil.copytree(zoo_catalog.parent / "cnn-encdec", tmp_path / "cnn-encdec")
    for name in ("resnet18", "resnet18-b"):
        shutil.copytree(zoo_catalog.parent / "resnet18", tmp_path / name)
        config = json.loads((tmp_path / name / "config.json").read_text())
        config["training"]["input_size"] = None
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_gated_reference_loads_evaluates_and_copies_no_weights(parts: Path) -> None:
    from lgg_core.data.cache import load_dataset
    from lgg_core.serving.records import DEMO_DIR

    out = write_reference(parts / "gated", "gated", [parts / "resnet18", parts / "cnn-encdec"], threshold=0.3)
    assert not (out / "model.safetensors").exists()
    config, has_weights = inspect_artifact(out)
    assert has_weights and config["parts"] == ["../resnet18", "../cnn-encdec"]
    assert config["training"]["patients"] == json.loads((parts / "cnn-encdec" / "config.json").read_text())[
        "training"]["patients"]
    model, _ = load_artifact(out)
    direct = assemble("gated", [load_artifact(parts / n)[0] for n in ("resnet18", "cnn-encdec")], threshold=0.3)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), direct(x))
    data = load_dataset(DEMO_DIR, progress=False)
    summary = evaluate(out, data)
    assert summary["task"] == "segment" and (out / "eval" / "predictions.npz").is_file()
    assert "assembled from the artifacts resnet18, cnn-encdec" in (out / "README.md").read_text().replace("\n", " ")


def test_reference_without_part_weights_is_a_record_only(parts: Path) -> None:
    out = write_reference(parts / "ensemble", "ensemble", [parts / "resnet18", parts / "resnet18-b"])
    (parts / "resnet18-b" / "model.safetensors").unlink()
    assert inspect_artifact(out)[1] is False and inspect_artifact(parts / "resnet18-b")[1] is False
    with pytest.raises(FileNotFoundError, match="train/zoo.sh resnet18-b"):
        load_artifact(out)
    record = _resolve(CatalogEntry(name="ens", path=out))
    assert record.ok and not record.has_weights
    assert "weights are not bundled" in weights_problem(record)
    with pytest.raises(ValueError, match="weights are not bundled"):
        load_model(record)


def test_reference_rejects_foreign_parts_and_stale_configs(parts: Path, tmp_path_factory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    shutil.copytree(parts / "resnet18", elsewhere / "resnet18")
    with pytest.raises(ValueError, match="folders beside it"):
        write_reference(parts / "ens", "ensemble", [elsewhere / "resnet18"])
    out = write_reference(parts / "ens", "ensemble", [parts / "resnet18", parts / "resnet18-b"])
    config = json.loads((out / "config.json").read_text())
    config["parts"] = ["../../elsewhere/resnet18"]
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="not sibling"):
        inspect_artifact(out)
    out = write_reference(parts / "ens", "ensemble", [parts / "resnet18", parts / "resnet18-b"], overwrite=True)
    part = json.loads((parts / "resnet18-b" / "config.json").read_text())
    part["arch_kwargs"] = {"standardize": True}
    (parts / "resnet18-b" / "config.json").write_text(json.dumps(part))
    with pytest.raises(ArtifactError, match="no longer match"):
        inspect_artifact(out)


def test_reference_parts_must_share_a_split(parts: Path) -> None:
    split = json.loads((parts / "resnet18-b" / "split.json").read_text())
    split["roles"]["test"], split["roles"]["val"] = split["roles"]["val"], split["roles"]["test"]
    (parts / "resnet18-b" / "split.json").write_text(json.dumps(split))
    with pytest.raises(ValueError, match="differ in split"):
        write_reference(parts / "ens", "ensemble", [parts / "resnet18", parts / "resnet18-b"])
    config = json.loads((parts / "resnet18" / "config.json").read_text())
    config["training"]["input_size"] = 64
    (parts / "resnet18" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="differ in input size"):
        write_reference(parts / "g", "gated", [parts / "resnet18", parts / "cnn-encdec"])


def test_cli_assemble(parts: Path, capsys) -> None:
    assert lgg_main(["assemble", "ensemble", str(parts / "ens"), str(parts / "resnet18"), str(parts / "resnet18-b")]) == 0
    assert "lgg evaluate" in capsys.readouterr().out
    assert lgg_main(["assemble", "gated", str(parts / "g"), str(parts / "cnn-encdec"), str(parts / "resnet18")]) == 2
    assert "must be a 'classify' model" in capsys.readouterr().err


# --- stored predictions ------------------------------------------------------------------------------------------


def test_stored_masks_round_trip_and_bad_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((4, 32, 48)) > 0.8
    save_masks(tmp_path / "p.npz", np.array(["A", "B", "A", "B"]), np.array([2, 1, 1, 2]), {"raw": masks})
    stored = load_masks(tmp_path / "p.npz")
    assert np.array_equal(stored.volume("A"), masks[[2, 0]]) and np.array_equal(stored.mask("B", 2), masks[3])
    assert stored.mask("C", 1) is None and stored.volume("C") is None
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(PredictionsError, match="not a readable"):
        load_masks(tmp_path / "bad.npz")
    # Arrays that do not match the declared slices are refused before they are used.
    np.savez(tmp_path / "odd.npz", patient=np.array(["A"]), slice=np.array([1]), shape=np.array([32, 48]),
             mask_raw=np.zeros((1, 7), np.uint8))
    with pytest.raises(PredictionsError, match="not 1 packed"):
        load_masks(tmp_path / "odd.npz")


def test_evaluate_stores_the_test_masks(zoo_catalog: Path) -> None:
    folder = zoo_catalog.parent / "cnn-encdec"
    stored = load_masks(folder / "eval" / "predictions.npz")
    model, config = load_artifact(folder)
    from lgg_core.data.cache import load_dataset
    from lgg_core.serving.inference import predict
    from lgg_core.serving.records import DEMO_DIR

    data = load_dataset(DEMO_DIR, progress=False)
    test = json.loads((folder / "split.json").read_text())["roles"]["test"]
    for patient in test:
        probs = predict(model, data.images[data.rows([patient])], "segment", input_size=config["training"].get("input_size"))
        assert np.array_equal(stored.volume(patient), probs > 0.5)
    assert set(stored.packed) == {"raw", "tta"}


def test_readme_rows_name_protocol_cost_and_how_composites_are_made(parts: Path) -> None:
    from lgg_core.evaluation.leaderboard import leaderboard, leaderboard_row, markdown_tables
    from lgg_core.serving.records import read_eval

    config = json.loads((parts / "cnn-encdec" / "config.json").read_text())
    config["training"].update(protocol="lgg-zoo-v1", cpu_time_s=1500.0)
    (parts / "cnn-encdec" / "config.json").write_text(json.dumps(config))
    shutil.copytree(parts / "cnn-encdec", parts / "cnn-encdec-25d")
    config["training"].update(inputs="flair-2.5d", modality_dropout=0.15)
    (parts / "cnn-encdec-25d" / "config.json").write_text(json.dumps(config))
    write_reference(parts / "ens", "ensemble", [parts / "resnet18", parts / "resnet18-b"])
    from lgg_core.data.cache import load_dataset
    from lgg_core.serving.records import DEMO_DIR

    evaluate(parts / "ens", load_dataset(DEMO_DIR, progress=False))
    records = [_resolve(CatalogEntry(name=n, path=parts / n))
               for n in ("cnn-encdec", "cnn-encdec-25d", "resnet18", "ens")]
    evaluated = [(r, read_eval(r)[0]) for r in records]
    text = markdown_tables(evaluated)
    seg_row = next(line for line in text.splitlines() if line.startswith("| `cnn-encdec`"))
    assert "lgg-zoo-v1: " in seg_row and "25 CPU-min" in seg_row and "input" not in seg_row
    assert "| gated by " in text and not seg_row.endswith("| – | `train/zoo.sh cnn-encdec` |")
    other = next(line for line in text.splitlines() if line.startswith("| `cnn-encdec-25d`"))
    assert "input FLAIR of slices n−1, n, n+1, modality dropout 0.15" in other
    # The classifiers take the three sequences: they gate no model taking other inputs, in the app or here.
    assert other.endswith("| – | `train/zoo.sh cnn-encdec-25d` |")
    ens_row = next(line for line in text.splitlines() if line.startswith("| `ens`"))
    assert "assembled from `resnet18`, `resnet18-b`" in ens_row
    assert "`lgg assemble ensemble artifacts/ens artifacts/resnet18 artifacts/resnet18-b`" in ens_row
    table = leaderboard([leaderboard_row(r, t, None) for r, t in evaluated]).set_index("model")
    assert table.loc["cnn-encdec", "protocol"] == "lgg-zoo-v1" and table.loc["cnn-encdec", "train_cpu_min"] == 25
    assert table.loc["resnet18", "protocol"] == "earlier recipe"


def test_every_config_ships_in_the_package() -> None:
    """A non-editable install carries every config ``python -m train`` can load (pyproject's package-data)."""
    import tomllib

    from train.__main__ import CONFIG_DIR

    train_dir = CONFIG_DIR.parent
    pyproject = tomllib.loads((train_dir.parent / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["train"]
    assert set(CONFIG_DIR.rglob("*.toml")) <= {path for glob in globs for path in train_dir.glob(glob)}
