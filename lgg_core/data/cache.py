"""Decode the whole dataset once into arrays and keep them in a cache folder that later loads memory-map.

The cache folder is named after a fingerprint of the files' bytes (relative path and hash of every slice file), so
an edited, added, removed or replaced file selects a new cache folder and the dataset is decoded again. The
``dataset_hash`` is a hash of the decoded pixels instead, recorded with every model.

A cache hit maps ``images.npy`` and ``masks.npy`` copy-on-write instead of reading them: the full dataset is
1 GB, and a process touching only some patients' slices (evaluation, the app showing one slice) then holds only
those pages, which the OS shares between processes and can drop under pressure.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lgg_core.data.reader import (
    IMAGE_SHAPE,
    INDEX_COLUMNS,
    MASK_SHAPE,
    DatasetError,
    find_root,
    read_image,
    read_mask,
    resolve_data_dir,
    scan,
)

ProgressCallback = Callable[[int, int], None]
PROGRESS_EVERY = 50  # slices between progress reports: often enough for a bar, rare enough to cost nothing

CACHE_DIR_ENV = "LGG_CACHE_DIR"
# Part of the fingerprint: bumping it makes every cache written in an older layout unreachable.
CACHE_FORMAT = 3
_META = "meta.json"
_STATS_COLUMNS = ["has_tumor", "tumor_pixels"]
_INDEX_DTYPES = {"slice": "int64", "has_tumor": "bool", "tumor_pixels": "int64"}


# eq=False: field-wise == on arrays is ambiguous; compare dataset_hash instead.
@dataclass(eq=False)
class LGGData:
    """The decoded dataset: row ``i`` of ``index`` describes ``images[i]`` and ``masks[i]``.

    Attributes:
        images: (N, 256, 256, 3) uint8 slices (pre-contrast, FLAIR, post-contrast).
        masks: (N, 256, 256) bool tumor masks.
        index: scan's columns plus ``has_tumor`` (bool) and ``tumor_pixels`` (int), sorted by patient, slice.
        dataset_hash: sha256 hex of the relative paths and decoded pixels.
        root: the ``kaggle_3m`` folder the data was read from.
        partial: patients of which only some slices are loaded (the failure-gallery slices bundled with the demo
            set, see :mod:`lgg_core.data.gallery`): per-slice views apply to them, whole-volume numbers do not.
    """

    images: np.ndarray
    masks: np.ndarray
    index: pd.DataFrame
    dataset_hash: str
    root: Path
    partial: frozenset[str] = frozenset()

    @property
    def patients(self) -> list[str]:
        """Sorted patient ids, e.g. ``TCGA_CS_4941``."""
        return sorted(self.index["patient"].unique().tolist())

    def rows(self, patients: Iterable[str]) -> np.ndarray:
        """Integer row indices of all slices of ``patients``, in index order.

        Raises:
            DatasetError: a patient is not in the dataset (a typo would otherwise select nothing).
        """
        wanted = set(patients)
        unknown = wanted - set(self.index["patient"])
        if unknown:
            raise DatasetError(f"unknown patients {sorted(unknown)[:5]} (not in the dataset at {self.root})")
        return np.flatnonzero(self.index["patient"].isin(wanted).to_numpy())


def default_cache_dir() -> Path:
    """``$LGG_CACHE_DIR`` if set, else ``~/.cache/lgg_core``."""
    return Path(os.environ.get(CACHE_DIR_ENV) or "~/.cache/lgg_core").expanduser()


def _file_digest(path: Path) -> bytes:
    with path.open("rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.sha1(usedforsecurity=False)).digest()


def fingerprint(root: Path, index: pd.DataFrame) -> str:
    """Sha256 hex over the relative path and the SHA-1 of the bytes of every image and mask file in ``index``.

    File bytes, not size and mtime: in the published dataset every mask has the same size and every file the same
    mtime, so a replaced mask would keep serving the old arrays. Hashing all files costs about a tenth of decoding
    them (see ``benchmarks/dataset_cache.py``); threads overlap the reads and the hashing, which release the GIL.
    """
    relatives = index[["image", "mask"]].to_numpy().ravel()
    digest = hashlib.sha256(f"lgg-cache-format-{CACHE_FORMAT}\n".encode())
    with ThreadPoolExecutor() as pool:
        for relative, file_digest in zip(relatives, pool.map(_file_digest, (root / r for r in relatives))):
            digest.update(f"{relative}\0".encode() + file_digest)
    return digest.hexdigest()


def content_hash(index: pd.DataFrame, images: np.ndarray, masks: np.ndarray) -> str:
    """Sha256 hex over each slice's relative paths and decoded image and mask bytes, in index order."""
    digest = hashlib.sha256()
    for i, (image_path, mask_path) in enumerate(index[["image", "mask"]].itertuples(index=False)):
        digest.update(f"{image_path}\0{mask_path}\0".encode())
        digest.update(images[i])
        digest.update(masks[i].view(np.uint8))
    return digest.hexdigest()


