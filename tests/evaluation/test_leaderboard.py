"""Leaderboard rows from artifact records, including the ones that cannot be shown yet."""
from __future__ import annotations

import json
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
        "tumor_slice_iou": dice, "hd95": 3.0, "assd": 1.0, "presence_accuracy": 0.9, "patients": 5}}}
    rows = [
        leaderboard_row(ModelRecord("a", Path("a"), seg), EvalTables(summary(0.6), pd.DataFrame(), None), None),
        leaderboard_row(ModelRecord("missing", None, problem="gone"), None, "gone"),
        leaderboard_row(ModelRecord("b", Path("b"), seg), EvalTables(summary(0.8), pd.DataFrame(), None), None),
    ]
    table = leaderboard(rows)
    assert table["model"].tolist() == ["b", "a", "missing"]
    assert table.set_index("model").loc["b", ["patient_dice_low", "patient_dice_high"]].tolist() == pytest.approx(
        [0.7, 0.9])
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
    segmenters = ("cnn-encdec", "unet-mini", "unet-mini-2.5d")
    # resnet18 takes the three sequences, so it gates no model taking 2.5D input.
    assert set(rows) == {*segmenters, "resnet18", *(f"{m} + {v}" for m in segmenters
                                                    for v in ("largest component", "flip TTA")),
                         "gated: resnet18 → cnn-encdec", "gated: resnet18 → unet-mini"}
    summary = json.loads((catalog.parent / "cnn-encdec" / "eval" / "summary.json").read_text())
    raw, lcc = summary["variants"]["raw"], summary["variants"]["lcc"]
    assert f"| {raw['patient_dice']:.3f} ({raw['patient_dice_ci'][0]:.3f}–" in rows["cnn-encdec"]
    assert "`train/zoo.sh cnn-encdec`" in rows["cnn-encdec"] and "| gated by resnet18 |" in out.out
    # The tiny zoo holds out one patient: the variant table gives no CI for it.
    assert rows["cnn-encdec + largest component"].startswith(
        f"| `cnn-encdec + largest component` | post-processing | 1 | {lcc['patient_dice']:.3f} | "
        f"{lcc['tumor_slice_dice']:.3f} | {lcc['hd95']:.1f} | {lcc['presence_accuracy']:.3f} |")
    assert "| gated pipeline | 1 |" in rows["gated: resnet18 → unet-mini"]
    assert "skipped not-evaluated" in out.err and "skipped not-trained-yet" in out.err


