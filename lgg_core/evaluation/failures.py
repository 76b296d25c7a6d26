"""Failure cases from the eval tables: false positives, false negatives and worst-Dice slices, ranked by severity.

Works on ``eval/slices.csv`` of segmenters (``raw`` variant) and on the classifier-gated pipeline, whose per-slice
table follows exactly from the classifier's and the segmenter's tables: a slice the classifier rejects gets an empty
mask, any other slice keeps the segmenter's mask. No model runs.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from lgg_core.serving.records import EvalTables, ModelRecord

KINDS = {
    "false positives": "tumor predicted on a slice without tumor (ranked by predicted pixels)",
    "false negatives": "tumor slice with nothing predicted (ranked by missed tumor pixels)",
    "worst Dice": "tumor found but poorly outlined (ranked by lowest Dice, then tumor size)",
}
KEYS = ["patient", "slice"]


def raw_slices(slices: pd.DataFrame) -> pd.DataFrame:
    """The un-post-processed rows of a segmenter's slices table."""
    return slices[slices["variant"] == "raw"].drop(columns="variant").reset_index(drop=True)


def gated_slices(classifier: pd.DataFrame, segmenter: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Per-slice metrics of the gated pipeline from a classifier's and a segmenter's (raw) slices tables.

    Only slices present in both tables are kept (both models evaluated on the same held-out patients).
    Rejected slices follow :mod:`lgg_core.evaluation.metrics` empty-mask rules: Dice 1 and no distance when the slice has no
    tumor, Dice 0 and the image diagonal as distance when it has.
    """
    gate = classifier[[*KEYS, "prob"]].rename(columns={"prob": "gate_prob"})
    table = segmenter.merge(gate, on=KEYS, how="inner")
    rejected = (table["gate_prob"] < threshold).to_numpy()
    true_pixels = table["tp"] + table["fn"]
    tumor = table["true_tumor"].to_numpy(bool)
    diagonal = float(np.hypot(256, 256))
    table.loc[rejected, "fn"] = true_pixels[rejected]
    table.loc[rejected, ["tp", "fp"]] = 0
    table.loc[rejected, "pred_tumor"] = False
    for column in ("dice", "iou", "precision", "recall"):
        table.loc[rejected, column] = np.where(tumor[rejected], 0.0, 1.0)
    for column in ("hd95", "assd"):
        table.loc[rejected, column] = np.where(tumor[rejected], diagonal, np.nan)
    return table


def failure_tables(segmenters: Mapping[str, ModelRecord], pipelines: Mapping[str, tuple[ModelRecord, ModelRecord]],
                   read: Callable[[ModelRecord], tuple[EvalTables | None, str | None]]) -> dict[str, pd.DataFrame]:
    """Raw per-slice tables of evaluated segmenters and of gated pipelines whose parts are both evaluated.

    Args:
        segmenters: segmenter records by name, in the order a gallery lists them.
        pipelines: (classifier, segmenter) records by gated-pipeline name.
        read: reads a record's eval tables, (tables or None, why not).
    """
    tables = {}
    for name, record in segmenters.items():
        t, _ = read(record)
        if t is not None:
            tables[name] = raw_slices(t.slices)
    for name, (classifier, segmenter) in pipelines.items():
        (c, _), (s, _) = read(classifier), read(segmenter)
        if c is not None and s is not None:
            tables[name] = gated_slices(c.slices, raw_slices(s.slices))
    return tables


def failure_cases(slices: pd.DataFrame, kind: str, limit: int = 24,
                  loaded: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``limit`` most severe slices of ``kind`` (a key of ``KINDS``), with a ``severity`` column.

    Args:
        slices: a raw per-slice table (``raw_slices`` or ``gated_slices``).
        kind: which failure.
        limit: how many rows to return.
        loaded: keep only slices whose ``patient`` and ``slice`` are a row of this table (e.g. the loaded data's
            index); the ``limit`` most severe are taken among them, so a gallery fills with slices it can show.

    Raises:
        ValueError: unknown kind.
    """
    true, pred = slices["true_tumor"].astype(bool), slices["pred_tumor"].astype(bool)
    if kind == "false positives":
        cases, severity = slices[~true & pred], slices["fp"]
    elif kind == "false negatives":
        cases, severity = slices[true & ~pred], slices["fn"]
    elif kind == "worst Dice":
        cases, severity = slices[true & pred], 1 - slices["dice"]
    else:
        raise ValueError(f"unknown failure kind {kind!r}; choose one of {', '.join(KINDS)}")
    if loaded is not None:
        cases = cases[pd.MultiIndex.from_frame(cases[KEYS]).isin(pd.MultiIndex.from_frame(loaded[KEYS]))]
    cases = cases.assign(severity=severity[cases.index], tumor_pixels=(slices["tp"] + slices["fn"])[cases.index])
    return cases.sort_values(["severity", "tumor_pixels"], ascending=False).head(limit).reset_index(drop=True)


def counts(slices: pd.DataFrame, loaded: pd.DataFrame | None = None) -> dict[str, int]:
    """How many slices of each failure kind the table holds (only those among ``loaded``'s rows when given)."""
    return {kind: len(failure_cases(slices, kind, limit=len(slices), loaded=loaded)) for kind in KINDS}
