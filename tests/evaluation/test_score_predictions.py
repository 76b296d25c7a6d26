"""Scoring a researcher's predictions: known scores computed independently, every format, and a hostile corpus."""
from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image
from scipy.ndimage import binary_dilation

from lgg_core.cli import main as lgg_main
from lgg_core.data.external import MAX_FILES, PredictedMasksError, read_predictions, read_predictions_bytes
from lgg_core.evaluation import external
from lgg_core.evaluation.evaluator import test_patients as held_out
from lgg_core.evaluation.reference import build_reference, fold0_patients, load_reference, others
from lgg_core.serving.predictions import load_masks

REPO = Path(__file__).resolve().parents[2]


def _dilated(data) -> dict[str, np.ndarray]:
    """Every patient's ground truth grown by one pixel in-plane: a prediction whose Dice is known."""
    return {p: np.stack([binary_dilation(m) for m in data.masks[data.rows([p])]]) for p in data.patients}


def _independent_dice(pred: np.ndarray, true: np.ndarray) -> float:
    total = int(pred.sum()) + int(true.sum())
    return 1.0 if total == 0 else 2 * int((pred & true).sum()) / total


def _names(data, patient: str) -> list[str]:
    folder = data.index.loc[data.index["patient"] == patient, "folder"].iloc[0]
    return [f"{folder}_{n}_mask" for n in data.index.loc[data.index["patient"] == patient, "slice"]]


def _write_folder(data, volumes: dict[str, np.ndarray], root: Path, ext: str = ".png") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for patient, volume in volumes.items():
        for name, plane in zip(_names(data, patient), volume):
            if ext == ".png":
                Image.fromarray(plane.astype(np.uint8) * 255).save(root / f"{name}.png")
            else:
                tifffile.imwrite(root / f"{name}{ext}", plane)
    return root


