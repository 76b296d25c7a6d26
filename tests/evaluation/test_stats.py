"""Paired comparisons of segmenters on synthetic per-patient tables whose answers are known."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lgg_core.evaluation.metrics import bootstrap_ci
from lgg_core.evaluation.stats import (
    gated_patients,
    holm,
    largest_differences,
    mean_ci_by,
    most_different_slices,
    ordered_pairs,
    pairwise,
    patient_hd95,
    patient_values,
    variant_patients,
)
from lgg_core.serving.records import EvalTables

PATIENTS = [f"P{i:02d}" for i in range(20)]


def values(scores: dict[str, list[float]], metric: str = "dice") -> pd.DataFrame:
    """Long (model, patient, metric) table, one score per patient of PATIENTS (NaN: patient not evaluated)."""
    rows = [{"model": m, "patient": p, metric: v}
            for m, vs in scores.items() for p, v in zip(PATIENTS, vs, strict=True)]
    return pd.DataFrame(rows).dropna()


def base_scores(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.4, 0.8, len(PATIENTS))


def test_a_clearly_better_model_is_significant_with_a_ci_above_zero() -> None:
    base = base_scores()
    gain = np.random.default_rng(1).uniform(0.05, 0.15, len(PATIENTS))
    # "good" is listed last: pairs put the model with the better mean first anyway.
    pairs = pairwise(values({"plain": list(base), "good": list(base + gain)}))
    pair = pairs.iloc[0]
    assert (pair["a"], pair["b"], pair["n"]) == ("good", "plain", 20)
    assert pair["mean_diff"] == pytest.approx(gain.mean())
    assert 0 < pair["ci_low"] < gain.mean() < pair["ci_high"]
    assert pair["p"] < 0.05 and pair["p_holm"] == pair["p"]  # a single pair: Holm changes nothing
    assert pair["verdict"] == "A better"


def test_lower_is_better_for_hd95() -> None:
    base = 20 + 40 * base_scores()
    pairs = pairwise(values({"far": list(base + 10), "near": list(base)}, "hd95"), "hd95")
    pair = pairs.iloc[0]
    assert (pair["a"], pair["b"]) == ("near", "far")
    assert pair["mean_diff"] == pytest.approx(-10) and pair["ci_high"] == pytest.approx(-10)
    assert pair["verdict"] == "A better"


def test_identical_models_differ_by_zero_and_not_significantly() -> None:
    base = list(base_scores())
    pair = pairwise(values({"x": base, "y": base})).iloc[0]
    assert (pair["mean_diff"], pair["ci_low"], pair["ci_high"]) == (0.0, 0.0, 0.0)
    assert pair["p"] == 1.0 and pair["p_holm"] == 1.0
    assert pair["verdict"] == "no significant difference"
    # scipy raises on one all-zero difference: a single shared patient scored the same is still "no difference".
    one = pairwise(values({"x": [0.5] + [np.nan] * 19, "y": [0.5] + [np.nan] * 19})).iloc[0]
    assert (one["n"], one["p"], one["verdict"]) == (1, 1.0, "no significant difference")


def test_tiny_and_empty_overlaps_are_reported_not_raised() -> None:
    rest = [np.nan] * (len(PATIENTS) - 2)
    pairs = pairwise(values({"x": [0.9, np.nan, *rest], "y": [0.5, np.nan, *rest], "z": [np.nan, 0.7, *rest]}))
    by_pair = pairs.set_index(["a", "b"])
    single = by_pair.loc[("x", "y")]
    assert single["n"] == 1 and single["p"] == 1.0
    assert single["ci_low"] == single["ci_high"] == pytest.approx(0.4)
    assert single["verdict"] == "no significant difference"
    for no_overlap in (("x", "z"), ("z", "y")):
        row = by_pair.loc[no_overlap]
        assert row["n"] == 0 and np.isnan(row["p"]) and np.isnan(row["p_holm"])
        assert row["verdict"] == "no shared patients"


def test_holm_matches_a_hand_computed_example() -> None:
    # Sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> raised to 0.06 (monotone).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.6, 0.7]).tolist() == [1.0, 1.0]  # capped at 1
    adjusted = holm([0.01, np.nan, 0.04])  # NaN is not a test: m = 2
    assert adjusted[0] == pytest.approx(0.02) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def test_holm_is_applied_across_all_pairs_of_a_metric() -> None:
    base = base_scores()
    rng = np.random.default_rng(2)
    pairs = pairwise(values({"a": list(base + 0.1), "b": list(base + rng.normal(0, 0.02, 20)), "c": list(base)}))
    assert len(pairs) == 3
    assert pairs["p_holm"].to_numpy() == pytest.approx(holm(pairs["p"]))
    assert (pairs["p_holm"] >= pairs["p"]).all() and (pairs["p_holm"] > pairs["p"]).any()


def test_significance_is_judged_after_holm() -> None:
    # Six patients, every difference of one sign and distinct: the exact two-sided p is 2 / 2**6 = 0.03125 per pair,
    # significant alone but 0.094 after Holm over three pairs.
    rest = [np.nan] * (len(PATIENTS) - 6)
    base, gain = np.full(6, 0.5), np.linspace(0.01, 0.06, 6)
    pairs = pairwise(values({"a": [*(base + gain), *rest], "b": [*base, *rest], "c": [*(base - 2 * gain), *rest]}))
    assert pairs["p"].to_numpy() == pytest.approx([0.03125] * 3)
    assert pairs["p_holm"].to_numpy() == pytest.approx([0.09375] * 3)
    assert (pairs["verdict"] == "no significant difference").all()


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    base = base_scores()
    table = values({"x": list(base), "y": list(base_scores(3))})
    first, again = pairwise(table, seed=7), pairwise(table, seed=7)
    pd.testing.assert_frame_equal(first, again)
    other = pairwise(table, seed=8)
    assert (other["ci_low"] != first["ci_low"]).all()
    assert other["p"].equals(first["p"])  # only the bootstrap depends on the seed


def test_the_verdict_follows_the_test_not_a_mean_driven_by_one_patient() -> None:
    steady = np.full(len(PATIENTS), 0.6)
    spiky = steady - 0.01
    spiky[0] = 1.0 + 0.6  # one huge win (values need not be Dice here) outweighs 19 small losses in the mean
    pair = pairwise(values({"steady": list(steady), "spiky": list(spiky)})).iloc[0]
    assert (pair["a"], pair["b"]) == ("spiky", "steady") and pair["mean_diff"] > 0
    assert pair["p_holm"] < 0.05 and pair["verdict"] == "B better"


def test_ordered_pairs_mirror_each_pair() -> None:
    base = base_scores()
    pairs = pairwise(values({"x": list(base + 0.1), "y": list(base)}))
    both = ordered_pairs(pairs).set_index(["a", "b"])
    forward, backward = both.loc[("x", "y")], both.loc[("y", "x")]
    assert backward["mean_diff"] == -forward["mean_diff"]
    assert (backward["ci_low"], backward["ci_high"]) == (-forward["ci_high"], -forward["ci_low"])
    assert (backward["mean_a"], backward["p_holm"]) == (forward["mean_b"], forward["p_holm"])
    assert (forward["verdict"], backward["verdict"]) == ("A better", "B better")


def slices_table(rows: list[tuple]) -> pd.DataFrame:
    """Slices table from (variant, patient, slice, dice, fp, fn, hd95, true_tumor) tuples."""
    return pd.DataFrame(rows, columns=["variant", "patient", "slice", "dice", "fp", "fn", "hd95", "true_tumor"])


def test_patient_hd95_averages_the_raw_tumor_slices_only() -> None:
    slices = slices_table([
        ("raw", "p", 1, 1.0, 0, 0, np.nan, False),  # tumor-free and right: no distance
        ("raw", "p", 2, 0.0, 30, 0, 362.0, False),  # tumor-free false positive: left to Dice
        ("raw", "p", 3, 0.8, 2, 3, 4.0, True),
        ("raw", "p", 4, 0.6, 5, 5, 8.0, True),
        ("lcc", "p", 3, 0.8, 2, 3, 100.0, True),
        ("raw", "q", 1, 1.0, 0, 0, np.nan, False),  # no tumor slice: no HD95
    ])
    patients = pd.DataFrame({"variant": ["raw"], "patient": ["p"], "institution": ["X"], "dice": [0.7]})
    table = patient_hd95({"m": EvalTables({}, slices, patients)})
    assert table.to_dict("records") == [{"model": "m", "patient": "p", "hd95": 6.0}]
    assert patient_values({"m": EvalTables({}, slices, patients)}, "dice")["dice"].tolist() == [0.7]


def test_largest_differences_rank_patients_and_point_at_a_slice() -> None:
    def tables(dice: dict[str, float], slices: list[tuple]) -> EvalTables:
        patients = pd.DataFrame({"variant": "raw", "patient": list(dice), "institution": "X",
                                 "dice": list(dice.values())})
        lcc = patients.assign(variant="lcc", dice=0.0)  # other variants must not leak in
        return EvalTables({}, slices_table(slices), pd.concat([patients, lcc]))

    a = tables({"p": 0.9, "q": 0.5, "r": 0.7, "t": 0.1}, [
        ("raw", "p", 1, 1.0, 0, 0, np.nan, False), ("raw", "p", 2, 0.9, 1, 1, 1.0, True),
        ("raw", "p", 3, 0.8, 0, 2, 1.0, True),
        ("raw", "q", 1, 0.0, 5, 0, 362.0, False), ("raw", "q", 2, 0.0, 0, 9, 362.0, True),
        ("raw", "r", 1, 0.5, 3, 3, 2.0, True),
        ("raw", "t", 1, 0.0, 2, 0, 362.0, False), ("raw", "t", 2, 0.1, 0, 500, 90.0, True),
        ("lcc", "p", 3, 0.0, 999, 0, 362.0, True)])  # post-processed rows must not count
    b = tables({"p": 0.2, "q": 0.6, "r": 0.7, "s": 0.5, "t": 0.75}, [
        ("raw", "p", 1, 1.0, 0, 0, np.nan, False), ("raw", "p", 2, 0.1, 9, 9, 9.0, True),
        ("raw", "p", 3, 0.7, 0, 3, 1.0, True),
        ("raw", "q", 1, 1.0, 0, 0, np.nan, False), ("raw", "q", 2, 1.0, 0, 0, 1.0, True),
        ("raw", "r", 1, 0.5, 3, 3, 2.0, True),
        ("raw", "t", 1, 1.0, 0, 0, np.nan, False), ("raw", "t", 2, 0.8, 0, 50, 9.0, True)])
    table = largest_differences(a, b)
    assert table["patient"].tolist() == ["p", "t", "q", "r"]  # by |diff|; s is not shared
    assert table["diff"].tolist() == pytest.approx([0.7, -0.65, -0.1, 0.0])
    assert table[["dice_a", "dice_b"]].iloc[0].tolist() == [0.9, 0.2]
    # p: slice 2 (16 pixels differ, against 1). t: slice 2, the 450 extra missed tumor pixels, not slice 1, where Dice
    # differs more (0 against 1) for 2 false-positive pixels. q: 9 against 5 pixels. r: its only slice.
    assert table["slice"].tolist() == [2, 2, 2, 1]
    assert most_different_slices(a.slices, b.slices).to_dict() == {"p": 2, "q": 2, "r": 1, "t": 2}
    tie = slices_table([("raw", "u", 1, 0.5, 4, 0, 1.0, True), ("raw", "u", 2, 0.9, 4, 0, 1.0, True)])
    other = slices_table([("raw", "u", 1, 0.5, 0, 0, 1.0, True), ("raw", "u", 2, 0.4, 0, 0, 1.0, True)])
    assert most_different_slices(tie, other).to_dict() == {"u": 2}  # equal pixels: the larger Dice gap
    assert len(largest_differences(a, b, limit=2)) == 2


def test_variant_patients_keeps_one_variant() -> None:
    patients = pd.DataFrame({"variant": ["raw", "lcc", "raw", "lcc"], "patient": ["p", "p", "q", "q"],
                             "institution": ["X", "X", "Y", "Y"], "dice": [0.5, 0.6, 0.7, 0.9], "slices": 3})
    tables = EvalTables({}, pd.DataFrame(), patients)
    assert variant_patients(tables, "lcc").to_dict("records") == [
        {"patient": "p", "institution": "X", "dice": 0.6}, {"patient": "q", "institution": "Y", "dice": 0.9}]
    assert variant_patients(tables)["dice"].tolist() == [0.5, 0.7]


def test_gated_patients_is_the_volume_dice_of_the_kept_masks() -> None:
    seg = pd.DataFrame({
        "variant": "raw", "patient": ["p", "p", "p", "q", "r"], "institution": ["X", "X", "X", "Y", "Y"],
        "slice": [1, 2, 3, 1, 1], "tp": [8, 2, 0, 0, 5], "fp": [0, 2, 4, 3, 0], "fn": [2, 0, 0, 0, 5],
        "true_tumor": [True, True, False, False, True], "pred_tumor": [True, True, True, True, True],
        "dice": 0.0, "iou": 0.0, "precision": 0.0, "recall": 0.0, "hd95": 0.0, "assd": 0.0})
    cls = seg[["patient", "slice"]].assign(prob=[0.9, 0.1, 0.2, 0.3, 0.6])
    table = gated_patients(EvalTables({}, cls, None), EvalTables({}, seg, None))
    # p keeps slice 1 only: tp 8, fn 2 + 2 -> 16 / 20. q: its false positive is dropped, nothing left -> 1.
    # r: kept as is, 10 / 15. A threshold of 0.05 also keeps p's slices 2 and 3 (20 / 28) and q's false positive.
    assert table.to_dict("records") == [{"patient": "p", "institution": "X", "dice": pytest.approx(0.8)},
                                        {"patient": "q", "institution": "Y", "dice": 1.0},
                                        {"patient": "r", "institution": "Y", "dice": pytest.approx(2 / 3)}]
    low = gated_patients(EvalTables({}, cls, None), EvalTables({}, seg, None), threshold=0.05)
    assert low["dice"].tolist() == pytest.approx([20 / 28, 0.0, 2 / 3])


def test_mean_ci_by_counts_patients_and_leaves_single_patients_without_a_ci() -> None:
    dice = [0.2, 0.4, 0.6, 0.9, 0.5]
    table = pd.DataFrame({"model": "m", "institution": ["X", "X", "X", "X", "Y"], "patient": list("abcde"),
                          "dice": dice})
    out = mean_ci_by(table, ["model", "institution"], n_boot=500, seed=3).set_index("institution")
    assert out.loc["X", "patients"] == 4 and out.loc["X", "mean"] == pytest.approx(0.525)
    low, high = bootstrap_ci(np.array(dice[:4]), n_boot=500, seed=3)
    assert (out.loc["X", "ci_low"], out.loc["X", "ci_high"]) == (low, high)
    assert 0.2 <= low < 0.525 < high <= 0.9
    assert out.loc["Y", "patients"] == 1 and out.loc["Y", "mean"] == 0.5
    assert np.isnan(out.loc["Y", "ci_low"]) and np.isnan(out.loc["Y", "ci_high"])
    assert out["model"].tolist() == ["m", "m"]
