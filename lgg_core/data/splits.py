"""Patient-level K-fold splits, balanced for institution and tumor burden, and their JSON files.

Slices of one patient are strongly correlated, so every split here assigns whole patients: a slice-level
split would put the same patient in train and test and inflate every score.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import numpy as np
import pandas as pd

from lgg_core.data.reader import DatasetError


def _patient_table(index: pd.DataFrame) -> pd.DataFrame:
    missing = {"patient", "institution", "has_tumor"} - set(index.columns)
    if missing:
        raise DatasetError(f"slice index lacks columns {sorted(missing)}: pass LGGData.index")
    return index.groupby("patient", sort=True).agg(
        institution=("institution", "first"),
        slices=("has_tumor", "size"),
        tumor_slices=("has_tumor", "sum"),
        tumor_share=("has_tumor", "mean"),
    )


def _deal(institutions: np.ndarray, shares: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    folds = np.empty(len(shares), dtype=int)
    sizes = np.zeros(k, dtype=int)
    names, counts = np.unique(institutions, return_counts=True)
    # Largest institutions first, so the small ones fill the gaps their remainders leave.
    for name in names[np.lexsort((names, -counts))]:
        members = np.flatnonzero(institutions == name)
        members = members[rng.permutation(len(members))]
        members = members[np.argsort(shares[members], kind="stable")]
        order = rng.permutation(k)
        n_full = len(members) // k * k
        for block, start in enumerate(range(0, n_full, k)):
            folds[members[start : start + k]] = order if block % 2 == 0 else order[::-1]
        rest = members[n_full:]
        if len(rest):
            # Smallest folds first, random among equals: keeps total fold sizes within one of each other.
            smallest = np.lexsort((rng.random(k), sizes))[: len(rest)]
            folds[rest] = rng.permutation(smallest)
        sizes += np.bincount(folds[members], minlength=k)
    return folds


def _imbalance(folds: np.ndarray, slices: np.ndarray, tumor_slices: np.ndarray, k: int) -> float:
    fold_slices = np.bincount(folds, weights=slices, minlength=k)
    fold_share = np.bincount(folds, weights=tumor_slices, minlength=k) / fold_slices
    return float(np.ptp(fold_slices) / fold_slices.mean() + np.ptp(fold_share))


def make_folds(index: pd.DataFrame, k: int = 5, seed: int = 0, candidates: int = 64) -> dict[str, int]:
    """Assign every patient to one of ``k`` folds, balanced for institution, tumor-slice share and size.

    A candidate split sorts each institution's patients by tumor-slice share (random tie-breaks) and
    deals them in blocks of ``k``, one patient per fold, alternating direction (serpentine) so no fold
    always receives the lower share; a short last block goes to the currently smallest folds. So per
    institution and overall, patient counts per fold differ by at most one. Of ``candidates`` such
    splits, the one with the most even slice counts and tumor-slice shares is returned.

    Args:
        index: slice index with patient, institution and has_tumor columns (``LGGData.index``).
        k: number of folds, at least 2.
        seed: seeds the candidates; equal seeds give equal splits.
        candidates: number of candidate splits to choose from.

    Returns:
        ``{patient: fold}`` with folds ``0..k-1``, keys sorted.

    Raises:
        ValueError: ``k`` < 2 or ``candidates`` < 1.
        DatasetError: fewer patients than folds, or index columns missing.
    """
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    table = _patient_table(index)
    if len(table) < k:
        raise DatasetError(f"cannot make {k} patient-level folds from {len(table)} patients")
    institutions = table["institution"].to_numpy(dtype=str)
    shares, slices, tumor_slices = (table[c].to_numpy(dtype=float) for c in ("tumor_share", "slices", "tumor_slices"))
    rng = np.random.default_rng(seed)
    best = min(
        (_deal(institutions, shares, k, rng) for _ in range(candidates)),
        key=lambda folds: _imbalance(folds, slices, tumor_slices, k),
    )
    return dict(zip(table.index.tolist(), best.tolist()))


def fold_roles(
    folds: dict[str, int],
    fold: int,
    val_fraction: float = 0.1,
    seed: int = 0,
    val_patients: int | None = None,
    institutions: dict[str, str] | None = None,
) -> dict[str, list[str]]:
    """Split patients into train / val / test for one fold.

    Args:
        folds: ``{patient: fold}`` from :func:`make_folds`.
        fold: the test fold.
        val_fraction: share of the non-test patients held out for early stopping (at least one patient).
        seed: seed for picking the validation patients.
        val_patients: exact number of validation patients; overrides ``val_fraction``.
        institutions: ``{patient: institution}``; when given, each institution contributes validation patients in
            proportion to its share of the non-test patients (largest remainders), so checkpoint picks are not made
            on one scanner's patients.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``: sorted, disjoint, covering all patients.

    Raises:
        ValueError: unknown fold, val_fraction outside (0, 1), val_patients leaving no training patient, or too few
            patients for train and val.
    """
    if fold not in set(folds.values()):
        raise ValueError(f"fold {fold} not in the split (folds {sorted(set(folds.values()))})")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    test = sorted(p for p, f in folds.items() if f == fold)
    rest = sorted(p for p, f in folds.items() if f != fold)
    if len(rest) < 2:
        raise ValueError(f"fold {fold} leaves {len(rest)} patients outside the test set; need 2 for train and val")
    if val_patients is None:
        n_val = min(len(rest) - 1, max(1, round(val_fraction * len(rest))))
    elif not 1 <= val_patients < len(rest):
        raise ValueError(f"val_patients must be in 1..{len(rest) - 1} for fold {fold}, got {val_patients}")
    else:
        n_val = val_patients
    # The fold joins the seed so each fold draws its own validation patients.
    rng = np.random.default_rng([seed, fold])
    if institutions is None:
        picked = rng.choice(len(rest), size=n_val, replace=False)
    else:
        picked = _stratified_pick(np.array([institutions[p] for p in rest]), n_val, rng)
    val = sorted(rest[i] for i in picked)
    train = sorted(set(rest) - set(val))
    return {"train": train, "val": val, "test": test}


def _stratified_pick(groups: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of ``n`` items drawn so that each group's count is its proportional share (largest remainders)."""
    names, counts = np.unique(groups, return_counts=True)
    exact = n * counts / counts.sum()
    quota = np.floor(exact).astype(int)
    # Random tie-breaks among equal remainders, so no institution is favoured by its name.
    order = np.lexsort((rng.random(len(names)), -(exact - quota)))
    quota[order[: n - quota.sum()]] += 1
    return np.concatenate([
        rng.choice(np.flatnonzero(groups == name), size=q, replace=False) for name, q in zip(names, quota)
    ]).astype(int)


