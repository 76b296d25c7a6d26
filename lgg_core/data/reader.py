"""Locate, scan, validate and read the LGG MRI Segmentation dataset (Buda et al., ``kaggle_3m``).

Layout::

    kaggle_3m/
      data.csv                                   # one row per patient (optional)
      TCGA_<inst>_<id>_<date>/
        TCGA_<inst>_<id>_<date>_<n>.tif          # 256x256x3 uint8: pre-contrast, FLAIR, post-contrast
        TCGA_<inst>_<id>_<date>_<n>_mask.tif     # 256x256 uint8 in {0, 255}
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import tifffile

IMAGE_SHAPE = (256, 256, 3)
MASK_SHAPE = (256, 256)
DATA_DIR_ENV = "LGG_DATA_DIR"
INDEX_COLUMNS = ["patient", "folder", "institution", "slice", "image", "mask"]

_FOLDER_RE = re.compile(r"^(?P<patient>TCGA_(?P<institution>[A-Za-z0-9]+)_[A-Za-z0-9]+)_\d{8}$")
_SLICE_RE = re.compile(
    r"^(?P<folder>(?P<patient>TCGA_(?P<institution>[A-Za-z0-9]+)_[A-Za-z0-9]+)_\d{8})"
    r"_(?P<slice>[1-9]\d*)(?P<mask>_mask)?\.tif$"
)


class DatasetError(ValueError):
    """The dataset on disk is missing, malformed or does not match the expected layout."""


class SliceName(NamedTuple):
    """Parts of a slice file name such as ``TCGA_CS_4941_19960909_12_mask.tif``."""

    patient: str
    folder: str
    institution: str
    slice: int
    is_mask: bool


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Return the data directory from the argument, else from ``$LGG_DATA_DIR``.

    Raises:
        DatasetError: neither is set.
    """
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
    if data_dir is None:
        raise DatasetError(
            "no dataset location given: pass --data-dir PATH (or data_dir=...), set the "
            f"{DATA_DIR_ENV} environment variable, or fetch the data with `lgg download`"
        )
    return Path(data_dir).expanduser()


def _has_patient_folders(path: Path) -> bool:
    return any(p.is_dir() and p.name.startswith("TCGA_") for p in path.iterdir())


