"""What a model sees of a slice: its three sequences, or FLAIR of the slice and its two neighbours (2.5D).

Both are three uint8 channels, so every registry entry takes either without change; an artifact records which one
it was trained on (``training.inputs``) and everything that runs it builds the same inputs from the volume. A slice
met alone (an upload) has no neighbours: :func:`lone_slice_inputs`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

INPUTS = ("sequences", "flair-2.5d")
"""``sequences``: pre-contrast, FLAIR, post-contrast of one slice. ``flair-2.5d``: FLAIR of slices n-1, n, n+1
(the first and last slice repeat themselves where a neighbour is missing)."""
FLAIR = 1
LABELS = {"sequences": "three sequences", "flair-2.5d": "FLAIR of slices n−1, n, n+1"}
"""How each of :data:`INPUTS` reads in a table."""


def check_inputs(inputs: str) -> None:
    """Raises ValueError listing the valid names when ``inputs`` is not one of :data:`INPUTS`."""
    if inputs not in INPUTS:
        raise ValueError(f"unknown inputs {inputs!r}; valid: {', '.join(INPUTS)}")


def stack_inputs(
    images: np.ndarray, index: pd.DataFrame, inputs: str, rows: np.ndarray | None = None
) -> np.ndarray:
    """Model inputs (N, H, W, 3) uint8 for ``rows`` of slices ``images`` described by ``index``.

    Args:
        images: every slice of the dataset (or of whole volumes), in ``index`` order.
        index: ``patient`` per slice, sorted by patient, slice (as :class:`~lgg_core.data.cache.LGGData` keeps it).
        inputs: one of :data:`INPUTS`.
        rows: the slices wanted (default: all); their neighbours come from ``images`` whether wanted or not.

    ``sequences`` with every row returns ``images`` itself (no copy).
    """
    check_inputs(inputs)
    if inputs == "sequences":
        return images if rows is None else images[rows]
    patient = index["patient"].to_numpy()
    rows = np.arange(len(patient)) if rows is None else np.asarray(rows)
    previous = np.maximum(rows - 1, 0)
    following = np.minimum(rows + 1, len(patient) - 1)
    flair = images[..., FLAIR]
    return np.stack([flair[np.where(patient[previous] == patient[rows], previous, rows)], flair[rows],
                     flair[np.where(patient[following] == patient[rows], following, rows)]], axis=-1)


def lone_slice_inputs(images: np.ndarray, inputs: str) -> np.ndarray:
    """Model inputs for slices seen without their volume (an uploaded slice).

    ``flair-2.5d`` then gets the slice's own FLAIR as both neighbours, as the first and last slice of a volume do.
    """
    check_inputs(inputs)
    if inputs == "sequences":
        return images
    return np.repeat(images[..., FLAIR : FLAIR + 1], 3, axis=-1)


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
