"""Patient viewer: scroll a patient's slices with ground truth, a model's prediction and a per-slice Dice strip."""
from __future__ import annotations

import plotly.express as px
import streamlit as st

from lgg_core.evaluation.metrics import batch_slice_metrics
from lgg_core.app.overlay import GT_COLOR, PRED_COLOR, VIEWS, channel_view, overlay
from lgg_core.app.state import require_data, require_models, patient_probs, pick_patient, pick_slice, segmenter_options

st.title("Patient viewer")
data = require_data()
options = segmenter_options()
require_models(options, "segmenter")

left, right = st.columns([2, 1])
with left:
    patient = pick_patient(data)
    remembered = [m for m in st.session_state.get("models", []) if m in options]
    name = st.selectbox("Model", options, index=options.index(remembered[0]) if remembered else 0)
with right:
    view = st.selectbox("MRI view", VIEWS)
    mode = st.radio("Overlay", ["contour", "fill"], horizontal=True)

rows = data.rows([patient])
with st.spinner(f"Predicting {len(rows)} slices with {name}…"):
    preds = patient_probs(name, data, patient) > 0.5
table = batch_slice_metrics(preds, data.masks[rows])
table["slice"] = data.index["slice"].to_numpy()[rows]
table["tumor"] = table["true_tumor"].map({True: "tumor", False: "no tumor"})

with left:
    number, row = pick_slice(data, patient)
strip = px.bar(table, x="slice", y="dice", color="tumor", hover_data=["fp", "fn", "hd95"], height=220,
               title=f"Per-slice Dice along the volume ({name})",
               color_discrete_map={"tumor": "#e0533d", "no tumor": "#6c8ebf"})
strip.add_vline(x=number, line_dash="dash")
st.plotly_chart(strip.update_yaxes(range=[0, 1.05]))

position = int((rows == row).nonzero()[0][0])
base = channel_view(data.images[row], view)
picture = overlay(overlay(base, data.masks[row], GT_COLOR, mode, 0.4), preds[position], PRED_COLOR, mode, 0.4)
m = table.iloc[position]
st.image(picture, caption=f"{patient}, slice {number}: green = ground truth, red = {name} · Dice {m['dice']:.3f}",
         width=512)
