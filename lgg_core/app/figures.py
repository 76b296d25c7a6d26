"""Plotly figures the dashboard draws from an artifact's own files (the leaderboard's live in evaluation)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

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
    fig.update_yaxes(title_text="score", range=[0, 1.02], secondary_y=True)
    return fig.update_layout(title="Training curves", legend={"orientation": "h", "y": -0.25})
