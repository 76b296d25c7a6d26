"""Is model A better than model B? Paired comparisons of segmenters on the held-out patients they share.

Every unordered pair of segmenters is compared on the patients both were evaluated on, with one value per patient
and model from the ``raw`` variant (no post-processing):

* ``dice``: the 3D volume Dice of ``eval/patients.csv`` (higher is better);
* ``hd95``: the mean HD95 (px) over the patient's tumor slices in ``eval/slices.csv`` (lower is better), the slices
  the leaderboard's HD95 averages too. On a tumor-free slice HD95 is NaN when the model predicts nothing and the image
  diagonal when it predicts anything, so averaging those in would mix "no distance" with the worst possible one;
  false positives on tumor-free slices count in Dice instead. A patient without tumor slices has no HD95 and is left
  out of that metric's pairs.

For each pair: the mean paired difference A − B with a percentile bootstrap 95% CI over patients (the patients are
resampled, so each keeps its two values), a two-sided Wilcoxon signed-rank p-value (patients where both models score
the same are dropped, as in Wilcoxon's test), Holm–Bonferroni adjusted p-values over all pairs of one metric, and a
verdict at alpha 0.05 after Holm. The CIs are not adjusted for multiplicity.

Pairs are unordered, because ``k`` models make ``k(k-1)/2`` two-sided tests and that is the count Holm corrects for;
A is the model with the better mean over its own patients. :func:`ordered_pairs` gives both orientations of each
pair, for a row-versus-column matrix.

The per-patient tables behind the leaderboard's other rows live here too: a post-processing variant's
(:func:`variant_patients`), a classifier-gated pipeline's, derived exactly from the two models' slice tables
(:func:`gated_patients`), and per-group means with bootstrap CIs over patients (:func:`mean_ci_by`).
"""
from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from lgg_core.evaluation.failures import KEYS, gated_slices, raw_slices
from lgg_core.evaluation.metrics import bootstrap_ci

if TYPE_CHECKING:  # lgg_core.serving.records imports torch; this module only needs the type
    from lgg_core.serving.records import EvalTables

HIGHER_IS_BETTER = {"dice": True, "hd95": False}
METRIC_LABELS = {"dice": "per-patient Dice", "hd95": "per-patient HD95 (px, mean over tumor slices)"}
PAIR_COLUMNS = ["metric", "a", "b", "n", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high", "p", "p_holm",
                "verdict"]
_STATS = ["mean_a", "mean_b", "mean_diff", "ci_low", "ci_high", "p"]
A_BETTER, B_BETTER, NO_DIFFERENCE, NO_PATIENTS = ("A better", "B better", "no significant difference",
                                                  "no shared patients")


def _raw_patients(tables: EvalTables) -> pd.DataFrame:
    return tables.patients[tables.patients["variant"] == "raw"]


def patient_dice(evals: dict[str, EvalTables]) -> pd.DataFrame:
    """Long table (model, patient, institution, dice) of per-patient volume Dice, raw variant, segmenters only."""
    columns = ["model", "patient", "institution", "dice"]
    parts = [_raw_patients(t).assign(model=name)[columns] for name, t in evals.items() if t.patients is not None]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def patient_hd95(evals: dict[str, EvalTables]) -> pd.DataFrame:
    """Long table (model, patient, hd95): mean HD95 over each patient's tumor slices, raw variant, segmenters only."""
    columns = ["model", "patient", "hd95"]
    parts = []
    for name, t in evals.items():
        if t.patients is not None:
            slices = raw_slices(t.slices)
            tumor = slices[slices["true_tumor"].astype(bool)]
            parts.append(tumor.groupby("patient", as_index=False)["hd95"].mean().assign(model=name)[columns])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def patient_values(evals: dict[str, EvalTables], metric: str) -> pd.DataFrame:
    """Long table (model, patient, ``metric``) for a key of :data:`HIGHER_IS_BETTER`."""
    return patient_dice(evals) if metric == "dice" else patient_hd95(evals)


def variant_patients(tables: EvalTables, variant: str = "raw") -> pd.DataFrame:
    """Per-patient table (patient, institution, dice) of one variant of ``eval/patients.csv`` (raw, lcc, tta)."""
    patients = tables.patients[tables.patients["variant"] == variant]
    return patients[["patient", "institution", "dice"]].reset_index(drop=True)


def gated_patients(classifier: EvalTables, segmenter: EvalTables, threshold: float = 0.5) -> pd.DataFrame:
    """Per-patient table (patient, institution, dice) of the classifier-gated segmenter, from the slice tables.

    Exact, with no model run: a rejected slice keeps no mask (:func:`~lgg_core.evaluation.failures.gated_slices`),
    and the volume Dice of a patient is 2·TP / (2·TP + FP + FN) over its slices, 1 when both volumes are empty.
    Only patients that both models were evaluated on are kept.
    """
    table = gated_slices(classifier.slices, raw_slices(segmenter.slices), threshold)
    sums = table.groupby(["patient", "institution"], as_index=False)[["tp", "fp", "fn"]].sum()
    total = 2 * sums["tp"] + sums["fp"] + sums["fn"]
    sums["dice"] = (2 * sums["tp"] / total.where(total > 0)).fillna(1.0)
    return sums[["patient", "institution", "dice"]]


