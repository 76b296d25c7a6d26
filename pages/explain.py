"""Explain: Grad-CAM, Grad-CAM++ and HiResCAM of a classifier or segmenter on one slice, and whether it hits the tumor."""
from __future__ import annotations

import streamlit as st

from lgg_core.explain.cam import CAM_METHODS, ExplainError, explain, layer_options
from lgg_core.app.overlay import GT_COLOR, VIEWS, channel_view, heatmap, overlay
from lgg_core.app.state import (require_data, require_models, model, pick_patient, pick_slice, show_patient_roles,
                                slice_probs, usable)

st.title("Explain a prediction")
st.caption("Classifiers are explained for their tumor logit; segmenters for the sum of tumor logits inside a mask "
           "(pytorch-grad-cam's SemanticSegmentationTarget), either their own prediction or the ground truth.")
data = require_data()
models = usable()
require_models(models, "model")

left, right = st.columns([2, 1])
with left:
    patient = pick_patient(data)
    number, row = pick_slice(data, patient)
remembered = [m for m in st.session_state.get("models", []) if m in models]
with right:
    name = st.selectbox("Model", list(models), index=list(models).index(remembered[0]) if remembered else 0)
    record = models[name]
    net = model(record)
    method = st.selectbox("Method", list(CAM_METHODS))
    layer = st.selectbox("Target layer", layer_options(net), help="Deep layers first: coarse but semantic maps")
    target = st.radio("Explain the tumor logits inside", ["predicted mask", "ground-truth mask"], horizontal=True,
                      disabled=record.task == "classify")
    view = st.selectbox("MRI view", VIEWS)
    alpha = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05)

show_patient_roles(patient, [name])
image, truth = data.images[row], data.masks[row]
target_mask = None
if record.task == "segment":
    target_mask = truth if target == "ground-truth mask" else slice_probs(name, data, row) > 0.5
    if not target_mask.any() and truth.any():
        st.info("The model predicts no tumor on this slice, so the map explains its tumor logits inside the "
                "ground-truth mask instead.")
        target_mask = truth
try:
    with st.spinner(f"Computing {method}…"):
        result = explain(net, image, method, layer, target_mask, truth, record.input_size)
except ExplainError as err:
    st.warning(str(err))
    st.stop()

base = channel_view(image, view)
a, b = st.columns(2)
a.image(overlay(base, truth, GT_COLOR, "contour", 1.0), caption=f"{patient}, slice {number} · ground truth (green)",
        width="stretch")
b.image(overlay(heatmap(base, result.cam, alpha), truth, GT_COLOR, "contour", 1.0),
        caption=f"{method} at {layer} · ground truth outlined", width="stretch")
score_label = "tumor probability" if record.task == "classify" else "mean tumor probability in the target mask"
m1, m2, m3 = st.columns(3)
m1.metric(score_label.capitalize(), f"{result.score:.3f}")
if not truth.any():
    m2.metric("CAM energy inside the tumor", "–")
    m3.caption("This slice has no tumor, so there is nothing for the map to hit.")
elif result.inside_share is None:
    m2.metric("CAM energy inside the tumor", "–")
    m3.caption("The map is zero everywhere at this layer (no positive evidence); try another layer or method.")
else:
    m2.metric("CAM energy inside the tumor", f"{result.inside_share:.1%}",
              help="Share of the heatmap's total energy that lies inside the ground-truth mask")
    m3.metric("Lift over chance", f"{result.lift:.1f}×",
              help=f"The tumor covers {result.area_share:.1%} of the slice; a map spread evenly scores that. "
                   "Above 1× the map concentrates on the tumor.")
