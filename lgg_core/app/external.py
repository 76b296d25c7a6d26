"""A visitor's own predictions or model on the Leaderboard: the background job that runs a model, the forest plot
against the zoo, slice pictures, the HTML report.

Scoring is :func:`lgg_core.evaluation.external.score_submission` for masks and
:class:`lgg_core.evaluation.by_reference.ModelJob` for a model; the page keeps the result, and a running job, in the
visitor's ``st.session_state`` only, so nothing reaches another session or a shared cache.
"""
from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.uploaded_file_manager import UploadedFile

from lgg_core.app.overlay import ERROR_LEGEND, channel_view, error_overlay, png_bytes
from lgg_core.data.cache import LGGData
from lgg_core.evaluation import external

SESSION_KEY = "your_predictions"
JOB_KEY = "your_model_job"
ERROR_KEY = "your_model_error"  # a finished job's failure, shown once after the rerun that ends it
MASKS, MODEL = "Predicted masks", "A model"
KINDS = {MASKS: "made anywhere, scored here", MODEL: "ONNX or lgg_core artifact, run here"}
BETTER, WORSE, NEITHER = "#0072B2", "#D55E00", "#999999"  # Okabe–Ito blue and vermillion, grey
YOURS_AXIS = "difference in mean per-patient Dice (right of 0: yours higher)"
LEGEND = "Over FLAIR: " + ", ".join(f"{label} ({colour})" for (label, _), colour in
                                   zip(ERROR_LEGEND, ("yellow", "vermillion", "sky blue"), strict=True))


def start_job(upload: UploadedFile | None, repo: str, split: str, data: LGGData):
    """Start evaluating the visitor's uploaded model (or, without one, the Hub repo ``repo``) on ``split``'s patients.

    Raises:
        ValueError: ``data`` lacks the split's patients; the message is meant for the visitor.
    """
    from lgg_core.evaluation.by_reference import ModelJob
    from lgg_core.evaluation.reference import load_reference
    from lgg_core.serving.foreign import open_model, pull_model

    patients = external.split_patients(split, data, load_reference())
    if upload is not None:
        name, content = upload.name, upload.getvalue()
        job = ModelJob(name.rsplit(".", 1)[0], lambda: open_model(name, content), split, data, patients, alive=_alive())
    else:
        job = ModelJob(repo.rsplit("/", 1)[-1], lambda: pull_model(repo), split, data, patients, alive=_alive())
    return job.start()


def _alive() -> Callable[[], bool] | None:
    """Whether this visitor's session is still connected, asked from the job's thread (None outside a server)."""
    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():
        return None
    runtime, session = Runtime.instance(), ctx.session_id
    return lambda: runtime.is_active_session(session)


@st.fragment(run_every=1.0)
def job_progress() -> None:
    """The running job's progress, redrawn each second; once it ends, its result (or why not) replaces it."""
    job = st.session_state.get(JOB_KEY)
    if job is None:
        return
    if job.running:
        fraction, text = job.status()
        st.progress(fraction, text=text)
        if st.button("Stop", key="your_model_stop"):
            job.cancel()
        return
    del st.session_state[JOB_KEY]
    if job.submission is not None:
        st.session_state[SESSION_KEY] = job.submission
    else:
        st.session_state[ERROR_KEY] = f"{job.name}: {job.error}"
    st.rerun()


def forest_rows(comparison: pd.DataFrame, reference: str = "predictions", flip: bool = False) -> pd.DataFrame:
    """The forest plot's rows, first on top: each model's paired difference with its 95% CI and colour.

    Args:
        comparison: :func:`lgg_core.evaluation.external.compare`'s table (``mean_diff`` = reference − model).
        reference: the name the verdicts give the reference ("<reference> better").
        flip: plot model − reference instead (e.g. every model against the champion).
    """
    sign = -1.0 if flip else 1.0
    diff, low, high = (sign * comparison[c] for c in ("mean_diff", "ci_low", "ci_high"))
    low, high = (high, low) if flip else (low, high)
    # Blue where the side plotted to the right of 0 is significantly better, vermillion where the other is.
    right_wins = [v == (f"{m} better" if flip else f"{reference} better")
                  for m, v in zip(comparison["model"], comparison["verdict"])]
    left_wins = [v.endswith(" better") and not r for v, r in zip(comparison["verdict"], right_wins)]
    return pd.DataFrame({"model": comparison["model"], "diff": diff, "low": low, "high": high,
                         "colour": [BETTER if r else WORSE if w else NEITHER for r, w in zip(right_wins, left_wins)],
                         "verdict": comparison["verdict"], "n": comparison["n"],
                         "p_holm": comparison["p_holm"].fillna(1.0)}).reset_index(drop=True)