def _decode(root: Path, index: pd.DataFrame, progress: bool, on_progress: ProgressCallback | None = None) -> LGGData:
    images = np.empty((len(index), *IMAGE_SHAPE), dtype=np.uint8)
    masks = np.empty((len(index), *MASK_SHAPE), dtype=bool)
    pairs = index[["image", "mask"]].itertuples(index=False)
    for i, (image_path, mask_path) in enumerate(
        tqdm(pairs, total=len(index), desc="decoding slices", unit="slice", disable=not progress)
    ):
        images[i] = read_image(root / image_path)
        masks[i] = read_mask(root / mask_path)
        if on_progress is not None and ((i + 1) % PROGRESS_EVERY == 0 or i + 1 == len(index)):
            on_progress(i + 1, len(index))
    index = index.copy()
    tumor_pixels = masks.sum(axis=(1, 2), dtype=np.int64)
    index["has_tumor"] = tumor_pixels > 0
    index["tumor_pixels"] = tumor_pixels
    return LGGData(images, masks, index, content_hash(index, images, masks), root)


def _index_from_json(text: str) -> pd.DataFrame:
    return pd.DataFrame(json.loads(text)).astype(_INDEX_DTYPES)


def _read_cache(path: Path, root: Path, index: pd.DataFrame) -> LGGData | None:
    try:
        # "c": writable arrays whose writes stay private, so no consumer can corrupt the shared file.
        images = np.load(path / "images.npy", mmap_mode="c", allow_pickle=False)
        masks = np.load(path / "masks.npy", mmap_mode="c", allow_pickle=False)
        meta = json.loads((path / _META).read_text())
        cached_index = _index_from_json(json.dumps(meta["index"]))
        dataset_hash = str(meta["dataset_hash"])
    except Exception as err:
        # Truncated or foreign files fail in numpy, mmap or json with assorted exception types; any of them only
        # means the cache must be rebuilt.
        warnings.warn(f"ignoring unreadable cache {path} ({type(err).__name__}: {err}); rebuilding it")
        return None
    consistent = (
        images.shape == (len(index), *IMAGE_SHAPE)
        and images.dtype == np.uint8
        and masks.shape == (len(index), *MASK_SHAPE)
        and masks.dtype == bool
        and list(cached_index.columns) == [*INDEX_COLUMNS, *_STATS_COLUMNS]
        and cached_index[INDEX_COLUMNS].equals(index)
    )
    if not consistent:
        warnings.warn(f"cache {path} does not match the dataset at {root}; rebuilding it")
        return None
    return LGGData(images, masks, cached_index, dataset_hash, root)


def _write_cache(path: Path, data: LGGData) -> None:
    # A same-directory temp folder renamed into place: readers never see a half-written cache. Made by mkdir rather
    # than tempfile.mkdtemp, which makes it 0700 whatever the umask: unreadable to another user sharing the cache.
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        tmp.mkdir()
        np.save(tmp / "images.npy", data.images)
        np.save(tmp / "masks.npy", data.masks)
        meta = {"index": data.index.to_dict(orient="list"), "dataset_hash": data.dataset_hash}
        (tmp / _META).write_text(json.dumps(meta))
        shutil.rmtree(path, ignore_errors=True)  # an unreadable cache being replaced
        os.replace(tmp, path)
    except OSError as err:
        # The decoded data is still good: without a cache the next run only decodes again. A process that renamed
        # its folder into place first also lands here, and its cache serves the next run.
        warnings.warn(f"cannot write the dataset cache {path} ({err}); continuing without it")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def load_dataset(
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = True,
    on_progress: ProgressCallback | None = None,
) -> LGGData:
    """Scan, decode and validate the dataset, reusing the cache file when the files' bytes are unchanged.

    Args:
        data_dir: kaggle_3m folder or a parent of it; default ``$LGG_DATA_DIR``.
        cache_dir: where the ``lgg-<fingerprint>`` folder lives; default ``$LGG_CACHE_DIR`` or ``~/.cache/lgg_core``.
        use_cache: False decodes and validates every file and neither reads nor writes the cache.
        progress: show a progress bar while decoding.
        on_progress: called with (slices decoded, total) while decoding, e.g. to draw the app's progress bar; not
            called when the cache is used.

    Raises:
        DatasetError: the dataset is missing or malformed.
    """
    root = find_root(resolve_data_dir(data_dir))
    index = scan(root)
    if not use_cache:
        return _decode(root, index, progress, on_progress)
    path = Path(cache_dir or default_cache_dir()).expanduser() / f"lgg-{fingerprint(root, index)[:16]}"
    data = _read_cache(path, root, index) if path.exists() else None
    if data is None:
        data = _decode(root, index, progress, on_progress)
        _write_cache(path, data)
    return data
