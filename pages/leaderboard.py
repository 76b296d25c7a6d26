"""Leaderboard: every catalog model with its held-out metrics, and the comparison figures."""
from __future__ import annotations

import streamlit as st

from lgg_core.evaluation import leaderboard as lb
from lgg_core.app.state import eval_tables, model, records, show_model_problems

st.title("Leaderboard")
st.caption("Metrics on each model's held-out test patients (patient-level fold 0). Per-patient Dice is the 3D "
           "volume Dice averaged over patients, with a 95% bootstrap CI over patients; tumor-slice metrics average "
           "slices with tumor; HD95 and ASSD are in pixels. Click a column header to sort.")
show_model_problems()

recs, _ = records()
rows, evals = [], {}
for record in recs:
    tables, problem = eval_tables(record) if record.ok else (None, record.problem)
    rows.append(lb.leaderboard_row(record, tables, problem))
    if tables is not None:
        evals[record.name] = tables
if not rows:
    st.info("The model catalog is empty: add `[[model]]` entries to models.toml (or $LGG_CATALOG).")
    st.stop()

table = lb.leaderboard(rows)
latency = st.session_state.setdefault("latency_ms", {})
table["cpu_latency_ms"] = table["model"].map(latency)
st.dataframe(table, hide_index=True, column_config={
    "params": st.column_config.NumberColumn("params", format="localized"),
    **{c: st.column_config.NumberColumn(c, format="%.3f") for c in
       ("patient_dice", "tumor_slice_dice", "iou", "accuracy", "auroc")},
    **{c: st.column_config.NumberColumn(c + " (px)", format="%.1f") for c in ("hd95", "assd")},
    "cpu_latency_ms": st.column_config.NumberColumn("CPU ms/slice", format="%.0f"),
})

loadable = [r for r in recs if r.ok]
if loadable and st.button("Measure CPU latency", help="One 256² slice per forward pass, median of 5, on this host's CPU"):
    with st.spinner("Timing each model on the CPU…"):
        for record in loadable:
            latency[record.name] = lb.cpu_latency_ms(model(record), record.input_size)
    st.rerun()

per_patient = lb.patient_dice(evals)
if per_patient.empty:
    st.info("No evaluated segmenter yet: the figures appear once `lgg evaluate` has written eval/ tables.")
    st.stop()
left, right = st.columns(2)
left.plotly_chart(lb.dice_distribution_figure(per_patient))
right.plotly_chart(lb.scatter_figure(table, "hd95", "patient_dice", "Per-patient Dice vs HD95 (px)"))
left.plotly_chart(lb.scatter_figure(table, "params", "patient_dice", "Quality vs parameters", log_x=True))
if table["cpu_latency_ms"].notna().any():
    right.plotly_chart(lb.scatter_figure(table, "cpu_latency_ms", "patient_dice", "Quality vs CPU latency (ms/slice)"))
else:
    right.info("Press **Measure CPU latency** to plot quality against CPU latency.")
st.plotly_chart(lb.institution_figure(lb.institution_breakdown(per_patient)))
