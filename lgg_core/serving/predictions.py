"""A model's predicted masks on its test patients, bit-packed beside its eval tables (``eval/predictions.npz``).

They let the dashboard show a model's held-out predictions (Compare, Patient viewer, failure cases) when its weights
are not bundled: at one bit per pixel and zlib on top, 811 test slices of 256² take 70–88 KB instead of the weights'
tens of MB.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE_NAME = "predictions.npz"
# An untrusted artifact (a Hub repo in the catalog) must not make the app allocate without bound.
MAX_SLICES = 20_000
MAX_FILE_BYTES = 64 * 2**20
MAX_SIDE = 512


class PredictionsError(ValueError):
    """A predictions file that cannot be used; the message names it and why."""


@dataclass(frozen=True)
class StoredMasks:
    """Predicted masks by (patient, slice number) for each stored variant (e.g. ``raw``, ``tta``)."""

    patients: np.ndarray
    slices: np.ndarray
    shape: tuple[int, int]
    packed: dict[str, np.ndarray]

    def rows(self, patient: str) -> np.ndarray:
        """Positions of the patient's slices, in slice order."""
        hits = np.flatnonzero(self.patients == patient)
        return hits[np.argsort(self.slices[hits], kind="stable")]

    def mask(self, patient: str, number: int, variant: str = "raw") -> np.ndarray | None:
        """The (H, W) bool mask of one slice, or None when it was not stored."""
        hits = np.flatnonzero((self.patients == patient) & (self.slices == number))
        return self._unpack(hits, variant)[0] if len(hits) else None

    def volume(self, patient: str, variant: str = "raw") -> np.ndarray | None:
        """The patient's (N, H, W) bool masks in slice order, or None when the patient was not stored."""
        rows = self.rows(patient)
        return self._unpack(rows, variant) if len(rows) else None

    def _unpack(self, rows: np.ndarray, variant: str) -> np.ndarray:
        if variant not in self.packed:
            raise KeyError(f"no {variant!r} masks stored; stored: {', '.join(self.packed)}")
        h, w = self.shape
        return np.unpackbits(self.packed[variant][rows], axis=1, count=h * w).reshape(len(rows), h, w).astype(bool)


def save_masks(path: str | Path, patients: np.ndarray, slices: np.ndarray, masks: dict[str, np.ndarray]) -> None:
    """Write ``masks`` (variant -> (N, H, W) bool) for the N slices named by ``patients`` and ``slices``."""
    n = len(patients)
    if any(m.shape[0] != n or m.ndim != 3 for m in masks.values()) or len(slices) != n:
        raise ValueError("every mask stack must be (N, H, W) with N = len(patients) = len(slices)")
    shape = next(iter(masks.values())).shape[1:]
    payload = {f"mask_{v}": np.packbits(m.reshape(n, -1).astype(bool), axis=1) for v, m in masks.items()}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, patient=np.asarray(patients, dtype=str), slice=np.asarray(slices, dtype=np.int32),
                        shape=np.asarray(shape, dtype=np.int32), **payload)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)


def load_masks(path: str | Path) -> StoredMasks:
    """Read a file written by :func:`save_masks` (no pickles; sizes bounded before anything large is read).

    Raises:
        PredictionsError: missing, too large, not an npz of the expected arrays, or inconsistent.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise PredictionsError(f"{path} is larger than {MAX_FILE_BYTES // 2**20} MiB")
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if not {"patient", "slice", "shape"} <= names:
                raise PredictionsError(f"{path} lacks the patient, slice or shape arrays")
            h, w = (int(v) for v in npz["shape"])
            patients, slices = npz["patient"], npz["slice"]
            n = len(patients)
            if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE and n <= MAX_SLICES and len(slices) == n):
                raise PredictionsError(f"{path} has implausible sizes: {n} slices of {h}x{w}")
            width = (h * w + 7) // 8
            packed = {}
            for name in sorted(names):
                if name.startswith("mask_"):
                    # Checked from the header before reading: a small file can still declare a huge array.
                    if _declared_shape(npz, name) != (n, width):
                        raise PredictionsError(f"{path}: {name} is not {n} packed {h}x{w} masks")
                    packed[name.removeprefix("mask_")] = npz[name]
    except PredictionsError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise PredictionsError(f"{path} is not a readable predictions file: {err}") from None
    if not packed:
        raise PredictionsError(f"{path} holds no masks")
    return StoredMasks(patients.astype(str), slices.astype(int), (h, w), packed)


def _declared_shape(npz: np.lib.npyio.NpzFile, name: str) -> tuple[int, ...]:
    with npz.zip.open(f"{name}.npy") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, _ = read_header(f)
    return tuple(shape)
