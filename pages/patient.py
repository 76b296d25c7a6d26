"""Patient viewer: scroll a patient's slices with ground truth, a model's prediction and a per-slice Dice strip."""
from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import streamlit as st

from lgg_core.evaluation.metrics import batch_slice_metrics, volume_dice
from lgg_core.explain.uncertainty import uncertainty_vs_dice
from lgg_core.serving.records import patient_role
from lgg_core.app.figures import slice_strip
from lgg_core.app.overlay import (COLOUR_MODES, GT_COLOR, PRED_COLOR, UNCERTAINTY_SCALE, VIEWS, channel_view, colorbar,
                                  error_legend, error_overlay, overlay, scaled_heatmap, window)
from lgg_core.app.state import (ROLE_WORDS, require_data, require_models, patient_gate, patient_probs,
                                patient_uncertainty, pick_patient, pick_slice, prediction_problem, segmenter_options,
                                show_patient_roles, shown_segmenters, slice_chart, mask_only)

st.title("Patient viewer")
data = require_data()
options = segmenter_options()
require_models(options, "segmenter")

# The image beside its slice slider: stepping through the volume keeps both in view at 1366x768.
viewer, controls = st.columns([3, 2])
with controls:
    patient = pick_patient(data)
    remembered = [m for m in st.session_state.get("models", []) if m in options]
    name = st.selectbox("Model", options, index=options.index(remembered[0]) if remembered else 0)
    slider_box = st.container()  # filled once the patient's volume is known to be showable
    view = st.selectbox("MRI view", VIEWS)
    overlay_box, colour_box = st.columns(2)
    mode = overlay_box.radio("Overlay", ["contour", "fill"], horizontal=True)
    colours = colour_box.radio("Colours", COLOUR_MODES, horizontal=True,
                               help="TP / FP / FN: the prediction against the ground truth, colour-blind safe "
                                    "(Okabe–Ito)")
    low, high = st.slider("Brightness / contrast", 0, 255, (0, 255),
                          help="Display window: intensities below the left end show black, above the right end "
                               "white. Narrow it (e.g. 0–120) to see a dark scan. Display only: the models always "
                               "see the original intensities.")
    uncertain = st.toggle("TTA uncertainty", help="How much the tumor probability changes when each slice is "
                          "mirrored, and whether that flags the badly segmented slices: one more forward pass a slice")
if patient in data.partial:
    # Volume Dice, the strip and the uncertainty correlation over a few slices would pass for the patient's own.
    st.info(f"Only {len(data.rows([patient]))} slices of {patient} are bundled, those the Failure cases page shows: "
            "this page needs the whole volume. Open those slices in Compare or Explain, pick a patient without "
            "*gallery slices only*, or point the sidebar at a full kaggle_3m copy.")
    st.stop()
show_patient_roles(patient, [name])
if problem := prediction_problem(name, data, patient):
    st.warning(problem + " Pick one of its test patients or another model.")
    st.stop()
if uncertain and name in mask_only():
    st.caption(f"No TTA uncertainty for {name}: shown from masks alone, with no weights here to run.")
    uncertain = False

rows = data.rows([patient])
truths = data.masks[rows]
with st.spinner(f"Predicting {len(rows)} slices with {name}…"):
    preds = patient_probs(name, data, patient) > 0.5
gate = patient_gate(name, data, patient)
table = batch_slice_metrics(preds, truths)
table["slice"] = data.index["slice"].to_numpy()[rows]
if uncertain:
    with st.spinner(f"Predicting {len(rows)} mirrored slices with {name}…"):
        tta = patient_uncertainty(name, data, patient)
    table["uncertainty"] = tta.slice

score, everyone = st.columns([1, 2])
score.metric(f"Volume Dice, {name}", f"{volume_dice(preds, truths):.3f}",
             help=f"3D Dice over the {len(rows)} slices of {patient} in the loaded data: all tumor pixels of the "
                  "volume at once, as Buda et al. report it")
