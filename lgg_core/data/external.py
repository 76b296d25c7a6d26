"""Read a researcher's predicted masks (a folder, a ``.zip`` or an ``.npz``) safely, or say why not.

Predictions made elsewhere (nnU-Net, MONAI, a notebook) arrive as files named like the dataset's masks
(``TCGA_CS_4941_19960909_12_mask.png`` or ``.tif``; the date may be left out), or as one ``.npz`` holding a
(slices, 256, 256) volume per patient (``TCGA_CS_4941``), slice 1 first. Values are binary (0/1, 0/255, booleans) or
probabilities in [0, 1], which are thresholded at 0.5 (above is tumor, as the zoo's models are).

An archive comes from a stranger: it is judged by its table of contents before anything is inflated, every member
is read with a bounded read (a header that lies about its size is caught), nothing is written to disk, and names
that climb out of the archive, absolute paths, symlinks, duplicates and more than :data:`MAX_FILES` files are
refused with one message. Each mask file is decoded by the upload decoder (:func:`lgg_core.data.upload.decode`),
which bounds its pixels before decoding.
"""
from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from lgg_core.data.reader import MASK_SHAPE

MAX_FILES = 5000  # the dataset has 3,929 slices
MAX_FILE_BYTES = 8 << 20  # one mask: 256² float64 is 0.5 MiB; a PNG a few KB
MAX_TOTAL_BYTES = 1 << 30  # every member together, once inflated
MAX_VOLUME_BYTES = 256 << 20  # one patient's volume in an .npz (88 slices of 256² float64 are 46 MiB)
_NAME_RE = re.compile(r"^(?P<patient>TCGA_[A-Za-z0-9]+_[A-Za-z0-9]+)(?:_\d{8})?_(?P<slice>[1-9]\d*)_mask"
                      r"\.(?:png|tif|tiff)$", re.IGNORECASE)
_PATIENT_RE = re.compile(r"^TCGA_[A-Za-z0-9]+_[A-Za-z0-9]+$")
_SHOWN = 5  # names listed in a message before "and N more"


class PredictedMasksError(ValueError):
    """The predictions cannot be scored; the message says why, for the user."""


@dataclass
class Predictions:
    """Predicted masks by patient and slice number.

    Attributes:
        masks: patient -> slice number (1-based) -> (256, 256) bool mask.
        notes: what was done to the values (thresholded probabilities) and what was left out (other files).
    """

    masks: dict[str, dict[int, np.ndarray]]
    notes: list[str] = field(default_factory=list)

    @property
    def patients(self) -> list[str]:
        return sorted(self.masks)


def listing(names: list[str] | set[str]) -> str:
    """The first few names, and how many more."""
    names = sorted(names)
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def binary_mask(values: np.ndarray, where: str) -> tuple[np.ndarray, bool]:
    """``(mask, thresholded)``: a 256² bool mask from binary values or probabilities in [0, 1].

    Raises:
        PredictedMasksError: another size, several channels that differ, NaN, or values neither binary nor in [0, 1].
    """
    if values.ndim == 3 and values.shape[-1] in (3, 4) and all(
            np.array_equal(values[..., 0], values[..., c]) for c in range(1, 3)):
        values = values[..., 0]  # a grey mask saved as RGB(A)
    if values.shape != MASK_SHAPE:
        raise PredictedMasksError(f"{where} is {'x'.join(map(str, values.shape))}, not a 256x256 mask like the "
                                  "dataset's slices")
    if values.dtype == bool:
        return values, False
    if np.issubdtype(values.dtype, np.floating):
        if np.isnan(values).any():
            raise PredictedMasksError(f"{where} holds NaN values")
        if values.min() < 0 or values.max() > 1:
            raise PredictedMasksError(f"{where} holds values from {values.min():g} to {values.max():g}: masks must be "
                                      "binary (0/1 or 0/255) or probabilities in [0, 1]")
        return values > 0.5, bool(np.any((values != 0) & (values != 1)))
    present = set(np.unique(values).tolist())
    for top in (1, 255):
        if present <= {0, top}:
            return values == top, False
    raise PredictedMasksError(f"{where} is neither binary (0/1 or 0/255) nor probabilities in [0, 1]: it holds "
                              f"{len(present)} values ({', '.join(map(str, sorted(present)[:6]))}…)")