def forest_chart(rows: pd.DataFrame, title: str, x_title: str) -> dict[str, Any]:
    """:func:`forest_rows` as a Vega-Lite spec for ``st.vega_lite_chart``, with its data inline.

    Vega-Lite rather than Plotly on the pages: a first view with no Plotly figure spares the browser loading and
    parsing Plotly's 4.7 MB script (docs/benchmarks.md, "Leaderboard load in a real browser").
    """
    y = {"field": "model", "type": "nominal", "sort": None, "title": None, "axis": {"labelLimit": 420}}
    return {
        "title": title, "height": {"step": 26}, "data": {"values": rows.to_dict("records")},
        "encoding": {"y": y},
        "layer": [
            {"mark": {"type": "rule", "color": "#888888"},
             "encoding": {"x": {"field": "low", "type": "quantitative", "title": x_title}, "x2": {"field": "high"}}},
            {"mark": {"type": "point", "filled": True, "size": 110, "opacity": 1},
             "encoding": {"x": {"field": "diff", "type": "quantitative"},
                          "color": {"field": "colour", "type": "nominal", "scale": None},
                          "tooltip": [{"field": "model", "title": "model"},
                                      {"field": "diff", "title": "difference", "format": "+.3f"},
                                      {"field": "verdict"}, {"field": "n", "title": "patients"},
                                      {"field": "p_holm", "title": "Holm p", "format": ".3f"}]}},
            {"mark": {"type": "rule", "strokeDash": [4, 3], "strokeWidth": 1.5, "color": "#999999"},
             "encoding": {"x": {"datum": 0}}},
        ],
    }


def forest_figure(rows: pd.DataFrame, title: str, x_title: str) -> go.Figure:
    """:func:`forest_rows` as a Plotly figure, for the HTML report (which inlines Plotly's script to open offline)."""
    table = rows.iloc[::-1]  # Plotly draws the first category at the bottom
    fig = go.Figure(go.Scatter(
        x=table["diff"], y=table["model"], mode="markers", marker={"color": table["colour"], "size": 10},
        error_x={"type": "data", "symmetric": False, "array": table["high"] - table["diff"],
                 "arrayminus": table["diff"] - table["low"], "color": "#888888"},
        customdata=np.stack([table["verdict"], table["n"], table["p_holm"]], axis=1),
        hovertemplate="%{y}<br>difference %{x:+.3f}<br>%{customdata[0]}<br>%{customdata[1]} patients, "
                      "Holm p %{customdata[2]:.3f}<extra></extra>"))
    fig.add_vline(x=0, line_dash="dot", line_color="#888888")
    return fig.update_layout(title=title, height=130 + 26 * len(table), margin={"l": 10, "r": 10, "t": 50, "b": 50},
                             showlegend=False, xaxis_title=x_title)


def slice_picture(data: LGGData, row: int, mask: np.ndarray) -> np.ndarray:
    """The predicted mask against the truth over the slice's FLAIR, in the dashboard's TP/FP/FN colours."""
    return error_overlay(channel_view(data.images[row]), mask, data.masks[row])


def report_html(title: str, intro: str, notes: Sequence[str], scores: str, comparison: pd.DataFrame,
                figure: go.Figure, pictures: Sequence[tuple[str, np.ndarray]], patients: pd.DataFrame) -> str:
    """A one-page HTML report that opens offline (Plotly's script inlined).

    Args:
        title: the page's heading.
        intro: one paragraph on what was scored and how.
        notes: what was done to the values.
        scores: the markdown table of the scores.
        comparison: the comparison table as shown on the page.
        figure: the forest plot.
        pictures: (caption, RGB image) of the worst slices.
        patients: the per-patient table.
    """
    images = "".join(f"<figure><img alt='' width='256' src='data:image/png;base64,"
                     f"{base64.b64encode(png_bytes(image)).decode()}'><figcaption>{html.escape(caption)}"
                     "</figcaption></figure>" for caption, image in pictures)
    items = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
    plot = figure.update_layout(template="plotly_white").to_html(full_html=False, include_plotlyjs=True)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px}figure{display:inline-block;margin:0 1em 1em 0}</style>"
            f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p><ul>{items}</ul>"
            f"<h2>Scores</h2>{_markdown_html(scores)}<h2>Against the zoo</h2>{_frame_html(comparison)}{plot}"
            f"<h2>Worst patients</h2><p>{html.escape(LEGEND)}</p>"
            f"{images}<h2>Every patient</h2>{_frame_html(patients)}</body></html>")


def _frame_html(table: pd.DataFrame) -> str:
    return table.to_html(index=False, escape=True, na_rep="–")


def _markdown_html(markdown: str) -> str:
    rows: list[Any] = [[c.strip() for c in line.strip("|").split("|")] for line in markdown.splitlines()
                       if not line.startswith("|---")]
    return _frame_html(pd.DataFrame(rows[1:], columns=rows[0]))