def mean_ci_by(values: pd.DataFrame, by: list[str], column: str = "dice", n_boot: int = 2000,
               seed: int = 0) -> pd.DataFrame:
    """Per group: patients n, the mean of ``column`` and its percentile bootstrap 95% CI over the group's patients.

    Args:
        values: long table with one row per patient and group, e.g. (model, patient, institution, dice).
        by: the grouping columns.
        column: the per-patient value.
        n_boot: bootstrap resamples per group.
        seed: bootstrap seed (every group uses it).

    Returns:
        Columns ``by`` + patients, mean, ci_low, ci_high; the CI is NaN for a single patient (no spread to
        resample) and the mean NaN for none.
    """
    rows = []
    for key, group in values.groupby(by, sort=True):
        kept = group[column].dropna().to_numpy(float)
        low, high = bootstrap_ci(kept, n_boot=n_boot, seed=seed) if kept.size > 1 else (np.nan, np.nan)
        rows.append({**dict(zip(by, key, strict=True)), "patients": int(kept.size),
                     "mean": float(kept.mean()) if kept.size else np.nan, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=[*by, "patients", "mean", "ci_low", "ci_high"])


def holm(p: ArrayLike) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the input's order; NaN stays NaN and is not counted as a test."""
    p = np.asarray(p, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = order.size
    # The i-th smallest p is scaled by the hypotheses left (m - i); the running maximum keeps the adjusted values in
    # the raw values' order, so rejecting one implies rejecting every smaller one.
    adjusted[order] = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    return adjusted


def wilcoxon_p(diff: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences; 1.0 when none is nonzero."""
    if not np.any(diff):  # scipy would divide by zero; identical scores are no evidence of a difference
        return 1.0
    from scipy.stats import wilcoxon  # ~1 s to import: the Leaderboard's tests usually come from its disk cache

    return float(wilcoxon(diff).pvalue)


def _signed_rank_sum(diff: np.ndarray) -> float:
    """W+ − W−: the side the Wilcoxon test leans to (the mean may lean the other way if one patient dominates)."""
    nonzero = diff[diff != 0]
    from scipy.stats import rankdata

    return float(np.sum(np.sign(nonzero) * rankdata(np.abs(nonzero))))


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 10_000, seed: int = 0) -> dict[str, float | int]:
    """n, both means, the mean difference a − b with its bootstrap 95% CI, and the Wilcoxon p of aligned arrays.

    Also ``leaning``, the signed rank sum (positive: a tends to score higher). All but n are NaN when n is 0.
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.size == 0:
        return {"n": 0, **dict.fromkeys([*_STATS, "leaning"], np.nan)}
    # Resampling differences resamples patients: each patient's pair of values stays together.
    low, high = bootstrap_ci(diff, n_boot=n_boot, seed=seed)
    return {"n": diff.size, "mean_a": float(np.mean(a)), "mean_b": float(np.mean(b)),
            "mean_diff": float(diff.mean()), "ci_low": low, "ci_high": high, "p": wilcoxon_p(diff),
            "leaning": _signed_rank_sum(diff)}


def _verdicts(table: pd.DataFrame, higher_is_better: bool, alpha: float) -> np.ndarray:
    # The direction is the test's own (signed ranks), so a significant verdict never contradicts what was tested.
    a_better = (table["leaning"] > 0) == higher_is_better
    verdict = np.where(table["p_holm"] < alpha, np.where(a_better, A_BETTER, B_BETTER), NO_DIFFERENCE)
    return np.where(table["n"] == 0, NO_PATIENTS, verdict)


def pairwise(values: pd.DataFrame, metric: str = "dice", n_boot: int = 10_000, seed: int = 0,
             alpha: float = 0.05) -> pd.DataFrame:
    """Every unordered pair of models compared on the patients both have (see the module docstring).

    Args:
        values: long table with columns model, patient and ``metric`` (:func:`patient_values`).
        metric: a key of :data:`HIGHER_IS_BETTER`.
        n_boot: bootstrap resamples per pair.
        seed: bootstrap seed (every pair uses it, so the table is reproducible).
        alpha: significance level applied to the Holm-adjusted p-values.

    Returns:
        One row per pair, columns :data:`PAIR_COLUMNS`; models ranked best first by their mean, A ranked above B.
    """
    wide = values.groupby(["patient", "model"])[metric].mean().unstack("model")
    models = wide.mean().sort_values(ascending=not HIGHER_IS_BETTER[metric], kind="stable").index
    rows = []
    for a, b in combinations(models, 2):
        shared = wide[[a, b]].dropna()
        rows.append({"metric": metric, "a": a, "b": b,
                     **paired_difference(shared[a].to_numpy(), shared[b].to_numpy(), n_boot, seed)})
    table = pd.DataFrame(rows, columns=[*PAIR_COLUMNS[:-2], "leaning"]).astype({"n": int})
    table["p_holm"] = holm(table["p"])
    table["verdict"] = _verdicts(table, HIGHER_IS_BETTER[metric], alpha)
    return table[PAIR_COLUMNS]


def ordered_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """Both orientations of each pair of :func:`pairwise` (A − B and B − A), for a row-versus-column matrix."""
    swapped = pairs.rename(columns={"a": "b", "b": "a", "mean_a": "mean_b", "mean_b": "mean_a",
                                    "ci_low": "ci_high", "ci_high": "ci_low"})
    swapped[["mean_diff", "ci_low", "ci_high"]] *= -1
    swapped["verdict"] = swapped["verdict"].replace({A_BETTER: B_BETTER, B_BETTER: A_BETTER})
    return pd.concat([pairs, swapped[pairs.columns]], ignore_index=True)


def named_verdict(pair: pd.Series) -> str:
    """The verdict with the winner's name ("unet better") instead of "A better"/"B better"."""
    return {A_BETTER: f"{pair['a']} better", B_BETTER: f"{pair['b']} better"}.get(pair["verdict"], pair["verdict"])


def format_p(p: float) -> str:
    """A p-value for display: three decimals, "< 0.001" below that, "–" when undefined."""
    if np.isnan(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def most_different_slices(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    """Per patient of both slices tables (raw variant), the slice number where the two models' masks differ most.

    "Most" is the pixels that certainly differ, |fp_a − fp_b| + |fn_a − fn_b|: slice Dice would pick any tumor-free
    slice with a few false-positive pixels (Dice 0 against 1) over a tumor one model misses and the other finds.
    Ties go to the larger slice Dice difference, then the lower slice number.
    """
    both = raw_slices(a).merge(raw_slices(b), on=KEYS, suffixes=("_a", "_b"))
    both["pixels"] = (both["fp_a"] - both["fp_b"]).abs() + (both["fn_a"] - both["fn_b"]).abs()
    both["gap"] = (both["dice_a"] - both["dice_b"]).abs()
    top = both.sort_values(["pixels", "gap", "slice"], ascending=[False, False, True]).drop_duplicates("patient")
    return top.set_index("patient")["slice"].astype(int)


def largest_differences(a: EvalTables, b: EvalTables, limit: int = 10) -> pd.DataFrame:
    """The shared patients where two segmenters' per-patient Dice differ most.

    Returns:
        Up to ``limit`` rows by decreasing |diff|: patient, dice_a, dice_b, diff (a − b) and slice, the slice where
        they differ most (:func:`most_different_slices`), for the patients in all four tables.
    """
    table = pd.merge(_raw_patients(a)[["patient", "dice"]], _raw_patients(b)[["patient", "dice"]], on="patient",
                     suffixes=("_a", "_b"))
    table["diff"] = table["dice_a"] - table["dice_b"]
    table = table.join(most_different_slices(a.slices, b.slices), on="patient", how="inner")
    order = table["diff"].abs().sort_values(ascending=False, kind="stable").index
    return table.loc[order].head(limit).reset_index(drop=True)


def pairs_table_markdown(pairs: pd.DataFrame, digits: int = 3) -> list[str]:
    """:func:`pairwise`'s table as markdown lines, a pair per row with its verdict in words."""
    lines = ["| A | B | patients | mean A | mean B | A − B (95% CI) | Wilcoxon p | Holm p | verdict |",
             "|---|---|---:|---:|---:|---|---:|---:|---|"]
    for _, r in pairs.iterrows():
        lines.append(
            f"| `{r['a']}` | `{r['b']}` | {r['n']} | {r['mean_a']:.{digits}f} | {r['mean_b']:.{digits}f} "
            f"| {r['mean_diff']:+.{digits}f} ({r['ci_low']:+.{digits}f} to {r['ci_high']:+.{digits}f}) "
            f"| {format_p(r['p'])} | {format_p(r['p_holm'])} | {named_verdict(r)} |")
    return lines


def pairs_markdown(evals: dict[str, EvalTables], n_boot: int = 10_000, seed: int = 0, alpha: float = 0.05) -> str:
    """Markdown tables of :func:`pairwise` for every metric of :data:`HIGHER_IS_BETTER`, each under a line saying
    what was tested."""
    sections = []
    for metric, higher in HIGHER_IS_BETTER.items():
        pairs = pairwise(patient_values(evals, metric), metric, n_boot, seed, alpha)
        if pairs.empty:
            return "Pairwise comparisons need at least two evaluated segmenters."
        heading = (f"Pairwise {METRIC_LABELS[metric]}, {'higher' if higher else 'lower'} is better, on the held-out "
                   f"patients both models share: mean A − B with a paired bootstrap 95% CI over patients "
                   f"({n_boot:,} resamples), two-sided Wilcoxon signed-rank p, Holm–Bonferroni over all pairs "
                   f"(m = {len(pairs)}), verdict at α = {alpha} after Holm.")
        sections += ["", heading, "", *pairs_table_markdown(pairs, 3 if metric == "dice" else 1)]
    return "\n".join(sections[1:])