def _unsafe_member(info: zipfile.ZipInfo, max_bytes: int) -> str | None:
    """Why a zip member may not be read (None: it may)."""
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive or ".." in parts:
        return f"{name!r} points outside the archive"
    if stat.S_ISLNK(info.external_attr >> 16):
        return f"{name!r} is a symbolic link"
    if info.flag_bits & 0x1:
        return f"{name!r} is encrypted"
    if info.file_size > max_bytes:
        return f"{name!r} is too large ({info.file_size >> 20} MiB once inflated)"
    return None


def _mask_member_bytes(name: str) -> int:
    return MAX_VOLUME_BYTES if name.endswith(".npy") else MAX_FILE_BYTES


def checked_members(archive: zipfile.ZipFile, max_files: int = MAX_FILES,
                    member_bytes: Callable[[str], int] = _mask_member_bytes,
                    max_total_bytes: int = MAX_TOTAL_BYTES) -> list[zipfile.ZipInfo]:
    """An archive's files, after checking its table of contents as a whole and before anything is inflated.

    Args:
        archive: An open archive from a stranger.
        max_files: The most files it may hold.
        member_bytes: The most bytes a member of that name may inflate to.
        max_total_bytes: The most bytes all members together may inflate to.

    Raises:
        PredictedMasksError: empty, too many files, a member that escapes the archive, is a link, is encrypted or too
            large, a name held twice, or too many bytes in all.
    """
    infos = [i for i in archive.infolist() if not i.is_dir()]
    if not infos:
        raise PredictedMasksError("the archive is empty")
    if len(infos) > max_files:
        raise PredictedMasksError(f"the archive holds {len(infos):,} files; at most {max_files:,} are accepted")
    if problems := [why for i in infos if (why := _unsafe_member(i, member_bytes(i.filename)))]:
        raise PredictedMasksError(f"the archive is refused: {problems[0]}"
                               + (f" (and {len(problems) - 1} more such members)" if len(problems) > 1 else ""))
    names = [i.filename for i in infos]
    if len(set(names)) < len(names):
        twice = {n for n in names if names.count(n) > 1}
        raise PredictedMasksError(f"the archive holds the same name twice: {listing(twice)}")
    total = sum(i.file_size for i in infos)
    if total > max_total_bytes:
        raise PredictedMasksError(f"the archive inflates to {total >> 20} MiB; at most {max_total_bytes >> 20} MiB "
                                  "are accepted")
    return infos


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, never more than it declares (a lying header is a corrupt archive)."""
    try:
        with archive.open(info) as f:
            data = f.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as err:
        raise PredictedMasksError(f"cannot read {info.filename!r} from the archive: it is damaged or uses an "
                                  "unsupported compression") from err
    if len(data) != info.file_size:
        raise PredictedMasksError(f"{info.filename!r} holds more or less data than the archive declares (damaged?)")
    return data


def _folder_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(name, path) of every file under ``folder``; symlinks are refused, not followed."""
    count = 0
    for top, dirs, files in os.walk(folder, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(top) / name
            if path.is_symlink():
                raise PredictedMasksError(f"{path.relative_to(folder)} is a symbolic link; copy the file itself")
        for name in files:
            count += 1
            if count > MAX_FILES:
                raise PredictedMasksError(f"{folder} holds more than {MAX_FILES:,} files (one mask per slice of the "
                                          "dataset is expected)")
            yield name, Path(top) / name


def _add(masks: dict[str, dict[int, np.ndarray]], patient: str, number: int, mask: np.ndarray, where: str) -> None:
    if number in masks.setdefault(patient, {}):
        raise PredictedMasksError(f"slice {number} of {patient} is given twice (again in {where})")
    masks[patient][number] = mask


def _from_files(files: Iterator[tuple[str, bytes | Path]]) -> Predictions:
    """Masks from named files (their bytes, or a path read with a bounded read)."""
    from lgg_core.data.upload import UploadError, decode  # with pydicom, ~0.4 s that the Leaderboard need not pay

    masks: dict[str, dict[int, np.ndarray]] = {}
    other, thresholded = [], 0
    total = 0
    for name, content in files:
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        match = _NAME_RE.match(base)
        if not match:
            if not base.startswith(".") and "__MACOSX" not in name:
                other.append(base)
            continue
        if isinstance(content, Path):
            with content.open("rb") as f:
                content = f.read(MAX_FILE_BYTES + 1)
            if len(content) > MAX_FILE_BYTES:
                raise PredictedMasksError(f"{base} is larger than {MAX_FILE_BYTES >> 20} MiB: not a 256x256 mask")
            total += len(content)
            if total > MAX_TOTAL_BYTES:
                raise PredictedMasksError(f"the files add up to more than {MAX_TOTAL_BYTES >> 20} MiB")
        try:
            pixels = decode(base, content, [], [])
        except UploadError as err:
            raise PredictedMasksError(f"{base}: {err}") from err
        mask, was_probability = binary_mask(pixels, base)
        thresholded += was_probability
        _add(masks, match["patient"], int(match["slice"]), mask, base)
    if not masks:
        raise PredictedMasksError("no mask files found: name them like the dataset's masks, e.g. "
                                  "TCGA_CS_4941_19960909_12_mask.png (or .tif), or give one .npz of per-patient volumes"
                               + (f"; found {listing(other)}" if other else ""))
    notes = [f"{thresholded} masks held probabilities, thresholded at 0.5"] if thresholded else []
    if other:
        notes.append(f"ignored {len(other)} files not named like a mask: {listing(other)}")
    return Predictions(masks, notes)


def _check_npy_header(npz: np.lib.npyio.NpzFile, key: str) -> None:
    """Refuse a member by its header before numpy allocates what the header declares."""
    with npz.zip.open(f"{key}.npy") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    if len(shape) != 3 or tuple(shape[1:]) != MASK_SHAPE:
        raise PredictedMasksError(f"{key} is {'x'.join(map(str, shape))}: a (slices, 256, 256) volume is expected")
    if dtype.hasobject or dtype.kind not in "biuf":
        raise PredictedMasksError(f"{key} holds {dtype} values, not numbers: masks must be binary or probabilities")
    if shape[0] * dtype.itemsize * MASK_SHAPE[0] * MASK_SHAPE[1] > MAX_VOLUME_BYTES:
        raise PredictedMasksError(f"{key} declares {shape[0]} slices of {dtype}: more than "
                                  f"{MAX_VOLUME_BYTES >> 20} MiB for one patient")


def _from_npz(data: bytes) -> Predictions:
    """Per-patient volumes from an .npz (never unpickled; its members are checked as any archive's first)."""
    masks: dict[str, dict[int, np.ndarray]] = {}
    thresholded = 0
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            for key in npz.files:
                if not _PATIENT_RE.match(key):
                    raise PredictedMasksError(f"the .npz key {key!r} is not a patient id such as TCGA_CS_4941")
                _check_npy_header(npz, key)
                volume = npz[key]
                for i, plane in enumerate(volume, start=1):
                    mask, was_probability = binary_mask(plane, f"{key} slice {i}")
                    thresholded += was_probability
                    _add(masks, key, i, mask, "the .npz")
    except PredictedMasksError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:  # object arrays, truncated members
        raise PredictedMasksError("cannot read the .npz: it is damaged or holds objects instead of numeric "
                                  "arrays") from err
    if not masks:
        raise PredictedMasksError("the .npz holds no patient volumes")
    notes = [f"{thresholded} slices held probabilities, thresholded at 0.5"] if thresholded else []
    return Predictions(masks, notes)


def read_predictions_bytes(name: str, data: bytes) -> Predictions:
    """Predictions from an uploaded ``.zip`` of mask files, or an ``.npz``, held in memory.

    Raises:
        PredictedMasksError: see the module docstring.
    """
    if not data:
        raise PredictedMasksError("the file is empty (0 bytes)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise PredictedMasksError(f"{name} is not a .zip or .npz archive (or it is damaged)") from err
    with archive:
        infos = checked_members(archive)
        if name.lower().endswith(".npz"):
            return _from_npz(data)
        return _from_files((info.filename, read_member(archive, info)) for info in infos)


def read_predictions(path: str | Path) -> Predictions:
    """Predictions from a folder of mask files, a ``.zip`` of them, or an ``.npz`` of per-patient volumes.

    Raises:
        PredictedMasksError: see the module docstring.
        FileNotFoundError: nothing at ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder or file")
    if path.is_dir():
        return _from_files(_folder_files(path))
    size = path.stat().st_size
    if size > MAX_TOTAL_BYTES:
        raise PredictedMasksError(f"{path} is {size >> 20} MiB; at most {MAX_TOTAL_BYTES >> 20} MiB are accepted")
    return read_predictions_bytes(path.name, path.read_bytes())
