"""The zoo's per-patient Dice, bundled with the package, so that predictions scored anywhere meet the zoo.

A researcher who installs the package has no checkout of the zoo's artifacts; ``lgg score-predictions`` compares
with this table instead (``zoo_reference.csv``: one row per model or cross-validation run and patient, Dice as
predicted). ``lgg zoo-reference`` writes it from the catalog's evaluation records, and a test checks that the bundled
copy matches them, so it cannot fall behind the catalog silently.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from lgg_core.evaluation import crossval
from lgg_core.evaluation.stats import variant_patients
from lgg_core.serving.catalog import load_crossval
from lgg_core.serving.records import read_eval, resolve_models

REFERENCE_FILE = Path(__file__).with_name("zoo_reference.csv")
COLUMNS = ["kind", "name", "patient", "dice"]
KINDS = {"fold0": "model", "cv": "crossval"}
"""Which rows each split compares with: fold 0's models, or the cross-validation runs."""


def build_reference(catalog: str | Path | None = None) -> pd.DataFrame:
    """Per-patient raw Dice of every evaluated segmenter and every complete cross-validation run of the catalog.

    Raises:
        ValueError: the catalog cannot be read, its models were held out on different patients, or a CV run cannot
            be pooled.
    """
    records, problem = resolve_models(catalog)
    if problem:
        raise ValueError(problem)
    parts = []
    for record in records:
        tables, _ = read_eval(record) if record.ok else (None, None)
        if tables is not None and tables.patients is not None:
            parts.append(variant_patients(tables, "raw").assign(kind="model", name=record.name))
    for entry in load_crossval(catalog):
        done = crossval.evaluated(crossval.fold_dirs([entry.path]))
        if not done or len(done) < crossval.expected_folds(done):
            continue  # still training: the bundled file would go stale with every fold that lands
        pooled = crossval.fold_patients(done)
        parts.append(pooled[pooled["variant"] == "raw"].assign(kind="crossval", name=entry.name))
    table = pd.concat(parts, ignore_index=True)[COLUMNS]
    held_out = table[table["kind"] == "model"].groupby("name")["patient"].apply(frozenset)
    if held_out.nunique() > 1:
        raise ValueError("the catalog's models were evaluated on different patients: the reference needs one test fold")
    return table


def load_reference(path: str | Path = REFERENCE_FILE) -> pd.DataFrame:
    """The bundled reference table (columns :data:`COLUMNS`)."""
    return pd.read_csv(path, dtype={"kind": str, "name": str, "patient": str, "dice": float})


def fold0_patients(reference: pd.DataFrame) -> list[str]:
    """The zoo's held-out patients (fold 0's test patients), as every model of the reference was evaluated on."""
    return sorted(reference.loc[reference["kind"] == "model", "patient"].unique())


def others(reference: pd.DataFrame, split: str) -> dict[str, pd.DataFrame]:
    """Per-patient (patient, dice) of each model (``fold0``) or cross-validation run (``cv``), in table order."""
    rows = reference[reference["kind"] == KINDS[split]]
    return {name: group[["patient", "dice"]].reset_index(drop=True)
            for name, group in rows.groupby("name", sort=False)}