if everyone.toggle("Volume Dice of every segmenter", help="Predicts this patient with each segmenter: one pass "
                   "over its slices per model, kept for the next visit"):
    segmenters = {n: r for n, r in shown_segmenters().items() if not prediction_problem(n, data, patient)}
    names = [*segmenters, *([name] if name not in segmenters else [])]
    with st.spinner(f"Predicting {patient} with {len(names)} models…"):
        dice = [volume_dice(patient_probs(n, data, patient) > 0.5, truths) for n in names]
    roles = [ROLE_WORDS[patient_role(segmenters[n], patient)] if n in segmenters else "–" for n in names]
    everyone.dataframe(pd.DataFrame({"model": names, "volume Dice": dice, f"{patient} was a": roles})
                       .sort_values("volume Dice", ascending=False), hide_index=True,
                       column_config={"volume Dice": st.column_config.NumberColumn(format="%.3f")})

with slider_box:
    number, row = pick_slice(data, patient)

position = int((rows == row).nonzero()[0][0])
base = window(channel_view(data.images[row], view), low, high)
errors = colours == COLOUR_MODES[1]
if errors:
    picture = error_overlay(base, preds[position], data.masks[row], mode, 0.4)
    legend = f"{name} against the ground truth"
else:
    picture = overlay(overlay(base, data.masks[row], GT_COLOR, mode, 0.4), preds[position], PRED_COLOR, mode, 0.4)
    legend = f"green = ground truth, red = {name}"
m = table.iloc[position]
verdict = f" · {gate.describe(position)}" if gate else ""
windowed = f" · shown with intensities {low}–{high} stretched (display only)" if (low, high) != (0, 255) else ""
shown, heat = viewer.columns(2) if uncertain else (viewer.container(), None)
shown.image(picture, caption=f"{patient}, slice {number}: {legend} · Dice {m['dice']:.3f}{verdict}{windowed}",
            width="stretch")
if errors:
    shown.markdown(error_legend())
if uncertain:
    heat.image(scaled_heatmap(base, tta.pixel[position], UNCERTAINTY_SCALE), width="stretch",
               caption=f"{UNCERTAINTY_SCALE.name} of {name}: over the slice and its mirror image · tumor-region mean "
                       f"{tta.slice[position]:.4f}")
    heat.plotly_chart(colorbar(UNCERTAINTY_SCALE), config={"displayModeBar": False})

hover = ["fp", "fn", "hd95"] + (["uncertainty"] if uncertain else [])
slice_chart(slice_strip(table, number, f"Per-slice Dice along the volume ({name})", hover, gate), key="strip")

if uncertain:
    st.subheader("Does the uncertainty flag the errors?")
    found = uncertainty_vs_dice(tta.slice, table["dice"], table["true_tumor"])
    number_box, chart = st.columns([1, 2])
    defined = not math.isnan(found.rho)
    number_box.metric("Spearman ρ, uncertainty vs Dice", f"{found.rho:+.2f}" if defined else "–",
                      help="Rank correlation over this patient's tumor slices of the tumor-region mean "
                           f"{UNCERTAINTY_SCALE.name} and the slice's Dice: negative when the uncertain slices are "
                           "the badly segmented ones")
    number_box.caption(f"{found.n} tumor slices · p = {found.p_value:.3g}" if defined else
                       f"Undefined on {found.n} tumor slices: it needs 3 or more, with varying uncertainty and Dice.")
    tumor_slices = table[table["true_tumor"]]
    chart.plotly_chart(px.scatter(tumor_slices, x="uncertainty", y="dice", hover_data=["slice", "fp", "fn"], height=300,
                                  labels={"uncertainty": f"tumor-region mean {UNCERTAINTY_SCALE.name}"},
                                  title="Tumor slices: uncertainty vs Dice").update_yaxes(range=[-0.05, 1.05]))
