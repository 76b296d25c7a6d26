"""The ``lgg`` command line: exit codes, output and error reporting."""
from __future__ import annotations

from pathlib import Path

import kagglehub
import pytest

from lgg_core.cli import build_parser, main
from lgg_core.data.splits import load_split


def _assert_clean_error(capsys: pytest.CaptureFixture[str], *fragments: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("error: ") or "\nerror: " in err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def test_check_sample(sample_root: Path, sample_data, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--data-dir", str(sample_root.parent)]) == 0
    out = capsys.readouterr().out
    for line in ("patients:      5", "slices:        114", "tumor slices:  43", "CS: 1, DU: 1, EZ: 1, FG: 1, HT: 1"):
        assert line in out
    assert f"dataset hash:  {sample_data.dataset_hash}" in out
    assert "data.csv, 5 rows" in out


def test_check_uses_environment(
    sample_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LGG_DATA_DIR", str(sample_root))
    assert main(["check", "--no-cache"]) == 0
    assert "slices:        114" in capsys.readouterr().out


def test_check_without_location(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 2
    _assert_clean_error(capsys, "--data-dir", "LGG_DATA_DIR", "lgg download")


def test_check_bad_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--data-dir", str(tmp_path)]) == 2
    _assert_clean_error(capsys, str(tmp_path))


def test_check_corrupt_slice(synthetic_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = synthetic_root / "TCGA_HT_A002_20010101" / "TCGA_HT_A002_20010101_3_mask.tif"
    bad.write_text("not a tiff")
    assert main(["check", "--data-dir", str(synthetic_root)]) == 2
    _assert_clean_error(capsys, str(bad))


def test_folds_writes_loadable_split(
    sample_root: Path, sample_data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "folds.json"
    assert main(["folds", "--data-dir", str(sample_root), "--k", "3", "--seed", "1", "--out", str(out)]) == 0
    split = load_split(out)
    assert (split["k"], split["seed"], split["dataset_hash"]) == (3, 1, sample_data.dataset_hash)
    assert sorted(split["folds"]) == sample_data.patients
    assert f"wrote {out}" in capsys.readouterr().out


def test_folds_too_many_folds(sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["folds", "--data-dir", str(sample_root), "--k", "7", "--out", str(tmp_path / "f.json")]) == 2
    _assert_clean_error(capsys, "5 patients")


def test_folds_unwritable_out(sample_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "folds.json"
    assert main(["folds", "--data-dir", str(sample_root), "--out", str(out)]) == 2
    _assert_clean_error(capsys, str(out))


def test_parser_rejects_bad_k() -> None:
    with pytest.raises(SystemExit) as excinfo:
        build_parser().parse_args(["folds", "--k", "1", "--out", "x.json"])
    assert excinfo.value.code == 2


def test_download_mocked(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # kagglehub returns its cache folder, which holds lgg-mri-segmentation/kaggle_3m.
    downloaded = tmp_path / "kagglehub" / "versions" / "2"
    (downloaded / "lgg-mri-segmentation").mkdir(parents=True)
    synthetic_root.rename(downloaded / "lgg-mri-segmentation" / "kaggle_3m")
    calls = []
    monkeypatch.setattr(kagglehub, "dataset_download", lambda handle: calls.append(handle) or str(downloaded))

    assert main(["download"]) == 0
    assert capsys.readouterr().out.strip() == str(downloaded / "lgg-mri-segmentation" / "kaggle_3m")

    dest = tmp_path / "data"
    assert main(["download", "--dest", str(dest)]) == 0
    assert capsys.readouterr().out.strip() == str(dest / "kaggle_3m")
    assert len(list((dest / "kaggle_3m").glob("TCGA_*/*.tif"))) == 12
    assert calls == ["mateuszbuda/lgg-mri-segmentation"] * 2


def test_download_failure_explains_local_copy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def offline(handle: str) -> str:
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(kagglehub, "dataset_download", offline)
    assert main(["download"]) == 2
    _assert_clean_error(capsys, "Name or service not known", "--data-dir", "LGG_DATA_DIR")
