"""The Leaderboard's and Models page's Plotly figures, drawn from the numbers :mod:`lgg_core.evaluation` computes.

Kept here so that evaluation stays numpy, pandas and scipy, and its results can be computed and tested without a
plotting library.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lgg_core.evaluation.calibration import format_score
from lgg_core.evaluation.crossval import VARIANT_NAMES
from lgg_core.app.board import LABELS
from lgg_core.evaluation.leaderboard import GATED, MODEL, POST_PROCESSING
from lgg_core.evaluation.stats import A_BETTER, B_BETTER, METRIC_LABELS, NO_DIFFERENCE, format_p, ordered_pairs


def dice_distribution_figure(per_patient: pd.DataFrame) -> go.Figure:
    """Per-patient Dice of each model as a box with all points."""
    fig = px.box(per_patient, x="model", y="dice", points="all", hover_data=["patient", "institution"],
                 title="Per-patient Dice (held-out patients)", labels={"dice": "per-patient Dice", "model": ""})
    return fig.update_yaxes(range=[0, 1.02])


# Scatter geometry. Labels are placed in pixels, so the figure's height and margins are fixed here; its width follows
# the page, and labels are laid out for the narrowest plot area the page's half-width columns give on a laptop
# screen (wider plots only add room between them).
SCATTER_HEIGHT = 440
SCATTER_MARGIN = {"l": 64, "r": 24, "t": 64, "b": 56}
PLOT_WIDTH_PX = 420
FONT_PX = 12
_CHAR_PX = 0.62 * FONT_PX  # a generous average glyph width, so estimated boxes are never smaller than drawn ones
_LINE_PX = 1.3 * FONT_PX
_MARKER_PX = 5  # marker radius (Plotly's default marker size is 6 px across; larger here)
_GAP_PX = 3
# A label keeps this far from other points' markers, so that it is never read as theirs; points closer to its own
# than _NEAR_PX are read as one spot (a model and its variants), and its label need only not cover them.
_CLEARANCE_PX = 8
_NEAR_PX = 3 * _MARKER_PX
# Plotly text positions tried around each point, nearest first; (dx, dy) is the label box centre's offset from the
# point in units of (half label width + marker + gap, half label height + marker + gap), y up.
_PLACES = {
    "top center": (0, 1), "bottom center": (0, -1), "middle right": (1, 0), "middle left": (-1, 0),
    "top right": (1, 1), "top left": (-1, 1), "bottom right": (1, -1), "bottom left": (-1, -1),
}
# Marker and colour (Okabe–Ito, colour-blind safe) per kind, in the order labels are handed out and legends list them.
KIND_STYLE = {MODEL: ("circle", "#0072B2"), GATED: ("square", "#009E73"), POST_PROCESSING: ("diamond", "#E69F00")}


def _span(values: np.ndarray) -> tuple[float, float]:
    """Axis range with room around the points (8% of the span each side; ±10% of the value for a single one)."""
    low, high = float(np.min(values)), float(np.max(values))
    pad = 0.08 * (high - low) if high > low else max(abs(low) * 0.1, 0.05)
    return low - pad, high + pad


def label_boxes(px_xy: np.ndarray, labels: list[str], width: float, height: float
                ) -> tuple[list[str | None], list[tuple[float, float, float, float] | None]]:
    """Greedy non-overlapping label placement in pixels (origin bottom left).

    Points are taken in the given order (put the important ones first); each label gets the first of
    :data:`_PLACES` whose box stays inside the plot area, overlaps no placed label and no marker, and keeps
    :data:`_CLEARANCE_PX` from the markers of points farther than :data:`_NEAR_PX`, or no label (None) when none
    fits: that point is then named by its hover text only.

    Returns:
        Per point, the Plotly ``textposition`` (or None) and the label box (x0, y0, x1, y1) (or None).
    """
    placed: list[tuple[float, float, float, float]] = []
    positions: list[str | None] = []
    boxes: list[tuple[float, float, float, float] | None] = []
    for i, ((x, y), label) in enumerate(zip(px_xy, labels, strict=True)):
        half_w, half_h = len(label) * _CHAR_PX / 2, _LINE_PX / 2
        distance = np.hypot(*(px_xy - (x, y)).T)
        reach = np.where(distance < _NEAR_PX, _MARKER_PX, _MARKER_PX + _CLEARANCE_PX)
        others = [(ox - r, oy - r, ox + r, oy + r) for j, ((ox, oy), r) in enumerate(zip(px_xy, reach, strict=True))
                  if j != i]
        chosen = None
        for position, (dx, dy) in _PLACES.items():
            cx, cy = x + dx * (half_w + _MARKER_PX + _GAP_PX), y + dy * (half_h + _MARKER_PX + _GAP_PX)
            box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
            inside = box[0] >= 0 and box[1] >= 0 and box[2] <= width and box[3] <= height
            if inside and not any(_overlap(box, other) for other in [*placed, *others]):
                chosen = position, box
                break
        positions.append(chosen[0] if chosen else None)
        boxes.append(chosen[1] if chosen else None)
        if chosen:
            placed.append(chosen[1])
    return positions, boxes


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def scatter_figure(table: pd.DataFrame, x: str, y: str, title: str, log_x: bool = False,
                   plot_width_px: int = PLOT_WIDTH_PX) -> go.Figure:
    """One point per row (rows missing x or y are left out), marked by kind, labelled where a label fits.

    Labels never overlap each other or a point and never leave the plot area (:func:`label_boxes`); points whose
    label does not fit are named on hover, and the title says how many.
    """
    # Labels go to models first, then gated pipelines, then variants, each best first.
    data = table.dropna(subset=[x, y])
    data = data.assign(_kind=data["kind"].map({k: i for i, k in enumerate(KIND_STYLE)}).fillna(len(KIND_STYLE)))
    data = data.sort_values(["_kind", y], ascending=[True, False], kind="stable")
    fig = go.Figure()
    if data.empty:
        return fig.update_layout(title=title)
    xs = np.log10(data[x].to_numpy(float)) if log_x else data[x].to_numpy(float)
    ys = data[y].to_numpy(float)
    (x0, x1), (y0, y1) = _span(xs), _span(ys)
    height = SCATTER_HEIGHT - SCATTER_MARGIN["t"] - SCATTER_MARGIN["b"]
    px_xy = np.column_stack([(xs - x0) / (x1 - x0) * plot_width_px, (ys - y0) / (y1 - y0) * height])
    positions, _ = label_boxes(px_xy, data["model"].tolist(), plot_width_px, height)
    data = data.assign(_position=[p or "top center" for p in positions],
                       _text=[m if p else "" for m, p in zip(data["model"], positions, strict=True)])
    x_label, y_label = LABELS.get(x, x), LABELS.get(y, y).replace(" (95% CI)", "")
    x_format = ".3s" if x == "params" else ".4g"  # 4.4M parameters, not 4400000
    for _, part in data.groupby("_kind", sort=True):
        kind = part["kind"].iloc[0]
        symbol, colour = KIND_STYLE.get(kind, ("circle", "#555555"))
        fig.add_trace(go.Scatter(
            x=part[x], y=part[y], mode="markers+text", name=kind, text=part["_text"],
            textposition=part["_position"].tolist(), cliponaxis=False, customdata=part[["model"]],
            marker={"symbol": symbol, "color": colour, "size": 2 * _MARKER_PX},
            textfont={"size": FONT_PX}, hovertemplate=f"%{{customdata[0]}}<br>{x_label}: %{{x:{x_format}}}<br>"
                                                      f"{y_label}: %{{y:.3f}}<extra></extra>"))
    hidden = sum(p is None for p in positions)
    if hidden:
        title += f"<br><sup>{hidden} of {len(positions)} labels left out where they would overlap: hover a point</sup>"
    fig.update_xaxes(title=x_label, type="log" if log_x else "linear", range=[x0, x1],
                     tickformat="~s" if x == "params" else None)
    fig.update_yaxes(title=y_label, range=[y0, y1])
    return fig.update_layout(title=title, height=SCATTER_HEIGHT, margin=SCATTER_MARGIN,
                             legend={"orientation": "h", "y": -0.18})


def institution_figure(breakdown: pd.DataFrame) -> go.Figure:
    """Mean per-patient Dice per model (rows, best overall first) and institution (columns), one cell each with its
    95% CI and patient count on hover: every label stays readable at any number of models, since the figure grows with
    them (grouped bars drew one bar per model in each institution)."""
    grid = breakdown.pivot(index="model", columns="institution", values=["dice", "ci_low", "ci_high", "patients"])
    models = grid["dice"].mean(axis=1).sort_values(ascending=False, kind="stable").index
    grid = grid.loc[models]
    sites = list(grid["dice"].columns)
    counts = grid["patients"].max()
    hover = [[f"{_ci_text(grid['dice'].at[m, i], grid['ci_low'].at[m, i], grid['ci_high'].at[m, i])}; "
              f"patients: {_count(grid['patients'].at[m, i])}" for i in sites] for m in models]
    fig = go.Figure(go.Heatmap(
        z=grid["dice"].to_numpy(), x=[f"{i} (n={_count(counts[i])})" for i in sites], y=list(models),
        customdata=hover, texttemplate="%{z:.2f}", colorscale="Blues", zmin=0, zmax=1, xgap=2, ygap=2,
        colorbar={"title": {"text": "per-patient<br>Dice"}},
        hovertemplate="%{y} at %{x}<br>mean per-patient Dice %{customdata}<extra></extra>"))
    fig.update_xaxes(side="top", showgrid=False, tickmode="linear")
    fig.update_yaxes(autorange="reversed", showgrid=False, tickmode="linear")
    return fig.update_layout(title="Mean per-patient Dice by institution (hover: 95% CI over patients, patients)",
                             height=160 + 24 * len(models), margin={"t": 110})


def _count(value: float) -> str:
    return "–" if pd.isna(value) else str(int(value))


def _ci_text(value: float, low: float, high: float) -> str:
    if pd.isna(value):
        return "–"
    return f"{value:.3f}" + ("" if pd.isna(low) else f" (95% CI {low:.3f}–{high:.3f})")


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
    # Every label shown and cells that keep their three lines legible: the figure grows with the number of models.
    fig.update_xaxes(showgrid=False, tickmode="array", tickvals=models, tickangle=-40)
    fig.update_yaxes(autorange="reversed", title="row model", showgrid=False, tickmode="array", tickvals=models)
    return fig.update_layout(title=f"Is the row model better than the column model? ({label})",
                             xaxis_title="column model", height=220 + 64 * len(models), font={"size": 11})


def folds_figure(runs: dict[str, pd.DataFrame], variant: str = "raw") -> go.Figure:
    """Per-patient Dice of one variant by held-out fold, a box per run and fold: whether one fold carries a run's mean.

    Args:
        runs: Each cross-validation run's pooled per-patient table (:func:`lgg_core.evaluation.crossval.run_report`),
            by name.
    """
    rows = pd.concat([pooled[pooled["variant"] == variant].assign(run=name) for name, pooled in runs.items()])
    rows = rows.assign(fold="fold " + rows["fold"].astype(str)).sort_values("fold", kind="stable")
    fig = px.box(rows, x="fold", y="dice", color="run", points="all", hover_data=["patient", "institution"],
                 title=f"Per-patient Dice by held-out fold ({VARIANT_NAMES.get(variant, variant)})",
                 labels={"dice": "per-patient Dice", "fold": "", "run": ""})
    return fig.update_yaxes(range=[0, 1.02]).update_layout(boxmode="group", legend={"orientation": "h", "y": -0.12})


def reliability_figure(level: dict[str, Any], title: str) -> go.Figure:
    """Reliability diagram of one level of a calibration report, with the bins' sample counts below it.

    Marker size grows with the bin's share of samples; the counts panel is logarithmic because at pixel level the
    first bin holds nearly everything.
    """
    edges = np.asarray(level["edges"], float)
    centres, width = (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0])
    count = np.asarray(level["count"], float)
    filled = count > 0
    mean_prob = np.array([np.nan if v is None else v for v in level["mean_prob"]], float)
    frequency = np.array([np.nan if v is None else v for v in level["frequency"]], float)
    share = count / max(count.sum(), 1)
    ranges = [f"{a:.2f}–{b:.2f}" for a, b in zip(edges[:-1], edges[1:])]

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.06)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line={"dash": "dash", "color": "grey"}, hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Scatter(
        x=mean_prob[filled], y=frequency[filled], mode="lines+markers", name="model",
        marker={"size": 6 + 24 * np.sqrt(share[filled]), "color": "#0072B2"},
        text=np.array(ranges)[filled], customdata=count[filled],
        hovertemplate="bin %{text}<br>mean probability %{x:.3f}<br>tumor share %{y:.3f}"
                      "<br>samples %{customdata:,}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=centres[filled], y=count[filled], width=width * 0.9, name="samples per bin",
                         marker_color="#999999", showlegend=False,
                         hovertemplate="samples %{y:,}<extra></extra>"), row=2, col=1)
    fig.update_xaxes(range=[0, 1], row=1, col=1)
    fig.update_xaxes(range=[0, 1], title_text="predicted tumor probability", row=2, col=1)
    fig.update_yaxes(range=[0, 1.02], title_text="observed tumor share", row=1, col=1)
    fig.update_yaxes(type="log", dtick=1, title_text="samples", row=2, col=1)
    return fig.update_layout(title=f"{title} · ECE {format_score(level['ece'])}", height=500, margin={"t": 80, "b": 40},
                             legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"})


def recipe_curve_figure(curve: pd.DataFrame) -> go.Figure:
    """Validation per-patient Dice against CPU-minutes, one line per recipe-search run
    (:func:`~lgg_core.evaluation.recipes.recipe_curve`): where more training stops paying."""
    curve = curve.assign(label=curve["run"] + " (" + curve["changes"] + ")")
    fig = px.line(curve, x="cpu_min", y="dice", color="label", line_dash="fold", markers=True,
                  hover_data={"epoch": True, "label": False, "fold": False},
                  labels={"cpu_min": "CPU-minutes of training (2 threads)", "dice": "validation per-patient Dice",
                          "label": "run", "fold": "fold"},
                  title="Recipe search: validation Dice after each epoch, against its cost")
    return fig.update_yaxes(range=[0, 1]).update_layout(legend={"orientation": "h", "y": -0.2})
