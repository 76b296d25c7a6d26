"""The failure-gallery slices bundled beside the demo set, and the demo set with them added.

The demo set (``demo/kaggle_3m``) holds whole volumes of a few held-out patients. The failure gallery's default cases
lie mostly on other patients, so ``demo/gallery/kaggle_3m`` holds just those slices (``scripts/make_demo_set.py
--gallery``). Their patients are partial: the app shows their slices one at a time (Failure cases, Compare,
Explain) and keeps them out of anything computed over a whole volume.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lgg_core.data.cache import LGGData, load_dataset
from lgg_core.data.reader import DatasetError

GALLERY_DIR = Path(__file__).resolve().parents[2] / "demo" / "gallery"


def with_gallery(data: LGGData, gallery: Path = GALLERY_DIR, **load_kwargs: Any) -> LGGData:
    """``data`` plus the gallery slices bundled beside it, when ``data`` is the demo set the gallery belongs to.

    Any other dataset is returned unchanged: a full ``kaggle_3m`` copy holds those slices already.

    Args:
        data: a loaded dataset.
        gallery: the gallery folder; it belongs to the demo set in its parent's ``kaggle_3m``.
        **load_kwargs: passed on to :func:`~lgg_core.data.cache.load_dataset` for the gallery (cache, progress).

    Raises:
        DatasetError: the gallery is malformed, or holds slices of a patient the demo set holds whole.
    """
    if not gallery.is_dir() or data.root.resolve() != (gallery.parent / "kaggle_3m").resolve():
        return data
    return add_partial(data, load_dataset(gallery, **load_kwargs))


def add_partial(data: LGGData, extra: LGGData) -> LGGData:
    """``data`` and ``extra`` in one dataset, ``extra``'s patients marked partial; index paths stay relative to
    ``data.root``.

    Raises:
        DatasetError: a patient is in both.
    """
    if shared := sorted(set(data.patients) & set(extra.patients)):
        raise DatasetError(f"{extra.root} holds slices of {', '.join(shared)}, which {data.root} holds whole: "
                           "rebuild it with scripts/make_demo_set.py --gallery")
    prefix = Path(os.path.relpath(extra.root, data.root)).as_posix()
    moved = extra.index.assign(image=prefix + "/" + extra.index["image"], mask=prefix + "/" + extra.index["mask"])
    index = pd.concat([data.index, moved], ignore_index=True)
    order = index.sort_values(["patient", "slice"], kind="stable").index.to_numpy()
    digest = hashlib.sha256(f"{data.dataset_hash}\0{extra.dataset_hash}".encode()).hexdigest()
    return LGGData(
        images=np.concatenate([data.images, extra.images])[order],
        masks=np.concatenate([data.masks, extra.masks])[order],
        index=index.loc[order].reset_index(drop=True),
        dataset_hash=digest,
        root=data.root,
        partial=data.partial | frozenset(extra.patients),
    )