def fold_summary(index: pd.DataFrame, folds: dict[str, int]) -> pd.DataFrame:
    """Per-fold balance: patients, slices, tumor slices, tumor-slice share and patients per institution."""
    table = _patient_table(index).assign(fold=pd.Series(folds))
    if table["fold"].isna().any():
        raise DatasetError(f"split lacks patients {table.index[table['fold'].isna()].tolist()[:5]}")
    rows = []
    for fold, group in table.groupby("fold"):
        per_institution = group["institution"].value_counts().sort_index()
        rows.append({
            "fold": int(fold),
            "patients": len(group),
            "slices": int(group["slices"].sum()),
            "tumor_slices": int(group["tumor_slices"].sum()),
            "tumor_share": group["tumor_slices"].sum() / group["slices"].sum(),
            "institutions": " ".join(f"{name}:{n}" for name, n in per_institution.items()),
        })
    return pd.DataFrame(rows).set_index("fold")


def save_split(
    path: str | Path,
    folds: dict[str, int],
    k: int,
    seed: int,
    dataset_hash: str,
    roles: dict[str, list[str]] | None = None,
) -> None:
    """Write ``{"k", "seed", "dataset_hash", "folds"}`` as JSON, atomically.

    ``roles`` (the train/val/test patients of one fold, see :func:`fold_roles`) is stored too when given, as it is
    beside every trained artifact.

    Raises:
        DatasetError: the split is inconsistent (fold outside 0..k-1, empty fold).
        OSError: the file cannot be written; the message names ``path``.
    """
    path = Path(path)
    payload = {"k": k, "seed": seed, "dataset_hash": dataset_hash, "folds": dict(sorted(folds.items()))}
    if roles is not None:
        payload["roles"] = roles
    _validate_split(payload, path)
    # Not mkstemp: its 0600 mode would hide the split from the app's user; "x" keeps the usual umask.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(tmp, "x", encoding="utf-8")
    except OSError as err:
        # The temp file's name would confuse: report the file the user asked for.
        raise OSError(err.errno, f"cannot write split file {path}: {err.strerror}") from err
    try:
        with f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_split(path: str | Path) -> dict:
    """Read and validate a split file written by :func:`save_split`.

    Raises:
        DatasetError: the file is missing, not JSON, or lacks / mistypes a field.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DatasetError(f"cannot read split file {path}: {err.strerror or err}") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"split file {path} is not valid JSON: {err}") from err
    _validate_split(payload, path)
    return payload


def _is_int(value: object) -> bool:
    # bool is an int subclass, but true/false in a split file is a mistake.
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_split(payload: object, path: Path) -> None:
    expected = 'expected {"k": int, "seed": int, "dataset_hash": str, "folds": {patient: fold}}'
    if not isinstance(payload, dict) or not {"k", "seed", "dataset_hash", "folds"} <= payload.keys():
        raise DatasetError(f"split file {path} is malformed: {expected}")
    k, folds = payload["k"], payload["folds"]
    if not _is_int(k) or k < 2 or not _is_int(payload["seed"]) or not isinstance(payload["dataset_hash"], str):
        raise DatasetError(f"split file {path} has a bad k, seed or dataset_hash: {expected}")
    if not isinstance(folds, dict) or not folds:
        raise DatasetError(f"split file {path} has no folds mapping: {expected}")
    bad = [p for p, f in folds.items() if not _is_int(f) or not 0 <= f < k]
    if bad:
        raise DatasetError(f"split file {path}: patient {bad[0]} has fold {folds[bad[0]]!r}, expected 0..{k - 1}")
    empty = sorted(set(range(k)) - set(folds.values()))
    if empty:
        raise DatasetError(f"split file {path}: folds {empty} have no patients")
