"""Explain: Grad-CAM, Grad-CAM++ and HiResCAM of a classifier or segmenter on one slice, and whether it hits the tumor."""
from __future__ import annotations

import numpy as np
import streamlit as st

from lgg_core.data.inputs import stack_inputs
from lgg_core.explain.cam import CAM_METHODS, ROAD_REMOVED, ExplainError, describe_layer, explain, layer_options
from lgg_core.app.overlay import (CAM_SCALE, GT_COLOR, PRED_COLOR, VIEWS, channel_view, colorbar, overlay,
                                  scaled_heatmap)
from lgg_core.app.state import (require_data, require_models, model, pick_patient, pick_slice, show_patient_roles,
                                slice_probs, usable)

# pytorch-grad-cam rescales every map to [0, 1] on its own slice, so 1 is this map's strongest evidence, not an
# absolute level; exact zeros (no positive evidence after the ReLU) stay uncoloured.

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
    layer = st.selectbox("Target layer", layer_options(net), format_func=lambda name: describe_layer(net, name),
                         help="Deep layers first: coarse but semantic maps; decoder layers are sharper")
    target = st.radio("Explain the tumor logits inside", ["predicted mask", "ground-truth mask"], horizontal=True,
                      disabled=record.task == "classify")
    view = st.selectbox("MRI view", VIEWS)
    alpha = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05)

show_patient_roles(patient, [name])
image, truth = data.images[row], data.masks[row]
base = channel_view(image, view)
truth_view = overlay(base, truth, GT_COLOR, "contour", 1.0)
target_mask = None
if record.task == "segment":
    predicted = slice_probs(name, data, row) > 0.5
    target_mask = truth if target == "ground-truth mask" else predicted
    if not target_mask.any() and truth.any():
        st.info("The model predicts no tumor on this slice, so the map explains its tumor logits inside the "
                "ground-truth mask instead.")
        target_mask = truth
try:
    with st.spinner(f"Computing {method} and its faithfulness…"):
        inputs = stack_inputs(data.images, data.index, record.inputs, np.array([row]))[0]
        result = explain(net, inputs, method, layer, target_mask, truth, record.input_size)
except ExplainError as err:
    # Only an empty target gets here (the pickers offer valid methods and layers): show the slice and say why.
    st.warning(str(err))
    st.image(truth_view, caption=f"{patient}, slice {number} · no tumor in the ground truth", width=384)
    also = (" The model does predict tumor here: explain the predicted mask instead." if predicted.any()
            else " The model predicts none either.")
    st.markdown("**No map for this slice.** A segmenter's map shows which pixels raise its tumor logits inside a "
                "target region, and here that region is empty: the ground truth has no tumor on this slice." + also)
    st.stop()

a, b = st.columns(2)
a.image(truth_view, caption=f"{patient}, slice {number} · ground truth (green)", width="stretch")
cam_view = overlay(scaled_heatmap(base, result.cam, CAM_SCALE, alpha), truth, GT_COLOR, "contour", 1.0)
if record.task == "classify":
    outlines = "green: ground truth; the map explains the tumor logit of the whole slice"
elif target_mask is truth:
    outlines = "green: ground truth, also the target whose tumor logits are explained"
else:
    cam_view = overlay(cam_view, target_mask, PRED_COLOR, "contour", 1.0)
    outlines = "green: ground truth · red: target, the predicted mask whose tumor logits are explained"
b.image(cam_view, caption=f"{method} at {describe_layer(net, layer)} · {outlines}", width="stretch")
b.plotly_chart(colorbar(CAM_SCALE), key="cam-colorbar", config={"displayModeBar": False})
score_label = "tumor probability" if record.task == "classify" else "mean tumor probability in the target mask"
m1, m2, m3, m4 = st.columns(4)
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
removed = f"{ROAD_REMOVED:.0%}"
m4.metric("Faithfulness (ROAD)", "–" if result.faithfulness is None else f"{result.faithfulness:+.3f}",
          help=f"The {score_label} with the {removed} of pixels the map ranks lowest removed, minus with the {removed} "
               "it ranks highest removed (removed pixels are filled in from their neighbours). Above 0: the model "
               "relies on what the map highlights; about 0: no better than a random map; below 0: misleading. "
               "Compare methods and layers on the same slice. –: the map is zero everywhere.")
