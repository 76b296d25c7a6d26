"""Fetch the LGG MRI Segmentation dataset from Kaggle through kagglehub."""
from __future__ import annotations

import shutil
from pathlib import Path

from lgg_core.data.reader import DATA_DIR_ENV, DatasetError, find_root

KAGGLE_HANDLE = "mateuszbuda/lgg-mri-segmentation"
_LOCAL_COPY_HINT = (
    f"to use a local copy instead, pass --data-dir PATH or set {DATA_DIR_ENV} to the folder holding kaggle_3m/"
)


def download_dataset(dest: str | Path | None = None) -> Path:
    """Download the dataset (kagglehub caches it) and return its ``kaggle_3m`` folder.

    Args:
        dest: if given, the ``kaggle_3m`` folder is also copied to ``dest/kaggle_3m``.

    Raises:
        DatasetError: kagglehub is missing, the download failed, or the result is not the dataset.
    """
    try:
        import kagglehub
    except ImportError:
        raise DatasetError(
            f"downloading needs the kagglehub package (pip install kagglehub); {_LOCAL_COPY_HINT}"
        ) from None
    try:
        downloaded = Path(kagglehub.dataset_download(KAGGLE_HANDLE))
    except Exception as err:
        # Network, authentication and Kaggle API failures surface as many exception types; all mean
        # the same to the user: no download, use a local copy.
        raise DatasetError(
            f"could not download {KAGGLE_HANDLE} from Kaggle ({type(err).__name__}: {err}); {_LOCAL_COPY_HINT}"
        ) from err
    root = find_root(downloaded)
    if dest is None:
        return root
    target = Path(dest).expanduser() / "kaggle_3m"
    shutil.copytree(root, target, dirs_exist_ok=True)
    return find_root(target)
