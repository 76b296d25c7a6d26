"""What a model sees of a slice: its three sequences, or FLAIR of the slice and its two neighbours (2.5D).

Both are three uint8 channels, so every registry entry takes either without change; an artifact records which one
it was trained on (``training.inputs``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

INPUTS = ("sequences", "flair-2.5d")
"""``sequences``: pre-contrast, FLAIR, post-contrast of one slice. ``flair-2.5d``: FLAIR of slices n-1, n, n+1
(the first and last slice repeat themselves where a neighbour is missing)."""
SERVED_INPUTS = ("sequences",)
"""Inputs the dashboard and ``lgg evaluate`` build today; other artifacts are recipe-search records."""
FLAIR = 1


def check_inputs(inputs: str) -> None:
    """Raises ValueError listing the valid names when ``inputs`` is not one of :data:`INPUTS`."""
    if inputs not in INPUTS:
        raise ValueError(f"unknown inputs {inputs!r}; valid: {', '.join(INPUTS)}")


def stack_inputs(images: np.ndarray, index: pd.DataFrame, inputs: str) -> np.ndarray:
    """Model inputs (N, H, W, 3) uint8 for slices ``images`` described by ``index`` (sorted by patient, slice).

    ``sequences`` returns ``images`` itself (no copy).
    """
    check_inputs(inputs)
    if inputs == "sequences":
        return images
    patient = index["patient"].to_numpy()
    rows = np.arange(len(patient))
    same_as_previous = np.r_[False, patient[1:] == patient[:-1]]
    same_as_next = np.r_[patient[:-1] == patient[1:], False]
    flair = images[..., FLAIR]
    return np.stack([flair[np.where(same_as_previous, rows - 1, rows)], flair,
                     flair[np.where(same_as_next, rows + 1, rows)]], axis=-1)


def missing_sequences(images: np.ndarray, index: pd.DataFrame) -> dict[str, int]:
    """Patients lacking a contrast sequence: how many of their channels repeat FLAIR on every slice (1 or 2).

    The dataset fills a missing pre- or post-contrast sequence with FLAIR, so such a channel equals FLAIR exactly.
    """
    found = {}
    for patient, rows in index.groupby("patient").indices.items():
        volume = images[rows]
        repeats = sum(bool(np.array_equal(volume[..., c], volume[..., FLAIR])) for c in (0, 2))
        if repeats:
            found[patient] = repeats
    return found
