"""Compare: one slice, ground truth and 2–6 models' predictions side by side, and where the models disagree."""
from __future__ import annotations

import numpy as np
import streamlit as st

from lgg_core.evaluation.metrics import slice_metrics
from lgg_core.app.overlay import (COLOUR_MODES, GT_COLOR, PRED_COLOR, UNCERTAINTY_SCALE, VIEWS, HeatScale, channel_view,
                                  colorbar, disagreement, disagreement_scale, error_legend, error_overlay, overlay,
                                  scaled_heatmap)
from lgg_core.app.state import (open_slice, prediction_problem, require_data, require_models, pick_models, pick_patient,
                                pick_slice, segmenter_options, show_patient_roles, slice_gate, slice_probs,
                                slice_uncertainty, mask_only)

Panel = tuple[str, np.ndarray, HeatScale | None]


def show(panels: list[Panel], key: str) -> None:
    """Four panels a row; a heatmap gets its colour bar right under it."""
    for start in range(0, len(panels), 4):
        for i, (column, (caption, picture, scale)) in enumerate(zip(st.columns(4), panels[start : start + 4])):
            column.image(picture, caption=caption, width="stretch")
            if scale:
                column.plotly_chart(colorbar(scale), key=f"{key}-{start + i}", config={"displayModeBar": False})


st.title("Compare models on one slice")
data = require_data()
options = segmenter_options()
require_models(options, "segmenter")

controls, settings = st.columns([2, 1])
with controls:
    patient = pick_patient(data)
    number, row = pick_slice(data, patient)
    chosen = pick_models(options, "Models (2–6; gated = classifier decides whether the segmenter's mask is kept)",
                         max_selections=6, default_count=min(4, len(options)))
# As short as the controls beside it, so the first row of panels stays in view while stepping at 1366x768.
with settings:
    view = st.selectbox("MRI view", VIEWS)
    overlay_box, alpha_box = st.columns(2)
    mode = overlay_box.radio("Overlay", ["fill", "contour"], horizontal=True)
    alpha = alpha_box.slider("Opacity", 0.0, 1.0, 0.45, 0.05)
    colours = st.radio("Colours", COLOUR_MODES, horizontal=True,
                       help="TP / FP / FN: each prediction against the ground truth, colour-blind safe (Okabe–Ito)")
    uncertain = st.toggle("TTA uncertainty", help="How much each model's tumor probability changes when the slice is "
                          "mirrored: one more forward pass per model")
if len(chosen) < 2 and len(options) >= 2:
    st.info("Pick at least two models to compare.")
    st.stop()
problems = {n: p for n in chosen if (p := prediction_problem(n, data, patient))}
for problem in problems.values():
    st.warning(problem)
chosen = [n for n in chosen if n not in problems]

image, truth = data.images[row], data.masks[row]
base = channel_view(image, view)
with st.spinner("Predicting…"):
    preds = {name: slice_probs(name, data, row) > 0.5 for name in chosen}

errors = colours == COLOUR_MODES[1]
st.caption(f"{patient}, slice {number} · ground truth: {int(truth.sum())} tumor pixels · " +
           ("predictions against the ground truth:" if errors else "green = ground truth, red = prediction"))
if errors:
    st.markdown(error_legend())
panels: list[Panel] = [("MRI", base, None), ("Ground truth", overlay(base, truth, GT_COLOR, mode, alpha), None)]
for name, pred in preds.items():
    m = slice_metrics(pred, truth)
    hd95 = "–" if m["hd95"] != m["hd95"] else f"{m['hd95']:.1f} px"
    picture = error_overlay(base, pred, truth, mode, alpha) if errors else overlay(base, pred, PRED_COLOR, mode, alpha)
    gate = slice_gate(name, data, row)  # a gated pipeline says why its mask is there or not
    panels.append((f"{name} · Dice {m['dice']:.3f} · HD95 {hd95}" + (f" · {gate.describe(0)}" if gate else ""),
                   picture, None))
split = disagreement_scale(len(preds))
panels.append((f"Disagreement: {split.name}", scaled_heatmap(base, disagreement(list(preds.values())), split, alpha),
               split))
show(panels, "disagreement")
show_patient_roles(patient, chosen)  # under the panels: the roles matter, the panels' place while stepping more

if uncertain:
    st.subheader("TTA uncertainty")
    top = UNCERTAINTY_SCALE.vmax
    st.caption(f"{UNCERTAINTY_SCALE.name}: variance of each model's tumor probability over the slice and its mirror "
               f"image. 0: the two agree; top colour: {top:g} or more, their probabilities {2 * top ** 0.5:g} or more "
               "apart (0.25 at most: one says tumor, the other background). The number is its mean over the pixels "
               "either view calls tumor.")
    if without := [name for name in chosen if name in mask_only()]:
        st.caption(f"No uncertainty for {', '.join(without)}: shown from masks alone, with no weights here to run.")
    with st.spinner("Predicting mirrored slices…"):
        maps = {name: slice_uncertainty(name, data, row) for name in chosen if name not in mask_only()}
    show([(f"{name} · {UNCERTAINTY_SCALE.name} · tumor-region mean {u.slice[0]:.4f}",
           scaled_heatmap(base, u.pixel[0], UNCERTAINTY_SCALE, alpha), UNCERTAINTY_SCALE) for name, u in maps.items()],
         "uncertainty")

if st.button("Explain this slice"):
    open_slice("pages/explain.py", patient, number)