def find_root(path: str | Path) -> Path:
    """Return the ``kaggle_3m`` folder given it, its parent, or a folder holding ``lgg-mri-segmentation/kaggle_3m``.

    Raises:
        DatasetError: the path is missing, is a file, or holds no ``TCGA_*`` patient folders.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"dataset folder not found: {path}")
    if not path.is_dir():
        raise DatasetError(f"expected a dataset folder but got a file: {path}")
    for candidate in (path, path / "kaggle_3m", path / "lgg-mri-segmentation" / "kaggle_3m"):
        if candidate.is_dir() and _has_patient_folders(candidate):
            return candidate
    raise DatasetError(
        f"no TCGA_* patient folders in {path} (nor in its kaggle_3m/ or lgg-mri-segmentation/kaggle_3m/): "
        "expected the kaggle_3m folder of the LGG MRI Segmentation dataset"
    )


def parse_slice_name(name: str) -> SliceName:
    """Split a slice file name into patient, folder, institution, 1-based slice number and mask flag.

    Raises:
        DatasetError: the name does not follow ``TCGA_<inst>_<id>_<date>_<n>[_mask].tif``.
    """
    match = _SLICE_RE.match(name)
    if match is None:
        raise DatasetError(
            f"unexpected file name {name!r}: expected TCGA_<inst>_<id>_<date>_<n>.tif or ..._<n>_mask.tif"
        )
    return SliceName(
        patient=match["patient"],
        folder=match["folder"],
        institution=match["institution"],
        slice=int(match["slice"]),
        is_mask=match["mask"] is not None,
    )


def _patient_folders(root: Path) -> list[Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("TCGA_"))
    seen: dict[str, Path] = {}
    for folder in folders:
        match = _FOLDER_RE.match(folder.name)
        if match is None:
            raise DatasetError(f"unexpected patient folder name {folder}: expected TCGA_<inst>_<id>_<date>")
        # Two scan dates of one patient would let that patient straddle a patient-level split.
        if match["patient"] in seen:
            raise DatasetError(f"patient {match['patient']} has two folders: {seen[match['patient']]} and {folder}")
        seen[match["patient"]] = folder
    return folders


def _scan_folder(root: Path, folder: Path) -> list[dict]:
    tifs = [
        p for p in sorted(folder.iterdir())
        # Dot files are OS metadata (.DS_Store, macOS ._ resource forks), never slices.
        if p.is_file() and p.suffix.lower() == ".tif" and not p.name.startswith(".")
    ]
    if not tifs:
        raise DatasetError(f"patient folder has no .tif slices: {folder}")
    images: dict[int, tuple[SliceName, str]] = {}
    masks: dict[int, str] = {}
    for path in tifs:
        try:
            parsed = parse_slice_name(path.name)
        except DatasetError as err:
            raise DatasetError(f"{err} (file {path})") from None
        if parsed.folder != folder.name:
            raise DatasetError(f"file {path} belongs to patient folder {parsed.folder}, not {folder.name}")
        relative = path.relative_to(root).as_posix()
        if parsed.is_mask:
            masks[parsed.slice] = relative
        else:
            images[parsed.slice] = (parsed, relative)
    if unpaired := images.keys() - masks.keys():
        image = Path(images[min(unpaired)][1])
        raise DatasetError(f"image without mask: {root / image} (expected {image.stem}_mask.tif beside it)")
    if unpaired := masks.keys() - images.keys():
        mask = Path(masks[min(unpaired)])
        raise DatasetError(
            f"mask without image: {root / mask} (expected {mask.name.replace('_mask.tif', '.tif')} beside it)"
        )
    return [
        {
            "patient": parsed.patient,
            "folder": parsed.folder,
            "institution": parsed.institution,
            "slice": n,
            "image": image,
            "mask": masks[n],
        }
        for n, (parsed, image) in sorted(images.items())
    ]


def scan(root: str | Path) -> pd.DataFrame:
    """List every slice under a ``kaggle_3m`` root without decoding any image.

    Returns:
        One row per slice with columns patient, folder, institution, slice, image, mask (paths relative
        to ``root``, POSIX style), sorted by patient then slice.

    Raises:
        DatasetError: empty patient folder, unpaired image or mask, unexpected .tif name, or a file in
            another patient's folder.
    """
    root = Path(root)
    rows = [row for folder in _patient_folders(root) for row in _scan_folder(root, folder)]
    if not rows:
        raise DatasetError(f"no TCGA_* patient folders in {root}")
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    return index.sort_values(["patient", "slice"], ignore_index=True)


def _read_tiff(path: Path) -> np.ndarray:
    try:
        with tifffile.TiffFile(path) as tif:
            # A file cut before its image directory opens with no pages rather than failing.
            array = tif.asarray() if tif.pages else None
    except FileNotFoundError:
        raise DatasetError(f"file not found: {path}") from None
    except Exception as err:
        # tifffile signals corrupt or truncated input with many exception types (ValueError, IndexError,
        # struct.error, ...): all of them mean the same thing here.
        raise DatasetError(f"cannot read {path} as a TIFF image ({type(err).__name__}: {err})") from err
    if array is None:
        raise DatasetError(f"cannot read {path} as a TIFF image: no image directory (truncated or corrupt file)")
    return array


def read_image(path: str | Path) -> np.ndarray:
    """Read a slice image as a (256, 256, 3) uint8 array.

    Raises:
        DatasetError: unreadable file, wrong dtype or wrong shape.
    """
    path = Path(path)
    image = _read_tiff(path)
    if image.dtype != np.uint8:
        raise DatasetError(f"image {path} has dtype {image.dtype}, expected uint8 (8-bit)")
    if image.shape != IMAGE_SHAPE:
        raise DatasetError(f"image {path} has shape {image.shape}, expected {IMAGE_SHAPE} (3 channels)")
    return image


def read_mask(path: str | Path) -> np.ndarray:
    """Read a slice mask as a (256, 256) bool array; the file holds {0, 255} (or {0, 1}).

    Raises:
        DatasetError: unreadable file, wrong dtype, wrong shape or values other than {0, 255} / {0, 1}.
    """
    path = Path(path)
    mask = _read_tiff(path)
    if mask.dtype == np.bool_:
        # A 1-bit TIFF decodes to bool: binary by construction.
        mask = mask.view(np.uint8)
    if mask.dtype != np.uint8:
        raise DatasetError(f"mask {path} has dtype {mask.dtype}, expected uint8")
    if mask.shape != MASK_SHAPE:
        raise DatasetError(f"mask {path} has shape {mask.shape}, expected {MASK_SHAPE}")
    values = set(np.unique(mask).tolist())
    if not (values <= {0, 255} or values <= {0, 1}):
        shown = sorted(values)[:10]
        raise DatasetError(f"mask {path} is not binary: found values {shown}, expected {{0, 255}} or {{0, 1}}")
    return mask > 0


def read_metadata(root: str | Path) -> pd.DataFrame | None:
    """Read ``data.csv`` (per-patient genomic clusters and clinical data), sniffing ``,`` or ``;``.

    Returns:
        The table, or None when the root has no data.csv.

    Raises:
        DatasetError: the file cannot be parsed.
    """
    path = Path(root) / "data.csv"
    if not path.is_file():
        return None
    try:
        with path.open(encoding="utf-8-sig") as f:
            header = f.readline()
        sep = ";" if header.count(";") > header.count(",") else ","
        return pd.read_csv(path, sep=sep, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DatasetError(f"cannot parse {path} as a comma or semicolon separated table: {err}") from err
