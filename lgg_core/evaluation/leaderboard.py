"""The leaderboard: one row per model from its config and eval tables, the per-institution table, CPU latency, and
the Plotly figures of the Leaderboard page (per-patient tables and pairwise tests: :mod:`lgg_core.evaluation.stats`)."""
from __future__ import annotations

import copy
import time

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch

from lgg_core.serving.records import EvalTables, ModelRecord
from lgg_core.evaluation.failures import gated_slices, raw_slices
from lgg_core.evaluation.stats import A_BETTER, B_BETTER, METRIC_LABELS, NO_DIFFERENCE, format_p, ordered_pairs
from lgg_core.models import LGGModel
from lgg_core.data.transforms import resize_input

COLUMNS = [
    "model", "arch", "task", "params", "fold", "patient_dice", "patient_dice_ci", "tumor_slice_dice", "iou",
    "hd95", "assd", "accuracy", "auroc", "status",
]


def _fmt_ci(ci: list[float] | None) -> str:
    return f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else ""


def leaderboard_row(record: ModelRecord, tables: EvalTables | None, problem: str | None) -> dict:
    """One leaderboard row; metrics are blank for a model that is missing or not evaluated (``status`` says why)."""
    row = dict.fromkeys(COLUMNS)
    row.update(model=record.name, status=problem or "evaluated")
    if record.ok:
        training = record.config.get("training", {})
        row.update(arch=record.config["arch"], task=record.config["task"], params=record.config.get("params"),
                   fold=training.get("fold"))
    if tables is None:
        return row
    raw = tables.summary["variants"]["raw"]
    if record.task == "segment":
        row.update(patient_dice=raw["patient_dice"], patient_dice_ci=_fmt_ci(raw.get("patient_dice_ci")),
                   tumor_slice_dice=raw["tumor_slice_dice"], iou=raw["tumor_slice_iou"], hd95=raw["hd95"],
                   assd=raw["assd"], accuracy=raw.get("presence_accuracy"))
    else:
        row.update(accuracy=raw["accuracy"], auroc=raw["auroc"])
    return row


def leaderboard(rows: list[dict]) -> pd.DataFrame:
    """The table, segmenters by per-patient Dice then classifiers by AUROC, unevaluated models last."""
    table = pd.DataFrame(rows, columns=COLUMNS)
    numeric = [c for c in COLUMNS if c not in ("model", "arch", "task", "patient_dice_ci", "status")]
    table[numeric] = table[numeric].apply(pd.to_numeric)
    table["_rank"] = table["patient_dice"].fillna(table["auroc"])
    return table.sort_values(["task", "_rank"], ascending=[False, False], na_position="last").drop(columns="_rank")


def institution_breakdown(per_patient: pd.DataFrame) -> pd.DataFrame:
    """Mean per-patient Dice and patient count per (model, institution)."""
    return (per_patient.groupby(["model", "institution"], as_index=False)
            .agg(dice=("dice", "mean"), patients=("patient", "nunique")))


