"""Failure ranking and the gated pipeline's table derived from its parts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lgg_core.evaluation.failures import counts, failure_cases, gated_slices


def seg_table() -> pd.DataFrame:
    # slice 1: FP of 50 px; 2: FN of 80 px; 3: Dice 0.5; 4: Dice 0.9; 5: correct empty.
    return pd.DataFrame({
        "patient": ["P"] * 5, "institution": ["CS"] * 5, "slice": [1, 2, 3, 4, 5],
        "dice": [0.0, 0.0, 0.5, 0.9, 1.0], "iou": [0.0, 0.0, 0.33, 0.8, 1.0],
        "precision": [0.0, 0.0, 0.5, 0.9, 1.0], "recall": [0.0, 0.0, 0.5, 0.9, 1.0],
        "hd95": [362.0, 362.0, 5.0, 1.0, np.nan], "assd": [362.0, 362.0, 2.0, 0.5, np.nan],
        "tp": [0, 0, 50, 90, 0], "fp": [50, 0, 50, 10, 0], "fn": [0, 80, 50, 10, 0],
        "true_tumor": [False, True, True, True, False], "pred_tumor": [True, False, True, True, False],
    })


def test_each_kind_ranks_by_severity() -> None:
    table = seg_table()
    assert failure_cases(table, "false positives")["slice"].tolist() == [1]
    assert failure_cases(table, "false negatives")["severity"].tolist() == [80]
    assert failure_cases(table, "worst Dice")["slice"].tolist() == [3, 4]
    assert counts(table) == {"false positives": 1, "false negatives": 1, "worst Dice": 2}
    with pytest.raises(ValueError, match="unknown failure kind"):
        failure_cases(table, "typos")


def test_gate_removes_false_positives_and_can_miss_tumor() -> None:
    classifier = pd.DataFrame({"patient": ["P"] * 5, "slice": [1, 2, 3, 4, 5], "prob": [0.1, 0.9, 0.2, 0.8, 0.1]})
    gated = gated_slices(classifier, seg_table()).set_index("slice")
    assert not gated.loc[1, "pred_tumor"] and gated.loc[1, "dice"] == 1.0 and np.isnan(gated.loc[1, "hd95"])
    assert gated.loc[3, "dice"] == 0.0 and gated.loc[3, "fn"] == 100 and gated.loc[3, "tp"] == 0
    assert gated.loc[3, "hd95"] == pytest.approx(np.hypot(256, 256))
    assert gated.loc[4, "dice"] == 0.9  # kept: the segmenter's own mask
    assert counts(gated.reset_index()) == {"false positives": 0, "false negatives": 2, "worst Dice": 1}


def test_cases_of_loaded_slices_fill_the_limit_and_are_counted() -> None:
    other = seg_table().assign(patient="Q", fp=[70, 0, 50, 10, 0])  # Q's false positive is the more severe one
    table = pd.concat([other, seg_table()], ignore_index=True)
    patient_p = seg_table()[["patient", "slice"]]
    assert failure_cases(table, "false positives", limit=1)["patient"].tolist() == ["Q"]
    assert failure_cases(table, "false positives", limit=1, loaded=patient_p)["patient"].tolist() == ["P"]
    assert failure_cases(table, "worst Dice", loaded=patient_p)["slice"].tolist() == [3, 4]
    assert failure_cases(table, "worst Dice", loaded=patient_p.iloc[:0]).empty
    assert counts(table) == {"false positives": 2, "false negatives": 2, "worst Dice": 4}
    assert counts(table, patient_p) == counts(seg_table())
    # Slices, not patients: a patient of which only some slices are loaded (the demo's gallery slices).
    some = pd.DataFrame({"patient": ["Q", "P"], "slice": [4, 1]})
    assert failure_cases(table, "worst Dice", loaded=some)[["patient", "slice"]].values.tolist() == [["Q", 4]]
    assert counts(table, some) == {"false positives": 1, "false negatives": 0, "worst Dice": 1}