def test_gated_patient_dice_by_hand() -> None:
    from lgg_core.evaluation.leaderboard import gated_patient_dice

    keys = {"patient": ["p", "p", "q"], "slice": [1, 2, 1]}
    seg = pd.DataFrame({**keys, "variant": "raw", "institution": "X", "tp": [8, 2, 0], "fp": [0, 2, 3], "fn": [2, 0, 0],
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
    assert len(pair_rows) == 2 * 3  # the tiny zoo's three segmenters: three pairs per metric
    dice = {}
    for name in ("cnn-encdec", "unet-mini", "unet-mini-2.5d"):
        patients = pd.read_csv(catalog.parent / name / "eval" / "patients.csv")
        dice[name] = patients[patients["variant"] == "raw"]["dice"].mean()  # one held-out patient
    for dice_row in pair_rows[:3]:
        a, b = dice_row.split("`")[1], dice_row.split("`")[3]
        assert dice[a] >= dice[b]
        assert f"| 1 | {dice[a]:.3f} | {dice[b]:.3f} | {dice[a] - dice[b]:+.3f} " in dice_row
        assert dice_row.endswith("| no significant difference |")  # one patient cannot be significant
    assert {frozenset(row.split("`")[1:4:2]) for row in pair_rows[:3]} == {
        frozenset(pair) for pair in [("cnn-encdec", "unet-mini"), ("cnn-encdec", "unet-mini-2.5d"),
                                     ("unet-mini", "unet-mini-2.5d")]}
    # The Leaderboard's first view: each other segmenter against the one with the best validation score.
    configs = {name: json.loads((catalog.parent / name / "config.json").read_text()) for name in dice}
    best = max(dice, key=lambda name: configs[name]["training"]["best_val_score"])
    assert f"Each segmenter against the champion, {best} " in out and "Holm over these 2 tests" in out
    against = [line for line in out.splitlines() if line.startswith("| ") and line.endswith("|")
               and line.split(" | ")[0][2:] in set(dice) - {best} and line.split(" | ")[1] == "1"]
    assert {line.split(" | ")[0][2:] for line in against} == set(dice) - {best}
    for line in against:
        other = line.split(" | ")[0][2:]
        assert f"| 1 | {dice[other]:.3f} | {dice[best]:.3f} | {dice[best] - dice[other]:+.3f} " in line


def test_pairwise_figure_reads_from_the_row_model() -> None:
    from lgg_core.app.charts import pairwise_figure
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


def synthetic_segmenter(seed: int = 0, patients: int = 8) -> tuple[ModelRecord, EvalTables]:
    """A segmenter's eval tables as ``lgg evaluate`` writes them (raw and lcc), from random pixel counts."""
    from lgg_core.evaluation.tables import segmentation_summary

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(patients):
        for number in range(1, 7):
            tumor = number % 2 == 0
            tp = int(rng.integers(0, 50)) if tumor else 0
            fn = int(rng.integers(1, 30)) if tumor else 0
            fp = int(rng.integers(0, 20) * rng.integers(0, 2))
            rows.append({"patient": f"P{i}", "institution": "XY"[i % 2], "slice": number, "tp": tp, "fp": fp,
                         "fn": fn, "true_tumor": tumor, "pred_tumor": tp + fp > 0})
    raw = pd.DataFrame(rows)
    denominator = 2 * raw["tp"] + raw["fp"] + raw["fn"]
    raw["dice"] = np.where(denominator > 0, 2 * raw["tp"] / denominator.clip(lower=1), 1.0)
    raw["iou"] = np.where(denominator > 0, raw["tp"] / (raw["tp"] + raw["fp"] + raw["fn"]).clip(lower=1), 1.0)
    raw["precision"], raw["recall"] = raw["dice"], raw["dice"]
    raw["hd95"] = np.where(raw["pred_tumor"] & raw["true_tumor"], rng.uniform(1, 40, len(raw)),
                           np.where(raw["pred_tumor"] | raw["true_tumor"], 362.0, np.nan))
    raw["assd"] = raw["hd95"] / 2
    lcc = raw.assign(fp=0, pred_tumor=raw["tp"] > 0)
    lcc["dice"] = np.where(lcc["tp"] + lcc["fn"] > 0, 2 * lcc["tp"] / (2 * lcc["tp"] + lcc["fn"]).clip(lower=1), 1.0)
    slices = pd.concat([raw.assign(variant="raw"), lcc.assign(variant="lcc")], ignore_index=True)
    sums = slices.groupby(["variant", "patient", "institution"], as_index=False, sort=False)[["tp", "fp", "fn"]].sum()
    total = 2 * sums["tp"] + sums["fp"] + sums["fn"]
    sums["dice"] = np.where(total > 0, 2 * sums["tp"] / total.clip(lower=1), 1.0)
    summary = {"task": "segment", "variants": segmentation_summary(slices, sums),
               "patients": sorted(raw["patient"].unique())}
    config = {"task": "segment", "arch": "unet", "params": 4_400_000, "training": {"fold": 0}}
    return ModelRecord("seg", Path("seg"), config), EvalTables(summary, slices, sums)


def classifier_for(segmenter: EvalTables, prob: np.ndarray | float) -> tuple[ModelRecord, EvalTables]:
    raw = segmenter.slices[segmenter.slices["variant"] == "raw"]
    slices = raw[["patient", "institution", "slice", "true_tumor"]].assign(prob=prob)
    config = {"task": "classify", "arch": "resnet18", "params": 11_200_000, "training": {"fold": 0}}
    summary = {"variants": {"raw": {"accuracy": 0.9, "auroc": 0.95, "auroc_ci": [0.9, 0.99], "patients": 8}},
               "patients": segmenter.summary["patients"]}
    return ModelRecord("cls", Path("cls"), config), EvalTables(summary, slices, None)


def test_variant_rows_are_named_and_carry_their_own_metrics_and_cis() -> None:
    from lgg_core.evaluation.leaderboard import variant_rows

    record, tables = synthetic_segmenter()
    (row,) = variant_rows(record, tables)  # the synthetic evaluation has raw and lcc only
    lcc = tables.summary["variants"]["lcc"]
    assert (row["model"], row["base"], row["variant"], row["kind"]) == (
        "seg + largest component", "seg", "lcc", "post-processing")
    assert (row["patient_dice"], [row["patient_dice_low"], row["patient_dice_high"]]) == (
        lcc["patient_dice"], lcc["patient_dice_ci"])
    assert (row["hd95"], row["accuracy"], row["patients"], row["params"]) == (
        lcc["hd95"], lcc["presence_accuracy"], 8, 4_400_000)
    assert row["patient_dice"] != tables.summary["variants"]["raw"]["patient_dice"]


def test_a_gate_that_keeps_every_slice_reproduces_the_segmenter_row_exactly() -> None:
    from lgg_core.evaluation.leaderboard import gated_row, leaderboard_row

    segmenter = synthetic_segmenter()
    gated = gated_row(classifier_for(segmenter[1], 1.0), segmenter)
    plain = leaderboard_row(*segmenter, None)
    assert (gated["model"], gated["kind"], gated["params"], gated["status"]) == (
        "gated: cls → seg", "gated pipeline", 15_600_000, "evaluated")
    for column in ("patients", "patient_dice", "patient_dice_low", "patient_dice_high", "tumor_slice_dice",
                   "tumor_slice_dice_low", "tumor_slice_dice_high", "iou", "hd95", "assd", "accuracy"):
        assert gated[column] == pytest.approx(plain[column], abs=1e-12), column
    assert gated["patient_dice_low"] < gated["patient_dice"] < gated["patient_dice_high"]


def test_a_gate_that_rejects_tumor_free_slices_scores_its_own_pipeline() -> None:
    from lgg_core.evaluation.leaderboard import gated_row
    from lgg_core.evaluation.metrics import bootstrap_ci
    from lgg_core.evaluation.stats import gated_patients

    record, tables = synthetic_segmenter()
    raw = tables.slices[tables.slices["variant"] == "raw"]
    classifier = classifier_for(tables, raw["true_tumor"].astype(float).to_numpy())  # a perfect classifier
    row = gated_row(classifier, (record, tables))
    per_patient = gated_patients(classifier[1], tables)
    # Perfect gating removes every false positive on tumor-free slices, and nothing else.
    kept = raw[raw["true_tumor"]].groupby("patient")[["tp", "fp", "fn"]].sum()
    expected = (2 * kept["tp"] / (2 * kept["tp"] + kept["fp"] + kept["fn"])).to_numpy()
    assert per_patient["dice"].to_numpy() == pytest.approx(expected)
    assert row["patient_dice"] == pytest.approx(expected.mean())
    assert (row["patient_dice_low"], row["patient_dice_high"]) == bootstrap_ci(per_patient["dice"].to_numpy())
    kept_masks = raw["pred_tumor"] & raw["true_tumor"]
    assert row["accuracy"] == pytest.approx((kept_masks == raw["true_tumor"]).mean())
    assert row["patient_dice"] > tables.summary["variants"]["raw"]["patient_dice"]


def test_all_rows_rank_every_kind_and_blank_single_patient_cis() -> None:
    from lgg_core.evaluation.leaderboard import all_rows, entry_patients

    segmenter = synthetic_segmenter()
    classifier = classifier_for(segmenter[1], 1.0)
    items = [(*segmenter, None), (*classifier, None), (ModelRecord("gone", None, problem="missing"), None, "missing")]
    table = leaderboard(all_rows(items))
    assert table["model"].tolist()[-2:] == ["cls", "gone"]  # classifiers after segmenters, broken entries last
    segment = table[table["task"] == "segment"]
    assert set(segment["model"]) == {"seg", "seg + largest component", "gated: cls → seg"}
    assert segment["patient_dice"].is_monotonic_decreasing
    per_patient = entry_patients(items)
    assert per_patient.groupby("model")["patient"].nunique().to_dict() == {
        "seg": 8, "seg + largest component": 8, "gated: cls → seg": 8}
    means = per_patient.groupby("model")["dice"].mean()
    assert means.to_dict() == pytest.approx(table.set_index("model")["patient_dice"][means.index].to_dict())

    one = synthetic_segmenter(patients=1)
    single = leaderboard(all_rows([(*one, None)])).set_index("model")
    assert single.loc["seg", "patients"] == 1
    assert single[["patient_dice_low", "patient_dice_high", "tumor_slice_dice_low"]].isna().all().all()


def test_institution_breakdown_counts_patients_and_gives_cis() -> None:
    from lgg_core.app.board import institution_display
    from lgg_core.evaluation.leaderboard import institution_breakdown
    from lgg_core.evaluation.metrics import bootstrap_ci

    per_patient = pd.DataFrame({"model": ["a"] * 4 + ["b"] * 4, "patient": list("pqrs") * 2,
                                "institution": ["X", "X", "X", "Y"] * 2,
                                "dice": [0.9, 0.7, 0.8, 0.3, 0.5, 0.6, 0.4, 0.2]})
    table = institution_breakdown(per_patient)
    assert table[["institution", "model", "patients"]].values.tolist() == [
        ["X", "a", 3], ["X", "b", 3], ["Y", "a", 1], ["Y", "b", 1]]
    assert table["dice"].tolist() == pytest.approx([0.8, 0.5, 0.3, 0.2])
    low, high = bootstrap_ci(np.array([0.9, 0.7, 0.8]))
    shown = institution_display(table)
    assert shown.columns.tolist() == ["Institution", "Model", "Patients (n)", "Per-patient Dice (95% CI)"]
    assert shown["Per-patient Dice (95% CI)"].tolist() == [f"0.800 ({low:.3f}–{high:.3f})", shown.iloc[1, 3],
                                                           "0.300", "0.200"]


def test_institution_figure_is_one_cell_per_model_and_institution_best_first() -> None:
    from lgg_core.app.charts import institution_figure
    from lgg_core.evaluation.leaderboard import institution_breakdown

    models = [f"model-{i}" for i in range(30)]  # more rows than grouped bars could label
    per_patient = pd.DataFrame([{"model": m, "patient": p, "institution": site, "dice": (i + j) / 60}
                                for i, m in enumerate(models) for j, (p, site) in enumerate(
                                    [("p", "X"), ("q", "X"), ("r", "Y")])])
    fig = institution_figure(institution_breakdown(per_patient, n_boot=50))
    (heatmap,) = fig.data
    assert list(heatmap.y) == models[::-1]  # best overall first, every model labelled
    assert list(heatmap.x) == ["X (n=2)", "Y (n=1)"]
    assert heatmap.z[0][1] == pytest.approx(31 / 60) and heatmap.customdata[0][1] == "0.517; patients: 1"
    assert "(95% CI" in heatmap.customdata[0][0]
    assert fig.layout.height >= 24 * len(models)


def test_styled_table_shows_words_rounded_numbers_cis_and_dashes() -> None:
    from lgg_core.app.board import LABELS, styled
    from lgg_core.evaluation.leaderboard import all_rows, with_latency
    from lgg_core.serving.latency import Latency

    segmenter = synthetic_segmenter()
    items = [(*segmenter, None), (ModelRecord("gone", None, problem="missing"), None, "missing")]
    latencies = {("seg", "raw"): Latency(12.345, 11.0, 14.0, "ONNX Runtime · CPU", 5, 0.0),
                 ("seg", "lcc"): Latency(250.4, 240.0, 260.0, "PyTorch · CPU", 5, 0.0)}
    table = with_latency(leaderboard(all_rows(items)), latencies)
    style = styled(table)
    style._compute()
    shown = pd.DataFrame([[cell["display_value"] for cell in row[1:]] for row in style._translate(False, False)["body"]],
                         columns=table.columns).set_index("model")
    raw = segmenter[1].summary["variants"]["raw"]
    low, high = raw["patient_dice_ci"]
    assert shown.loc["seg", "patient_dice"] == f"{raw['patient_dice']:.3f} ({low:.3f}–{high:.3f})"
    assert shown.loc["seg", "hd95"] == f"{raw['hd95']:.1f}" and shown.loc["seg", "params"] == "4.4M"
    assert (shown.loc["seg", "latency_ms"], shown.loc["seg", "timed_on"]) == ("12.3", "ONNX Runtime · CPU")
    assert shown.loc["seg + largest component", "latency_ms"] == "250"
    assert (shown.loc["gone", ["patient_dice", "hd95", "latency_ms", "params", "timed_on"]] == "–").all()
    assert table.set_index("model").loc["seg", "latency_ms"] == 12.345  # the numbers stay for sorting
    assert list(LABELS)[:3] == ["model", "patient_dice", "latency_ms"]  # latency in view next to the headline
    assert LABELS["hd95"] == "HD95 (px)" and LABELS["patient_dice"] == "Per-patient Dice (95% CI)"


def test_scatter_labels_never_overlap_leave_the_plot_or_cover_a_point() -> None:
    from lgg_core.app.charts import _MARKER_PX, _overlap, label_boxes, scatter_figure

    rng = np.random.default_rng(0)
    width, height = 420, 320
    points = np.column_stack([rng.uniform(0, width, 40), rng.uniform(0, height, 40)])
    labels = [f"model-{i}" + "x" * int(rng.integers(0, 12)) for i in range(40)]
    positions, boxes = label_boxes(points, labels, width, height)
    placed = [b for b in boxes if b is not None]
    assert 5 < len(placed) < 40  # crowded: some labels fit, some are left to hover
    for i, box in enumerate(placed):
        assert 0 <= box[0] and box[2] <= width and 0 <= box[1] and box[3] <= height
        assert not any(_overlap(box, other) for other in placed[i + 1:])
        assert not any(_overlap(box, (x - _MARKER_PX, y - _MARKER_PX, x + _MARKER_PX, y + _MARKER_PX))
                       for x, y in points)
    assert [p is None for p in positions] == [b is None for b in boxes]

    apart = np.array([[60.0, 60.0], [300.0, 250.0], [200.0, 120.0]])
    assert None not in label_boxes(apart, ["a", "b", "c"], width, height)[0]
    same = label_boxes(np.array([[200.0, 150.0]] * 12), list("abcdefghijkl"), width, height)[0]
    assert len(set(same) - {None}) == 8 and same[8:] == [None] * 4  # rows on one spot: one place each while any is left
    edge = label_boxes(np.array([[2.0, 2.0]]), ["a-long-model-name"], width, height)[1][0]
    assert edge[0] >= 0 and edge[1] >= 0  # a corner point's label goes inward, not off the plot

    table = pd.DataFrame({"model": ["best", "runner-up", "gated", "variant"],
                          "kind": ["model", "model", "gated pipeline", "post-processing"],
                          "hd95": [10.0, 30.0, 80.0, 60.0], "patient_dice": [0.8, 0.78, 0.5, 0.52]})
    fig = scatter_figure(table, "hd95", "patient_dice", "Dice vs HD95")
    texts = {name: text for trace in fig.data for name, text in zip(trace.customdata[:, 0], trace.text, strict=True)}
    assert texts == {name: name for name in table["model"]}
    assert fig.layout.title.text == "Dice vs HD95"  # nothing left out, nothing to say
    assert [trace.name for trace in fig.data] == ["model", "gated pipeline", "post-processing"]
    crowded = pd.DataFrame({"model": [f"m{i}" for i in range(12)], "kind": "model", "hd95": 10.0,
                            "patient_dice": 0.8})
    assert "4 of 12 labels left out" in scatter_figure(crowded, "hd95", "patient_dice", "t").layout.title.text
    assert all(trace.cliponaxis is False for trace in fig.data)
    assert fig.layout.xaxis.title.text == "HD95 (px)" and fig.layout.xaxis.range[0] < 10 < 80 < fig.layout.xaxis.range[1]


@pytest.mark.parametrize(("config", "expected"), [
    ({"task": "segment", "arch": "unet"}, True),
    ({"task": "segment", "arch": "gated"}, False),  # already gated: a second gate would only stack classifiers
    ({"task": "classify", "arch": "resnet18"}, False),
])
def test_only_plain_segmenters_can_be_gated(config: dict, expected: bool) -> None:
    from lgg_core.serving.records import gateable

    assert gateable(ModelRecord("m", Path("m"), config)) is expected


@pytest.mark.parametrize(("classifier_inputs", "segmenter_inputs", "expected"), [
    ("sequences", "sequences", True), ("sequences", "flair-2.5d", False), ("flair-2.5d", "flair-2.5d", True)])
def test_a_classifier_gates_only_segmenters_taking_its_inputs(classifier_inputs: str, segmenter_inputs: str,
                                                               expected: bool) -> None:
    from lgg_core.serving.records import gates

    classifier = ModelRecord("c", Path("c"), {"task": "classify", "arch": "resnet18",
                                             "training": {"inputs": classifier_inputs}})
    segmenter = ModelRecord("s", Path("s"), {"task": "segment", "arch": "unet",
                                             "training": {"inputs": segmenter_inputs}})
    assert gates(classifier, segmenter) is expected
    assert not gates(segmenter, classifier)


def _candidate(name: str, val: float | None, protocol: str = "p1", task: str = "segment") -> tuple:
    from lgg_core.serving.records import ModelRecord

    training = {"protocol": protocol, "fold": 0, "patients": {"val": 18}, "best_val_score": val}
    return ModelRecord(name, None, {"arch": "unet", "task": task, "training": training}), object(), None


def test_champion_is_chosen_on_validation_within_the_largest_comparable_group() -> None:
    from lgg_core.evaluation.leaderboard import champion

    items = [_candidate("a", 0.70), _candidate("b", 0.75), _candidate("c", 0.71),
             _candidate("other-recipe", 0.99, protocol="p0"),  # a better score from other validation patients
             _candidate("classifier", 0.98, task="classify"), _candidate("composite", None)]
    assert champion(items) == "b"
    assert champion([(record, None, None) for record, _, _ in items]) is None  # nothing evaluated


def test_against_the_champion_is_many_to_one_with_holm_over_k_minus_one() -> None:
    from lgg_core.evaluation.external import compare

    patients = [f"p{i}" for i in range(12)]
    best = pd.DataFrame({"patient": patients, "dice": np.linspace(0.7, 0.95, 12)})
    others = {"close": best.assign(dice=best["dice"] - 0.001 * (np.arange(12) % 3 - 1)),
              "far": best.assign(dice=best["dice"] - 0.2)}
    table = compare(best, others, n_boot=500, name="best").set_index("model")
    assert table.loc["far", "verdict"] == "best better" and table.loc["far", "mean_diff"] == pytest.approx(0.2)
    assert table.loc["close", "verdict"] == "no significant difference"
    assert table["p_holm"].min() == pytest.approx(min(2 * table["p"].min(), 1.0))
