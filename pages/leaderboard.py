"""Leaderboard: every catalog model with its held-out metrics, the comparison figures, and paired tests between
segmenters with the patients where two of them differ most."""
from __future__ import annotations

import streamlit as st

from lgg_core.evaluation import leaderboard as lb
from lgg_core.evaluation import stats
from lgg_core.app.state import dataset, eval_tables, model, open_slice, records, show_model_problems

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

per_patient = stats.patient_dice(evals)
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

st.subheader("Decide between two models")
pairs = stats.pairwise(per_patient)
if pairs.empty:
    st.info("Pairwise tests need at least two evaluated segmenters.")
    st.stop()
st.plotly_chart(lb.pairwise_figure(pairs))
st.caption("Each cell compares the row model with the column model on the held-out patients both were evaluated on. "
           "Colour and first line: mean per-patient Dice of the row model minus the column model's (blue: row "
           "higher, red: column higher). Second line: the row model is *better*, *worse*, or *n.s.* (no significant "
           "difference) by a two-sided Wilcoxon signed-rank test, Holm–Bonferroni corrected over all "
           f"pairs (m = {len(pairs)}) at α = 0.05; third line: the Holm-adjusted p. The table gives each pair's "
           "95% CI (paired bootstrap over patients, 10,000 resamples).")
st.dataframe(pairs.drop(columns="metric"), hide_index=True, column_config={
    **{c: st.column_config.NumberColumn(c, format="%.3f") for c in ("mean_a", "mean_b", "mean_diff", "ci_low",
                                                                   "ci_high")},
    **{c: st.column_config.NumberColumn(c, format="%.4f") for c in ("p", "p_holm")},
})

choice = st.selectbox("Pair", pairs.index, format_func=lambda i: f"{pairs.at[i, 'a']} vs {pairs.at[i, 'b']}")
pair = pairs.loc[choice]
a, b = pair["a"], pair["b"]
st.markdown(f"**{stats.named_verdict(pair)}** on {pair['n']} shared patients: mean Dice {a} − {b} = "
            f"{pair['mean_diff']:+.3f} (95% CI {pair['ci_low']:+.3f} to {pair['ci_high']:+.3f}), Wilcoxon p "
            f"{stats.format_p(pair['p'])}, Holm {stats.format_p(pair['p_holm'])}.")
rows = stats.largest_differences(evals[a], evals[b])
data = dataset()  # Compare can only open a patient the loaded data holds
held = set(data.patients) if data is not None else set()
st.caption("Patients where the two differ most, each with the slice where their masks differ most.")
if missing := len(set(rows["patient"]) - held):
    st.caption(f"{missing} of these patients are not in the data folder set in the sidebar, so Compare cannot show "
               "them: point it at a full kaggle_3m copy.")
for _, row in rows.iterrows():
    text, button = st.columns([4, 1])
    text.markdown(f"**{row['patient']}** · {a} {row['dice_a']:.3f} · {b} {row['dice_b']:.3f} · "
                  f"difference {row['diff']:+.3f}")
    if button.button(f"Compare slice {row['slice']}", key=f"pair-{a}-{b}-{row['patient']}",
                     disabled=row["patient"] not in held):
        open_slice("pages/compare.py", row["patient"], int(row["slice"]), [a, b])
