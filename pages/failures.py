"""Failure cases: false positives, false negatives and worst-Dice slices per model and for the gated pipeline."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from lgg_core.serving.records import GATED_PREFIX, Gate, row_of
from lgg_core.evaluation.failures import KEYS, KINDS, counts, failure_cases, failure_tables
from lgg_core.app.overlay import GT_COLOR, PRED_COLOR, channel_view, overlay
from lgg_core.app.state import (dataset, eval_tables, gated_options, open_slice, follow, remembered, shown_segmenters,
                                mask_only, slice_probs)

st.title("Failure cases")
st.caption("From each model's evaluation on its held-out patients (`eval/slices.csv`, no post-processing). The gated "
           "pipeline's table is derived from its classifier's and segmenter's tables.")

ONLY_LOADED = "Only slices in the loaded data"

tables = failure_tables(shown_segmenters(), gated_options(), eval_tables)
if not tables:
    st.info("No evaluated segmenter yet: failure cases come from the eval/ tables that `lgg evaluate` writes.")
    st.stop()

# Selections live in session state of their own: Streamlit drops a widget's state while another page is shown.
left, right = st.columns([2, 1])
name = follow(left.selectbox, "failure_model", remembered("failure_model", list(tables)), "Model or pipeline",
              list(tables), valid=tables.__contains__)
data = dataset()
# Slices, not patients: with the bundled demo set, the gallery's own patients are loaded a few slices each.
loaded = data.index[KEYS] if data is not None else pd.DataFrame(columns=KEYS)
found, held = counts(tables[name]), counts(tables[name], loaded)
# On by default only where it hides something; a choice the user made is kept instead.
default = st.session_state.get("failure_loaded_only", found != held)
only_loaded = follow(left.toggle, "failure_loaded_only", default, ONLY_LOADED, valid=lambda _: True,
                     help="Leave out cases whose slice is not in the loaded data (the data folder set in the "
                          "sidebar): those can show their metrics only, no image")
if only_loaded != default:
    st.session_state["failure_loaded_only"] = only_loaded
listed = held if only_loaded else found
# Every detected tumor slice can rank by Dice: the count says what is ranked, not how many failed.
kind = follow(right.radio, "failure_kind", remembered("failure_kind", list(KINDS)), "Failure", list(KINDS),
              valid=KINDS.__contains__, format_func=lambda k: f"{k} (ranks {listed[k]} detected tumor slices)"
              if k == "worst Dice" else f"{k} ({listed[k]})")
limit = follow(right.slider, "failure_limit", st.session_state.get("failure_limit", 12), "Show", 4, 48, step=4,
               valid=lambda _: True)
st.session_state.update(failure_model=name, failure_kind=kind, failure_limit=limit)
st.caption(KINDS[kind])
if only_loaded and (hidden := found[kind] - held[kind]):
    st.caption(f"{hidden} of the {found[kind]} {kind} of {name} are on slices not in the loaded data and "
               f"are left out: turn off *{ONLY_LOADED}* to list them with their metrics, or point the sidebar at a "
               "full kaggle_3m copy.")
cases = failure_cases(tables[name], kind, limit, loaded=loaded if only_loaded else None)
if cases.empty:
    if found[kind]:
        st.info(f"None of the {kind} of {name} is on a slice of the loaded data.")
    else:
        st.success(f"No {kind} for {name}.")
    st.stop()

rows = [row_of(data, patient, int(number)) if data is not None else None
        for patient, number in zip(cases["patient"], cases["slice"])]
if missing := rows.count(None):
    st.info(f"{missing} of these cases are on slices not in the loaded data, so they show metrics only: turn on "
            f"*{ONLY_LOADED}*, or point the sidebar at a full kaggle_3m copy to see them.")
# Compare needs two models: the failing one next to its gated segmenter, or the catalog's best other segmenter.
partner = (gated_options()[name][1].name if name.startswith(GATED_PREFIX)
           else next((m for m in shown_segmenters() if m != name), None))
models = [name, *([partner] if partner else [])]
st.caption("Outlines over FLAIR: green, the ground truth; red, the model's prediction.")
columns = st.columns(4)
for i, case in cases.iterrows():
    # One bordered card per case, its label on top: a label below an image read as the caption of the next one.
    with columns[i % 4].container(border=True):
        st.markdown(f"**{case['patient']}** · slice {case['slice']}  \nDice {case['dice']:.3f} · "
                    f"FP {case['fp']} px · FN {case['fn']} px")
        if "gate_prob" in case:  # a gated pipeline: why its mask is there or not, at gated_slices' threshold
            st.caption(Gate(gated_options()[name][0].name, np.array([case["gate_prob"]]), 0.5).describe(0))
        if (row := rows[i]) is not None:
            base = channel_view(data.images[row])
            pred = slice_probs(name, data, row) > 0.5
            st.image(overlay(overlay(base, data.masks[row], GT_COLOR, "contour"), pred, PRED_COLOR, "contour"),
                     width="stretch")
            a, b = st.columns(2)
            if a.button("Compare", key=f"cmp{i}"):
                open_slice("pages/compare.py", case["patient"], int(case["slice"]), models)
            # Grad-CAM needs the weights; a model shown from its stored masks has none here.
            if name not in mask_only() and b.button("Explain", key=f"exp{i}"):
                open_slice("pages/explain.py", case["patient"], int(case["slice"]), models)
