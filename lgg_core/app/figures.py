"""Plotly figures the dashboard draws from artifacts' files and predictions (the leaderboard's live in evaluation)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lgg_core.serving.records import Gate

# Training-log columns: the loss on its own axis, scores in [0, 1] on the other.
_LOSSES = {"train_loss": "training loss"}
_SCORES = {"train_dice": "training Dice (batches)", "train_accuracy": "training accuracy (batches)"}
# What ``val_score`` (the early-stopping metric) was, told by the column it copies.
_VAL_METRICS = {"val_patient_dice": "validation per-patient Dice", "val_auroc": "validation AUROC"}


def validation_metric(epochs: pd.DataFrame) -> str:
    """The name of the metric behind ``val_score`` in a training log."""
    for column, name in _VAL_METRICS.items():
        if column in epochs and epochs[column].equals(epochs.get("val_score")):
            return name
    return "validation score"


def training_curves(epochs: pd.DataFrame) -> go.Figure:
    """Loss (left axis) and scores (right axis, 0–1) per epoch of a training log with an ``epoch`` column."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    scores = {**_SCORES, "val_score": validation_metric(epochs)}
    for column, name in {**_LOSSES, **scores}.items():
        if column in epochs:
            fig.add_trace(go.Scatter(x=epochs["epoch"], y=epochs[column], name=name, mode="lines+markers"),
                          secondary_y=column in scores)
    fig.update_xaxes(title_text="epoch", tickformat="d", dtick=1 if len(epochs) <= 20 else None)
    fig.update_yaxes(title_text="loss", secondary_y=False)
    # Its own ticks and no grid: aligned to the loss axis's grid it would read 0.089, 0.294, …
    fig.update_yaxes(title_text="score", range=[0, 1.02], tickmode="linear", tick0=0, dtick=0.2, showgrid=False,
                     secondary_y=True)
    return fig.update_layout(title="Training curves", legend={"orientation": "h", "y": -0.25})


# A patient's slices by outcome; the two Dice-0 kinds in the colours of the TP / FP / FN overlay's FN and FP.
SLICE_OUTCOMES = {
    "tumor, found (Dice > 0)": "#009E73",
    "tumor, missed (Dice 0)": "#56B4E9",
    "no tumor, false alarm (Dice 0)": "#D55E00",
    "no tumor, none drawn (Dice 1)": "#BBBBBB",
}
ZERO_BAR = -0.08  # Dice 0 is drawn as a short bar below the axis: at its true height it would be invisible
# Okabe–Ito orange and reddish purple: readable on the light and the dark theme, apart from the bars by shape.
_KEPT, _DROPPED = ("diamond", "#E69F00"), ("x", "#CC79A7")


def slice_outcome(true_tumor: bool, dice: float) -> str:
    """The :data:`SLICE_OUTCOMES` key of a slice."""
    if true_tumor:
        return "tumor, found (Dice > 0)" if dice > 0 else "tumor, missed (Dice 0)"
    return "no tumor, none drawn (Dice 1)" if dice > 0 else "no tumor, false alarm (Dice 0)"


def _hover_text(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return "–" if np.isnan(value) else f"{value:.3f}"
    return str(value)


def slice_strip(table: pd.DataFrame, current: int, title: str, hover: Sequence[str] = (),
                gate: Gate | None = None) -> go.Figure:
    """Per-slice Dice along a patient's volume: one bar per slice coloured by its outcome, the shown slice marked.

    Every outcome stays in the legend, present on this patient or not, so the colours can always be read.

    Args:
        table: one row per slice, in order, with ``slice``, ``dice`` and ``true_tumor`` and the ``hover`` columns.
        current: the shown slice's number.
        title: the figure's title.
        hover: further columns shown in each bar's tooltip.
        gate: a gated pipeline's verdict on the same slices: its classifier's probability, drawn against the
            threshold, with the slices whose mask was dropped marked apart.
    """
    fig = go.Figure()
    outcomes = np.array([slice_outcome(t, d) for t, d in zip(table["true_tumor"], table["dice"])])
    columns = ["dice", *hover]
    template = ("slice %{x}<br>" + "<br>".join(f"{c} %{{customdata[{i}]}}" for i, c in enumerate(columns))
                + "<extra>%{fullData.name}</extra>")
    for outcome, colour in SLICE_OUTCOMES.items():
        rows = table[outcomes == outcome]
        # A trace without points would drop out of the legend; one undrawn point keeps it there.
        x = rows["slice"].tolist() or [None]
        y = np.where(rows["dice"] > 0, rows["dice"], ZERO_BAR).tolist() or [None]
        text = [[_hover_text(v) for v in row] for row in rows[columns].itertuples(index=False)]
        fig.add_trace(go.Bar(x=x, y=y, name=outcome, marker_color=colour, customdata=text or None,
                             hovertemplate=template))
    if gate is not None:
        for kept, (symbol, colour) in ((True, _KEPT), (False, _DROPPED)):
            chosen = gate.kept == kept
            name = f"{gate.classifier}'s tumor probability: mask {'kept' if kept else 'dropped'}"
            x, y = table["slice"][chosen].tolist() or [None], gate.prob[chosen].tolist() or [None]
            marker = {"symbol": symbol, "color": colour, "size": 8}
            fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name=name, marker=marker,
                                     hovertemplate="slice %{x}<br>probability %{y:.3f}<extra>" + name + "</extra>"))
        fig.add_hline(y=gate.threshold, line_dash="dot", line_color=_DROPPED[1],
                      annotation_text=f"gate: mask kept at ≥ {gate.threshold:g}", annotation_position="top left")
    fig.add_vline(x=current, line_dash="dash", annotation_text=f"shown: {current}", annotation_position="top")
    fig.update_xaxes(title_text="slice")
    fig.update_yaxes(title_text="Dice" + (" · classifier probability" if gate else ""), range=[ZERO_BAR - 0.04, 1.08],
                     tickvals=[0, 0.25, 0.5, 0.75, 1], zeroline=True)
    return fig.update_layout(
        title={"text": f"{title}<br><sup>Dice 0 is drawn below the axis · click a bar to open its slice</sup>"},
        barmode="overlay", height=360, margin={"t": 70, "b": 10},
        legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0})