@torch.no_grad()
def cpu_latency_ms(model: LGGModel, input_size: int | None = None, repeats: int = 5) -> float:
    """Median wall time in ms of one forward pass on a single 256² slice on the CPU (after one warm-up)."""
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).to("cpu")  # leave the app's cached GPU model where it is
    x = resize_input(torch.randn(1, 3, 256, 256), input_size)
    model(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def dice_distribution_figure(per_patient: pd.DataFrame) -> go.Figure:
    """Per-patient Dice of each model as a box with all points."""
    fig = px.box(per_patient, x="model", y="dice", points="all", hover_data=["patient", "institution"],
                 title="Per-patient Dice (held-out patients)")
    return fig.update_yaxes(range=[0, 1.02])


def scatter_figure(table: pd.DataFrame, x: str, y: str, title: str, log_x: bool = False) -> go.Figure:
    """One labelled point per model (rows with a missing x or y are dropped)."""
    data = table.dropna(subset=[x, y])
    return px.scatter(data, x=x, y=y, text="model", log_x=log_x, title=title).update_traces(textposition="top center")


def institution_figure(breakdown: pd.DataFrame) -> go.Figure:
    """Grouped bars: mean per-patient Dice per institution and model."""
    return px.bar(breakdown, x="institution", y="dice", color="model", barmode="group", hover_data=["patients"],
                  title="Mean per-patient Dice by institution").update_yaxes(range=[0, 1])


# The matrix reads from the row model's side: "A better" in an ordered pair means the row model is better.
ROW_VERDICT = {A_BETTER: "better", B_BETTER: "worse", NO_DIFFERENCE: "n.s."}


def pairwise_figure(pairs: pd.DataFrame) -> go.Figure:
    """Heatmap "is the row model better than the column model?" from :func:`lgg_core.evaluation.stats.pairwise`.

    Colour: mean per-patient difference, row − column, blue when the row model scores higher (zero is white); text:
    that difference, the row model's verdict after Holm and the Holm-adjusted p.
    """
    models = list(dict.fromkeys([*pairs["a"], *pairs["b"]]))  # pairwise's ranking, best first
    cells = ordered_pairs(pairs).set_index(["a", "b"])
    grid = [[cells.loc[(row, col)] if row != col else None for col in models] for row in models]
    z = [[None if c is None else c["mean_diff"] for c in line] for line in grid]
    text = [["" if c is None else f"{c['mean_diff']:+.3f}<br>{ROW_VERDICT.get(c['verdict'], c['verdict'])}<br>"
             f"p {format_p(c['p_holm'])}" for c in line] for line in grid]
    label = METRIC_LABELS[pairs["metric"].iloc[0]]
    fig = go.Figure(go.Heatmap(
        z=z, x=models, y=models, text=text, texttemplate="%{text}", colorscale="RdBu", zmid=0,
        colorbar={"title": {"text": "mean difference<br>row − column"}},
        hovertemplate="row %{y} − column %{x}<br>%{text}<extra></extra>"))
    fig.update_xaxes(showgrid=False).update_yaxes(autorange="reversed", title="row model", showgrid=False)
    return fig.update_layout(title=f"Is the row model better than the column model? ({label})",
                             xaxis_title="column model")


def _ci_text(value: float, ci: list[float]) -> str:
    return f"{value:.3f} ({ci[0]:.3f}–{ci[1]:.3f})"


def _training_text(record: ModelRecord) -> str:
    t = record.config["training"]
    parts = [f"{t['crop']}² crops" if t.get("crop") else f"whole slice at {t.get('input_size') or 256}²"]
    if record.config.get("arch_kwargs", {}).get("standardize"):
        parts.append("per-slice std.")
    if t.get("pos_weight") is not None:
        parts.append(f"pos_weight {t['pos_weight']}")
    return f"{', '.join(parts)}, {t['epochs_run']} ep / {t['wall_time_s'] / 60:.0f} min"


def gated_patient_dice(classifier: EvalTables, segmenter: EvalTables) -> float:
    """Mean per-patient volume Dice of the classifier-gated segmenter, exactly, from the two slice tables."""
    table = gated_slices(classifier.slices, raw_slices(segmenter.slices))
    sums = table.groupby("patient")[["tp", "fp", "fn"]].sum()
    total = 2 * sums["tp"] + sums["fp"] + sums["fn"]
    return float((2 * sums["tp"] / total.where(total > 0)).fillna(1.0).mean())


def markdown_tables(evaluated: list[tuple[ModelRecord, EvalTables]]) -> str:
    """README tables of evaluated models: segmenters by per-patient Dice, then classifiers by AUROC.

    Segmenter rows also give the per-patient Dice of the pipeline gated by the best classifier. Each row names the
    command that reproduces it (``train/zoo.sh <name>`` trains with ``train/configs/<name>.toml`` on fold 0 and
    evaluates on the held-out patients).
    """
    seg = sorted((p for p in evaluated if p[0].task == "segment"),
                 key=lambda p: -p[1].summary["variants"]["raw"]["patient_dice"])
    cls = sorted((p for p in evaluated if p[0].task == "classify"),
                 key=lambda p: -p[1].summary["variants"]["raw"]["auroc"])
    gate = cls[0] if cls else None
    gate_header = f" gated by {gate[0].name} |" if gate else ""
    lines = ["| segmenter | params | training (CPU) | per-patient Dice (95% CI) | + largest component | "
             f"tumor-slice Dice (95% CI) | HD95 px | slice presence acc. |{gate_header} reproduce |",
             "|---|---:|---|---|---|---|---:|---:|" + ("---:|" if gate else "") + "---|"]
    for record, tables in seg:
        v = tables.summary["variants"]
        raw, lcc = v["raw"], v["lcc"]
        gated = f" {gated_patient_dice(gate[1], tables):.3f} |" if gate else ""
        lines.append(
            f"| `{record.name}` | {record.config['params'] / 1e6:.1f}M | {_training_text(record)} "
            f"| {_ci_text(raw['patient_dice'], raw['patient_dice_ci'])} "
            f"| {_ci_text(lcc['patient_dice'], lcc['patient_dice_ci'])} "
            f"| {_ci_text(raw['tumor_slice_dice'], raw['tumor_slice_dice_ci'])} | {raw['hd95']:.1f} "
            f"| {raw['presence_accuracy']:.3f} |{gated} `train/zoo.sh {record.name}` |")
    if cls:
        lines += ["", "| classifier | params | training (CPU) | accuracy (95% CI) | AUROC (95% CI) | F1 | reproduce |",
                  "|---|---:|---|---|---|---:|---|"]
        for record, tables in cls:
            raw = tables.summary["variants"]["raw"]
            t = record.config["training"]
            lines.append(
                f"| `{record.name}` | {record.config['params'] / 1e6:.1f}M "
                f"| whole slice at {t.get('input_size') or 256}², {t['epochs_run']} ep / {t['wall_time_s'] / 60:.0f} min "
                f"| {_ci_text(raw['accuracy'], raw['accuracy_ci'])} | {_ci_text(raw['auroc'], raw['auroc_ci'])} "
                f"| {raw['f1']:.3f} | `train/zoo.sh {record.name}` |")
    return "\n".join(lines)