def _zip_of(folder: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for file in sorted(folder.rglob("*")):
            z.write(file, f"preds/{file.relative_to(folder)}")
    return path


@pytest.fixture(scope="module")
def known(sample_data, tmp_path_factory) -> dict:
    """The dilated ground truth in the three formats, with its independently computed per-patient Dice."""
    root = tmp_path_factory.mktemp("preds")
    volumes = _dilated(sample_data)
    folder = _write_folder(sample_data, volumes, root / "png")
    npz = root / "volumes.npz"
    np.savez_compressed(npz, **volumes)
    expected = {p: _independent_dice(v, sample_data.masks[sample_data.rows([p])]) for p, v in volumes.items()}
    return {"folder": folder, "zip": _zip_of(folder, root / "preds.zip"), "npz": npz, "expected": expected}


@pytest.mark.parametrize("form", ["folder", "zip", "npz"])
def test_known_prediction_scores_equal_an_independent_computation(known, sample_data, form: str) -> None:
    pred = read_predictions(known[form])
    scored = external.score(pred, sample_data, external.split_patients("cv", sample_data, load_reference()))
    dice = scored.dice().set_index("patient")["dice"]
    assert dice.to_dict() == pytest.approx(known["expected"])
    assert 0.5 < dice.min() < 1.0  # a prediction that is neither empty nor perfect
    summary = scored.summary["variants"]["raw"]
    assert summary["patient_dice"] == pytest.approx(np.mean(list(known["expected"].values())))
    assert set(scored.patients["variant"]) == {"raw", "lcc"}


def test_stored_masks_of_an_evaluated_artifact_score_as_lgg_evaluate_did(zoo_catalog: Path) -> None:
    from lgg_core.data.cache import load_dataset
    from lgg_core.data.external import Predictions
    from lgg_core.serving.records import DEMO_DIR

    data = load_dataset(DEMO_DIR, progress=False)
    artifact = zoo_catalog.parent / "unet-mini"
    stored = load_masks(artifact / "eval" / "predictions.npz")
    masks: dict[str, dict[int, np.ndarray]] = {}
    for patient, number in zip(stored.patients, stored.slices):
        masks.setdefault(str(patient), {})[int(number)] = stored.mask(patient, number)
    scored = external.score(Predictions(masks), data, held_out(artifact))
    evaluated = pd.read_csv(artifact / "eval" / "patients.csv")
    for variant in ("raw", "lcc"):
        mine = scored.dice(variant).set_index("patient")["dice"]
        theirs = evaluated[evaluated["variant"] == variant].set_index("patient")["dice"]
        assert mine.to_dict() == pytest.approx(theirs.to_dict())


def test_probabilities_are_thresholded_at_one_half_and_said(sample_data, tmp_path: Path) -> None:
    patient = sample_data.patients[0]
    true = sample_data.masks[sample_data.rows([patient])]
    probs = np.where(true, 0.7, 0.2).astype(np.float32)
    probs[0, 0, 0] = 0.5  # exactly one half is not tumor
    folder = _write_folder(sample_data, {patient: probs}, tmp_path / "p", ext=".tif")
    pred = read_predictions(folder)
    assert any("thresholded at 0.5" in note for note in pred.notes)
    scored = external.score(pred, sample_data, [patient])
    assert scored.dice()["dice"].iloc[0] == pytest.approx(1.0)


def test_cli_prints_the_table_writes_the_csv_and_a_record(known, sample_root, tmp_path: Path, capsys,
                                                          zoo_catalog: Path) -> None:
    out, record = tmp_path / "dice.csv", tmp_path / "record"
    args = ["score-predictions", str(known["zip"]), "--split", "cv", "--data-dir", str(sample_root),
            "--out", str(out), "--save", str(record), "--name", "mine", "--catalog", str(zoo_catalog)]
    assert lgg_main(args) == 0
    printed = capsys.readouterr().out
    assert "mine on 5 patients (cv)" in printed and "| raw |" in printed
    table = pd.read_csv(out)
    assert list(table.columns) == ["patient", "dice"]
    assert table.set_index("patient")["dice"].to_dict() == pytest.approx(known["expected"])
    assert json.loads((record / "config.json").read_text())["kind"] == "predictions"
    summary = json.loads((record / "eval" / "summary.json").read_text())
    assert summary["variants"]["raw"]["patient_dice"] == pytest.approx(table["dice"].mean())
    assert len(load_masks(record / "eval" / "predictions.npz").patients) == len(
        pd.read_csv(record / "eval" / "slices.csv").query("variant == 'raw'"))


def test_fold0_compares_with_every_evaluated_segmenter_holm_over_k(sample_data) -> None:
    ours = pd.DataFrame({"patient": list("abcdefgh"), "dice": np.linspace(0.6, 0.9, 8)})
    others = {"better": ours.assign(dice=ours["dice"] + 0.05), "same": ours.copy(),
              "worse": ours.assign(dice=ours["dice"] - np.linspace(0.1, 0.3, 8)), "elsewhere":
              pd.DataFrame({"patient": ["z"], "dice": [0.5]})}
    table = external.compare(ours, others, n_boot=500).set_index("model")
    assert table.loc["better", "verdict"] == "better better" and table.loc["better", "mean_diff"] == pytest.approx(-0.05)
    assert table.loc["worse", "verdict"] == "predictions better"
    assert table.loc["same", "verdict"] == "no significant difference"
    assert table.loc["elsewhere", "verdict"] == "no shared patients"
    # Holm over the three tests that had patients: the smallest p is multiplied by 3.
    assert table["p_holm"].min() == pytest.approx(min(3 * table["p"].min(), 1.0))


# --- bad input: one clear message, nothing else happens -------------------------------------------------------------

def _zip_bytes(members: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _png(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


MASK = _png(np.zeros((256, 256), np.uint8))
NAME = "TCGA_CS_4941_19960909_1_mask.png"


def _duplicate_names() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr(NAME, MASK)
        z.writestr(NAME, MASK)
    return buffer.getvalue()


def _lying_header() -> bytes:
    """A member that declares 10 bytes but inflates to 64 KiB."""
    data = bytearray(_zip_bytes({NAME: bytes(65536)}))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature)
        data[at + offset:at + offset + 4] = (10).to_bytes(4, "little")
    return bytes(data)


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _huge_npy_header() -> bytes:
    """An .npz whose member's header declares 100,000 float64 slices over a few bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (100_000, 256, 256)})
    return _zip_bytes({"TCGA_CS_4941.npy": b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + bytes(64)})


HOSTILE = {
    "climbs out": ("p.zip", lambda: _zip_bytes({"../" + NAME: MASK}), "outside the archive"),
    "absolute": ("p.zip", lambda: _zip_bytes({"/tmp/" + NAME: MASK}), "outside the archive"),
    "windows drive": ("p.zip", lambda: _zip_bytes({"C:/x/" + NAME: MASK}), "outside the archive"),
    "symlink": ("p.zip", lambda: _zip_bytes({NAME: b"/etc/passwd"}, symlinks=(NAME,)), "symbolic link"),
    "duplicates": ("p.zip", _duplicate_names, "same name twice"),
    "too many files": ("p.zip", lambda: _zip_bytes({f"x/{i}.txt": b"" for i in range(MAX_FILES + 1)}),
                       "at most 5,000"),
    "empty archive": ("p.zip", lambda: _zip_bytes({}), "archive is empty"),
    "zip bomb": ("p.zip", lambda: _zip_bytes({NAME: bytes(64 << 20)}), "too large"),
    "lying header": ("p.zip", _lying_header, "damaged"),
    "not an archive": ("p.zip", lambda: b"hello", "not a .zip or .npz"),
    "empty file": ("p.zip", lambda: b"", "empty"),
    "no masks": ("p.zip", lambda: _zip_bytes({"notes.txt": b"hi"}), "no mask files found"),
    "corrupt mask": ("p.zip", lambda: _zip_bytes({NAME: b"\x89PNG\r\n\x1a\nbroken"}), NAME),
    "another size": ("p.zip", lambda: _zip_bytes({NAME: _png(np.zeros((128, 128), np.uint8))}), "not a 256x256"),
    "not binary": ("p.zip", lambda: _zip_bytes({NAME: _png(np.arange(256 * 256).reshape(256, 256).astype(np.uint8)
                                                           % 3)}), "neither binary"),
    "pickled npz": ("p.npz", lambda: _npz(TCGA_CS_4941=np.full((1, 256, 256), {"a": 1}, dtype=object)), "not numbers"),
    "npz declares a huge volume": ("p.npz", lambda: _huge_npy_header(), "MiB for one patient"),
    "npz key": ("p.npz", lambda: _npz(something=np.zeros((2, 256, 256))), "not a patient id"),
    "npz shape": ("p.npz", lambda: _npz(TCGA_CS_4941=np.zeros((256, 256))), "(slices, 256, 256)"),
    "npz range": ("p.npz", lambda: _npz(TCGA_CS_4941=np.full((1, 256, 256), 3.0)), "from 3 to 3"),
    "npz nan": ("p.npz", lambda: _npz(TCGA_CS_4941=np.full((1, 256, 256), np.nan)), "NaN"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_archive_gets_one_clear_message(case: str) -> None:
    name, make, message = HOSTILE[case]
    with pytest.raises(PredictedMasksError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_predictions_bytes(name, make())


def test_folder_with_a_symlink_is_refused_not_followed(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / NAME).symlink_to("/etc/passwd")
    with pytest.raises(PredictedMasksError, match="symbolic link"):
        read_predictions(tmp_path / "p")


def test_the_same_slice_twice_is_refused(tmp_path: Path) -> None:
    data = _zip_bytes({NAME: MASK, NAME.replace(".png", ".tif").replace("_19960909", ""): MASK})
    with pytest.raises(PredictedMasksError, match="slice 1 of TCGA_CS_4941 is given twice"):
        read_predictions_bytes("p.zip", data)


def _coverage_error(sample_data, volumes: dict[str, np.ndarray], patients: list[str]) -> str:
    from lgg_core.data.external import Predictions

    masks = {p: {i + 1: m for i, m in enumerate(v)} for p, v in volumes.items()}
    with pytest.raises(PredictedMasksError) as err:
        external.score(Predictions(masks), sample_data, patients)
    return str(err.value)


def test_missing_and_extra_patients_and_slices_are_listed(sample_data) -> None:
    volumes = _dilated(sample_data)
    first, second, *_ = sample_data.patients
    assert f"have no predictions: {second}" in _coverage_error(sample_data, {first: volumes[first]}, [first, second])
    assert f"not in the split ({second})" in _coverage_error(sample_data, volumes, sample_data.patients[:1] +
                                                             [p for p in sample_data.patients if p != second][1:])
    short = {**volumes, first: volumes[first][:-1]}
    n = len(volumes[first])
    assert f"{first} lacks predictions for 1 of its {n} slices: {n}" in _coverage_error(
        sample_data, short, sample_data.patients)
    longer = {**volumes, first: np.concatenate([volumes[first], volumes[first][:1]])}
    assert f"{first} has no slices numbered {n + 1}" in _coverage_error(sample_data, longer, sample_data.patients)


def test_cli_bad_archive_is_one_error_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_zip_bytes({"../" + NAME: MASK}))
    before = set(os.listdir(tmp_path))
    assert lgg_main(["score-predictions", str(bad), "--split", "fold0", "--out", str(tmp_path / "x.csv"),
                     "--save", str(tmp_path / "rec")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the archive is refused") and "Traceback" not in err
    assert set(os.listdir(tmp_path)) == before


def test_unknown_split_lists_the_valid_ones(sample_data) -> None:
    with pytest.raises(ValueError, match="valid: fold0, cv"):
        external.split_patients("fold7", sample_data, load_reference())


def test_fold0_is_the_zoo_test_fold_and_data_lacking_it_is_named(sample_data) -> None:
    reference = load_reference()
    zoo_split = json.loads((REPO / "artifacts" / "unet-resnet50-transfer" / "split.json").read_text())
    assert fold0_patients(reference) == sorted(zoo_split["roles"]["test"])
    with pytest.raises(ValueError, match="of fold 0's 22 test patients are not in"):
        external.split_patients("fold0", sample_data, reference)


def test_bundled_reference_matches_the_catalog_records() -> None:
    bundled, built = load_reference(), build_reference(REPO / "models.toml")
    pd.testing.assert_frame_equal(bundled, built.reset_index(drop=True), check_dtype=False)
    assert set(others(bundled, "cv")) == {"unet-resnet50-transfer", "unet-resnet50-transfer, 8 + 8 epochs",
                                          "unet-mini, lgg-zoo-v2", "segnet, lgg-zoo-v2", "unet, lgg-zoo-v2",
                                          "attention-unet, lgg-zoo-v2"}
    assert all(len(t) == 110 for t in others(bundled, "cv").values())
    assert all(len(t) == 22 for t in others(bundled, "fold0").values())


def test_cli_compares_with_the_bundled_cv_runs_on_shared_patients(known, sample_root, capsys) -> None:
    assert lgg_main(["score-predictions", str(known["npz"]), "--split", "cv", "--data-dir", str(sample_root)]) == 0
    printed = capsys.readouterr().out
    assert "Holm over 6 tests" in printed and "| unet-resnet50-transfer | 5 |" in printed


def test_bundled_example_reproduces_the_champion_cv_scores(capsys) -> None:
    """demo/example-predictions.zip is the champion's CV masks of the demo patients (scripts/make_example_predictions.py):
    scored from files, they must give that run's Dice exactly (CI repeats this from an installed wheel)."""
    from lgg_core.data.cache import load_dataset
    from lgg_core.serving.records import DEMO_DIR

    data = load_dataset(DEMO_DIR, progress=False)
    reference = load_reference()
    scored = external.score(read_predictions(REPO / "demo" / "example-predictions.zip"), data,
                            external.split_patients("cv", data, reference))
    run = others(reference, "cv")["unet-resnet50-transfer"].set_index("patient")["dice"]
    mine = scored.dice().set_index("patient")["dice"]
    assert len(mine) == 3 and mine.to_dict() == pytest.approx(run[mine.index].to_dict(), abs=1e-12)
