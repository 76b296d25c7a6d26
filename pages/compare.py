"""Compare: one slice, ground truth and 2–6 models' predictions side by side, and where the models disagree."""
from __future__ import annotations

import streamlit as st

from lgg_core.evaluation.metrics import slice_metrics
from lgg_core.app.overlay import GT_COLOR, PRED_COLOR, VIEWS, channel_view, disagreement, heatmap, overlay
from lgg_core.app.state import require_data, require_models, pick_models, pick_patient, pick_slice, segmenter_options, share, slice_probs

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
with settings:
    view = st.selectbox("MRI view", VIEWS)
    mode = st.radio("Overlay", ["fill", "contour"], horizontal=True)
    alpha = st.slider("Opacity", 0.0, 1.0, 0.45, 0.05)
if len(chosen) < 2 and len(options) >= 2:
    st.info("Pick at least two models to compare.")
    st.stop()

image, truth = data.images[row], data.masks[row]
base = channel_view(image, view)
with st.spinner("Predicting…"):
    preds = {name: slice_probs(name, data, row) > 0.5 for name in chosen}

st.caption(f"{patient}, slice {number} · ground truth: {int(truth.sum())} tumor pixels · "
           f"green = ground truth, red = prediction")
panels = [("MRI", base), ("Ground truth", overlay(base, truth, GT_COLOR, mode, alpha))]
for name, pred in preds.items():
    m = slice_metrics(pred, truth)
    hd95 = "–" if m["hd95"] != m["hd95"] else f"{m['hd95']:.1f} px"
    panels.append((f"{name} · Dice {m['dice']:.3f} · HD95 {hd95}", overlay(base, pred, PRED_COLOR, mode, alpha)))
panels.append(("Disagreement (bright = models split)", heatmap(base, 2 * disagreement(list(preds.values())), alpha)))
for start in range(0, len(panels), 4):
    for column, (caption, picture) in zip(st.columns(4), panels[start : start + 4]):
        column.image(picture, caption=caption, width="stretch")

if st.button("Explain this slice"):
    share(patient=patient, slice=number)
    st.switch_page("pages/explain.py")
