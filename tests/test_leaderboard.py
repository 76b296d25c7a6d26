"""Leaderboard rows from artifact records, including the ones that cannot be shown yet."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lgg_core.serving.records import EvalTables, ModelRecord, resolve_models
from lgg_core.evaluation.leaderboard import leaderboard, leaderboard_row


def test_rows_sort_segmenters_by_dice_and_keep_broken_entries_last() -> None:
    seg = {"task": "segment", "arch": "unet", "params": 10, "training": {"fold": 0}}
    summary = lambda dice: {"variants": {"raw": {  # noqa: E731
        "patient_dice": dice, "patient_dice_ci": [dice - 0.1, dice + 0.1], "tumor_slice_dice": dice,
        "tumor_slice_iou": dice, "hd95": 3.0, "assd": 1.0, "presence_accuracy": 0.9}}}
    rows = [
        leaderboard_row(ModelRecord("a", Path("a"), seg), EvalTables(summary(0.6), pd.DataFrame(), None), None),
        leaderboard_row(ModelRecord("missing", None, problem="gone"), None, "gone"),
        leaderboard_row(ModelRecord("b", Path("b"), seg), EvalTables(summary(0.8), pd.DataFrame(), None), None),
    ]
    table = leaderboard(rows)
    assert table["model"].tolist() == ["b", "a", "missing"]
    assert table.set_index("model").loc["b", "patient_dice_ci"] == "0.700–0.900"
    assert table.set_index("model").loc["missing", "status"] == "gone"


def test_resolve_models_reports_missing_and_hub_entries(tmp_path: Path) -> None:
    (tmp_path / "models.toml").write_text('[[model]]\nname = "x"\npath = "x"\n\n'
                                          '[[model]]\nname = "h"\nrepo_id = "u/r"\n')
    records, problem = resolve_models(tmp_path / "models.toml")
    assert problem is None
    assert [r.ok for r in records] == [False, False]
    assert "does not exist" in records[0].problem and "Hub" in records[1].problem
    assert resolve_models(tmp_path / "nope.toml")[1].startswith("model catalog")


def test_cli_leaderboard_prints_the_readme_tables(tmp_path_factory, capsys) -> None:
    import json

    from e2e.zoo import build_tiny_zoo

    from lgg_core.cli import main

    catalog = build_tiny_zoo(tmp_path_factory.getbasetemp() / "tiny-zoo")
    assert main(["leaderboard", "--catalog", str(catalog)]) == 0
    out = capsys.readouterr()
    rows = {line.split("`")[1]: line for line in out.out.splitlines() if line.startswith("| `")}
    assert set(rows) == {"cnn-encdec", "unet-mini", "resnet18"}
    summary = json.loads((catalog.parent / "cnn-encdec" / "eval" / "summary.json").read_text())
    raw = summary["variants"]["raw"]
    assert f"| {raw['patient_dice']:.3f} ({raw['patient_dice_ci'][0]:.3f}–" in rows["cnn-encdec"]
    assert "`train/zoo.sh cnn-encdec`" in rows["cnn-encdec"] and "| gated by resnet18 |" in out.out
    assert "skipped not-evaluated" in out.err and "skipped not-trained-yet" in out.err


def test_gated_patient_dice_by_hand() -> None:
    from lgg_core.evaluation.leaderboard import gated_patient_dice

    keys = {"patient": ["p", "p", "q"], "slice": [1, 2, 1]}
    seg = pd.DataFrame({**keys, "variant": "raw", "tp": [8, 2, 0], "fp": [0, 2, 3], "fn": [2, 0, 0],
                        "true_tumor": [True, True, False], "pred_tumor": [True, True, True],
                        "dice": 0.0, "iou": 0.0, "precision": 0.0, "recall": 0.0, "hd95": 0.0, "assd": 0.0})
    # The classifier rejects p's second slice (its 2 tumor pixels become misses) and q's tumor-free slice.
    cls = pd.DataFrame({**keys, "prob": [0.9, 0.1, 0.2]})
    tables = lambda slices: EvalTables({}, slices, None)  # noqa: E731
    # p: tp 8, fp 0, fn 2 + 2 -> 16 / 20; q: nothing predicted, nothing there -> 1.
    assert gated_patient_dice(tables(cls), tables(seg)) == pytest.approx((16 / 20 + 1.0) / 2)


def test_cli_leaderboard_pairs_prints_the_pairwise_tables(tmp_path_factory, capsys) -> None:
    from e2e.zoo import build_tiny_zoo

    from lgg_core.cli import main

    catalog = build_tiny_zoo(tmp_path_factory.getbasetemp() / "tiny-zoo")
    assert main(["leaderboard", "--catalog", str(catalog)]) == 0
    assert "Pairwise" not in capsys.readouterr().out
    assert main(["leaderboard", "--catalog", str(catalog), "--pairs"]) == 0
    out = capsys.readouterr().out
    assert "Pairwise per-patient Dice" in out and "Pairwise per-patient HD95" in out
    pair_rows = [line for line in out.splitlines() if line.startswith("| `") and "` | `" in line]
    assert len(pair_rows) == 2  # the tiny zoo's two segmenters: one pair per metric
    dice_row = pair_rows[0]
    dice = {}
    for name in ("cnn-encdec", "unet-mini"):
        patients = pd.read_csv(catalog.parent / name / "eval" / "patients.csv")
        dice[name] = patients[patients["variant"] == "raw"]["dice"].mean()  # one held-out patient
    a, b = dice_row.split("`")[1], dice_row.split("`")[3]
    assert {a, b} == set(dice) and dice[a] >= dice[b]
    assert f"| 1 | {dice[a]:.3f} | {dice[b]:.3f} | {dice[a] - dice[b]:+.3f} " in dice_row
    assert dice_row.endswith("| no significant difference |")  # one patient cannot be significant


def test_pairwise_figure_reads_from_the_row_model() -> None:
    from lgg_core.evaluation.leaderboard import pairwise_figure
    from lgg_core.evaluation.stats import pairwise

    rng = np.random.default_rng(0)
    base = rng.uniform(0.4, 0.8, 20)
    scores = {"good": base + 0.1, "mid": base + rng.normal(0, 0.01, 20), "low": base - 0.1}
    values = pd.DataFrame([{"model": m, "patient": i, "dice": v} for m, vs in scores.items() for i, v in enumerate(vs)])
    fig = pairwise_figure(pairwise(values))
    heat = fig.data[0]
    assert list(heat.y) == list(heat.x) == ["good", "mid", "low"]
    z = np.array(heat.z, dtype=float)
    assert np.isnan(np.diag(z)).all()
    np.testing.assert_allclose(z, -z.T)  # row − column
    assert z[0, 2] == pytest.approx(0.2)
    assert "better" in heat.text[0][2] and "worse" in heat.text[2][0] and heat.text[1][1] == ""
    assert heat.zmid == 0 and "row − column" in heat.colorbar.title.text
    assert heat.colorscale[0][1] == "rgb(103,0,31)"  # red for negative, as the page's caption says
