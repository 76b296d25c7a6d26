"""Dataset discovery, validation, decoding and the array cache."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import lgg_core.data.cache as cache
from lgg_core.data.cache import fingerprint, load_dataset
from lgg_core.data.reader import (
    DatasetError,
    SliceName,
    find_root,
    parse_slice_name,
    read_image,
    read_mask,
    read_metadata,
    resolve_data_dir,
    scan,
)

SAMPLE_COUNTS = {  # folder: (slices, slices with tumor), counted once from the published files
    "TCGA_CS_4944_20010208": (20, 9),
    "TCGA_DU_A5TU_19980312": (23, 11),
    "TCGA_EZ_7264_20010816": (24, 6),
    "TCGA_FG_5964_20010511": (26, 6),
    "TCGA_HT_7855_19951020": (21, 11),
}
PATIENT = "TCGA_CS_0001_20000101"  # first patient folder of the synthetic_root fixture


# --- the real sample ---------------------------------------------------------------------------------


def test_sample_scan_matches_readme(sample_root: Path) -> None:
    index = scan(sample_root)
    assert list(index.columns) == ["patient", "folder", "institution", "slice", "image", "mask"]
    assert len(index) == 114
    assert index["patient"].nunique() == 5
    assert index.groupby("folder").size().to_dict() == {f: n for f, (n, _) in SAMPLE_COUNTS.items()}
    assert index.equals(index.sort_values(["patient", "slice"], ignore_index=True))
    first = index.iloc[0]
    assert (first["patient"], first["institution"], first["slice"]) == ("TCGA_CS_4944", "CS", 1)
    assert first["image"] == "TCGA_CS_4944_20010208/TCGA_CS_4944_20010208_1.tif"
    assert first["mask"] == "TCGA_CS_4944_20010208/TCGA_CS_4944_20010208_1_mask.tif"
    # Slices are numbered 1..n without gaps in every patient.
    for _, group in index.groupby("patient"):
        assert group["slice"].tolist() == list(range(1, len(group) + 1))


def test_sample_decodes_with_tumor_counts(sample_data) -> None:
    assert sample_data.images.shape == (114, 256, 256, 3) and sample_data.images.dtype == np.uint8
    assert sample_data.masks.shape == (114, 256, 256) and sample_data.masks.dtype == bool
    index = sample_data.index
    assert int(index["has_tumor"].sum()) == 43
    assert index.groupby("folder")["has_tumor"].sum().to_dict() == {f: t for f, (_, t) in SAMPLE_COUNTS.items()}
    assert (index["tumor_pixels"].to_numpy() == sample_data.masks.sum(axis=(1, 2))).all()
    assert (index["has_tumor"] == (index["tumor_pixels"] > 0)).all()
    assert len(sample_data.dataset_hash) == 64


def test_rows_and_patients(sample_data) -> None:
    assert sample_data.patients == sorted(f.rsplit("_", 1)[0] for f in SAMPLE_COUNTS)
    rows = sample_data.rows(["TCGA_DU_A5TU", "TCGA_CS_4944"])
    assert rows.tolist() == list(range(20 + 23))
    assert set(sample_data.index.loc[rows, "patient"]) == {"TCGA_CS_4944", "TCGA_DU_A5TU"}
    with pytest.raises(DatasetError, match="TCGA_XX_0000"):
        sample_data.rows(["TCGA_XX_0000"])


def test_read_image_and_mask(sample_root: Path) -> None:
    row = scan(sample_root).iloc[10]
    image = read_image(sample_root / row["image"])
    mask = read_mask(sample_root / row["mask"])
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    assert mask.shape == (256, 256) and mask.dtype == bool


# --- locating the root --------------------------------------------------------------------------------


def test_find_root_accepts_root_parent_and_kaggle_nesting(sample_root: Path, tmp_path: Path) -> None:
    assert find_root(sample_root) == sample_root
    assert find_root(sample_root.parent) == sample_root
    nested = tmp_path / "lgg-mri-segmentation" / "kaggle_3m"
    nested.mkdir(parents=True)
    for folder in sample_root.iterdir():
        (nested / folder.name).symlink_to(folder)
    assert find_root(tmp_path) == nested
    assert len(scan(find_root(tmp_path))) == 114


@pytest.mark.parametrize("kind", ["missing", "file", "no_patients"])
def test_find_root_errors_name_the_path(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "data"
    if kind == "file":
        path.write_text("not a folder")
    elif kind == "no_patients":
        (path / "kaggle_3m" / "images").mkdir(parents=True)
    with pytest.raises(DatasetError, match="data") as excinfo:
        find_root(path)
    assert str(path) in str(excinfo.value)


def test_resolve_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_data_dir(tmp_path) == tmp_path
    monkeypatch.setenv("LGG_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("LGG_DATA_DIR")
    with pytest.raises(DatasetError) as excinfo:
        resolve_data_dir()
    for hint in ("--data-dir", "LGG_DATA_DIR", "lgg download"):
        assert hint in str(excinfo.value)


# --- names and metadata ---------------------------------------------------------------------------------


def test_parse_slice_name() -> None:
    assert parse_slice_name("TCGA_CS_4941_19960909_12_mask.tif") == SliceName(
        "TCGA_CS_4941", "TCGA_CS_4941_19960909", "CS", 12, True
    )
    assert parse_slice_name("TCGA_DU_A5TU_19980312_3.tif") == SliceName(
        "TCGA_DU_A5TU", "TCGA_DU_A5TU_19980312", "DU", 3, False
    )


@pytest.mark.parametrize(
    "name",
    [
        "TCGA_CS_4941_19960909.tif",
        "TCGA_CS_4941_19960909_0.tif",
        "TCGA_CS_4941_19960909_1_mask.png",
        "TCGA_CS_4941_1996_1.tif",
        "TCGA_CS_4941_19960909_1_seg.tif",
        "image_1.tif",
    ],
)
def test_parse_slice_name_rejects(name: str) -> None:
    with pytest.raises(DatasetError, match=name.replace(".", r"\.")):
        parse_slice_name(name)


def test_read_metadata_comma_semicolon_and_absent(sample_root: Path, tmp_path: Path) -> None:
    comma = read_metadata(sample_root)
    assert len(comma) == 5 and comma.columns[0] == "Patient"
    assert "TCGA_DU_A5TU" in set(comma["Patient"])
    (tmp_path / "data.csv").write_text((sample_root / "data.csv").read_text().replace(",", ";"))
    pd.testing.assert_frame_equal(read_metadata(tmp_path), comma)
    assert read_metadata(tmp_path / "elsewhere") is None


# --- validation errors on crafted folders ---------------------------------------------------------------


def _empty_folder(root: Path) -> Path:
    folder = root / "TCGA_FG_0003_20020202"
    folder.mkdir()
    (folder / "notes.txt").write_text("no slices here")
    return folder


def _image_without_mask(root: Path) -> Path:
    (root / PATIENT / f"{PATIENT}_2_mask.tif").unlink()
    return root / PATIENT / f"{PATIENT}_2.tif"


def _mask_without_image(root: Path) -> Path:
    (root / PATIENT / f"{PATIENT}_3.tif").unlink()
    return root / PATIENT / f"{PATIENT}_3_mask.tif"


def _unexpected_name(root: Path) -> Path:
    path = root / PATIENT / f"{PATIENT}_1_flair.tif"
    path.write_bytes(b"")
    return path


def _foreign_patient_file(root: Path) -> Path:
    path = root / PATIENT / "TCGA_HT_A002_20010101_9.tif"
    shutil.copyfile(root / "TCGA_HT_A002_20010101" / "TCGA_HT_A002_20010101_1.tif", path)
    return path


@pytest.mark.parametrize(
    "corrupt", [_empty_folder, _image_without_mask, _mask_without_image, _unexpected_name, _foreign_patient_file]
)
def test_scan_errors_name_the_file(synthetic_root: Path, corrupt: Callable[[Path], Path]) -> None:
    bad = corrupt(synthetic_root)
    with pytest.raises(DatasetError) as excinfo:
        scan(synthetic_root)
    assert str(bad) in str(excinfo.value)


def test_scan_ignores_non_tif_and_dot_files(synthetic_root: Path) -> None:
    (synthetic_root / PATIENT / ".DS_Store").write_bytes(b"\0\1")
    (synthetic_root / PATIENT / f"._{PATIENT}_1.tif").write_bytes(b"\0\1")
    (synthetic_root / PATIENT / "notes.txt").write_text("x")
    assert len(scan(synthetic_root)) == 6


def _image_path(root: Path) -> Path:
    return root / PATIENT / f"{PATIENT}_2.tif"


def _mask_path(root: Path) -> Path:
    return root / PATIENT / f"{PATIENT}_2_mask.tif"


def _wrong_shape(root: Path) -> Path:
    tifffile.imwrite(_image_path(root), np.zeros((128, 128, 3), np.uint8))
    return _image_path(root)


def _sixteen_bit(root: Path) -> Path:
    tifffile.imwrite(_image_path(root), np.zeros((256, 256, 3), np.uint16))
    return _image_path(root)


def _rgba(root: Path) -> Path:
    tifffile.imwrite(_image_path(root), np.zeros((256, 256, 4), np.uint8))
    return _image_path(root)


def _mask_with_channels(root: Path) -> Path:
    tifffile.imwrite(_mask_path(root), np.zeros((256, 256, 3), np.uint8))
    return _mask_path(root)


def _non_binary_mask(root: Path) -> Path:
    tifffile.imwrite(_mask_path(root), (np.arange(256 * 256) % 3 * 100).astype(np.uint8).reshape(256, 256))
    return _mask_path(root)


def _truncated(root: Path) -> Path:
    data = _image_path(root).read_bytes()
    _image_path(root).write_bytes(data[: len(data) // 2])
    return _image_path(root)


def _text_file(root: Path) -> Path:
    _mask_path(root).write_text("this is not a TIFF file")
    return _mask_path(root)


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (_wrong_shape, r"shape \(128, 128, 3\), expected \(256, 256, 3\)"),
        (_sixteen_bit, "uint16, expected uint8"),
        (_rgba, r"shape \(256, 256, 4\)"),
        (_mask_with_channels, r"shape \(256, 256, 3\), expected \(256, 256\)"),
        (_non_binary_mask, r"not binary: found values \[0, 100, 200\]"),
        (_truncated, "cannot read"),
        (_text_file, "cannot read"),
    ],
)
def test_decode_errors_name_the_file(
    synthetic_root: Path, tmp_path: Path, corrupt: Callable[[Path], Path], expected: str
) -> None:
    bad = corrupt(synthetic_root)
    with pytest.raises(DatasetError, match=expected) as excinfo:
        load_dataset(synthetic_root, cache_dir=tmp_path / "cache", progress=False)
    assert str(bad) in str(excinfo.value)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_mask_zero_one_accepted(tmp_path: Path) -> None:
    mask = np.zeros((256, 256), np.uint8)
    mask[5:9, 5:9] = 1
    tifffile.imwrite(tmp_path / "m.tif", mask)
    assert read_mask(tmp_path / "m.tif").sum() == 16


def _cut_in_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _cut_before_directory(data: bytes) -> bytes:
    # The published files keep their image directory at the end, so a cut one points past its own end.
    return data[:4] + (2 * len(data)).to_bytes(4, "little") + data[8 : len(data) // 2]


@pytest.mark.parametrize("cut", [_cut_in_half, _cut_before_directory])
def test_truncated_real_slice(cut, sample_root: Path, tmp_path: Path) -> None:
    data = (sample_root / "TCGA_CS_4944_20010208" / "TCGA_CS_4944_20010208_5.tif").read_bytes()
    path = tmp_path / "TCGA_CS_4944_20010208_5.tif"
    path.write_bytes(cut(data))
    with pytest.raises(DatasetError, match="truncated") as excinfo:
        read_image(path)
    assert str(path) in str(excinfo.value)


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        read_image(tmp_path / "absent.tif")


# --- the cache ----------------------------------------------------------------------------------------


def _forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: Path) -> None:
        raise AssertionError(f"decoded {path} although the cache is valid")

    monkeypatch.setattr(cache, "read_image", fail)
    monkeypatch.setattr(cache, "read_mask", fail)


def test_second_load_uses_cache(sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset(sample_root, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("lgg-*"))) == 1
    _forbid_decoding(monkeypatch)
    second = load_dataset(sample_root, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.masks, first.masks)
    pd.testing.assert_frame_equal(second.index, first.index)
    assert second.dataset_hash == first.dataset_hash
    assert second.root == sample_root


def test_cache_hit_maps_the_arrays_and_keeps_writes_private(sample_root: Path, tmp_path: Path) -> None:
    first = load_dataset(sample_root, cache_dir=tmp_path, progress=False)
    second = load_dataset(sample_root, cache_dir=tmp_path, progress=False)
    assert isinstance(second.images, np.memmap) and isinstance(second.masks, np.memmap)
    second.images[0] = 0  # a consumer writing into its arrays must not change what the next load reads
    third = load_dataset(sample_root, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(third.images[0], first.images[0])
    assert first.images[0].any()


def test_first_load_reports_progress_and_cache_hits_do_not(sample_root: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    data = load_dataset(sample_root, cache_dir=tmp_path, progress=False, on_progress=lambda *a: calls.append(a))
    n = len(data.index)
    assert calls[-1] == (n, n) and all(t == n for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) == -(-n // cache.PROGRESS_EVERY)
    calls.clear()
    load_dataset(sample_root, cache_dir=tmp_path, progress=False, on_progress=lambda *a: calls.append(a))
    assert calls == []


def test_cache_dir_from_environment(synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LGG_CACHE_DIR", str(tmp_path / "env-cache"))
    load_dataset(synthetic_root, progress=False)
    assert len(list((tmp_path / "env-cache").glob("lgg-*"))) == 1


def test_no_cache_writes_nothing(synthetic_root: Path, tmp_path: Path) -> None:
    data = load_dataset(synthetic_root, cache_dir=tmp_path / "cache", use_cache=False, progress=False)
    assert len(data.index) == 6 and data.index["has_tumor"].sum() == 2
    assert not (tmp_path / "cache").exists()


def test_corrupt_cache_is_rebuilt(synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset(synthetic_root, cache_dir=tmp_path, progress=False)
    (cache_dir,) = tmp_path.glob("lgg-*")
    cache_file = cache_dir / "images.npy"
    cache_file.write_bytes(cache_file.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="rebuilding"):
        rebuilt = load_dataset(synthetic_root, cache_dir=tmp_path, progress=False)
    assert rebuilt.dataset_hash == first.dataset_hash
    np.testing.assert_array_equal(rebuilt.images, first.images)
    _forbid_decoding(monkeypatch)
    assert load_dataset(synthetic_root, cache_dir=tmp_path, progress=False).dataset_hash == first.dataset_hash


def test_changed_file_changes_fingerprint_and_rebuilds(synthetic_root: Path, tmp_path: Path) -> None:
    first = load_dataset(synthetic_root, cache_dir=tmp_path, progress=False)
    before = fingerprint(synthetic_root, first.index)
    path = synthetic_root / PATIENT / f"{PATIENT}_1.tif"
    tifffile.imwrite(path, np.full((256, 256, 3), 7, np.uint8))
    assert fingerprint(synthetic_root, first.index) != before
    second = load_dataset(synthetic_root, cache_dir=tmp_path, progress=False)
    assert (second.images[0] == 7).all()
    assert second.dataset_hash != first.dataset_hash
    assert len(list(tmp_path.glob("lgg-*"))) == 2


def test_dataset_hash_is_content_only(synthetic_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "kaggle_3m"
    shutil.copytree(synthetic_root, copy)
    os.utime(copy / PATIENT / f"{PATIENT}_1.tif", ns=(0, 0))
    original = load_dataset(synthetic_root, cache_dir=tmp_path / "a", progress=False)
    copied = load_dataset(copy, cache_dir=tmp_path / "b", progress=False)
    # The cache key is content-only too: a copy with other mtimes can share its cache file.
    assert fingerprint(copy, copied.index) == fingerprint(synthetic_root, original.index)
    assert copied.dataset_hash == original.dataset_hash


def test_replaced_mask_of_same_size_and_mtime_is_seen(synthetic_root: Path, tmp_path: Path) -> None:
    # In the published dataset every mask has one size and every file one mtime, so only the bytes can tell.
    first = load_dataset(synthetic_root, cache_dir=tmp_path, progress=False)
    empty = synthetic_root / PATIENT / f"{PATIENT}_1_mask.tif"
    tumor = synthetic_root / PATIENT / f"{PATIENT}_2_mask.tif"
    before = empty.stat()
    assert tumor.stat().st_size == before.st_size
    shutil.copyfile(tumor, empty)
    os.utime(empty, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (empty.stat().st_size, empty.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    second = load_dataset(synthetic_root, cache_dir=tmp_path, progress=False)
    assert second.index["has_tumor"].sum() == first.index["has_tumor"].sum() + 1
    assert second.masks[0].any() and second.dataset_hash != first.dataset_hash
    assert len(list(tmp_path.glob("lgg-*"))) == 2


def test_cache_is_readable_by_other_users(synthetic_root: Path, tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        load_dataset(synthetic_root, cache_dir=tmp_path / "cache", progress=False)
    finally:
        os.umask(old_umask)
    (cache,) = (tmp_path / "cache").iterdir()  # and no temp folder left behind
    assert cache.name.startswith("lgg-") and cache.stat().st_mode & 0o777 == 0o755
    assert {f.name: f.stat().st_mode & 0o777 for f in cache.iterdir()} == dict.fromkeys(
        ["images.npy", "masks.npy", "meta.json"], 0o644)


def test_unwritable_cache_dir_still_loads(synthetic_root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="continuing without it"):
        data = load_dataset(synthetic_root, cache_dir=blocker / "cache", progress=False)
    assert len(data.index) == 6
