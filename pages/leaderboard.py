"""Leaderboard: every catalog model, its post-processing variants and the gated pipelines with their held-out
metrics and shared latency, the comparison figures, per-institution results, and paired tests between segmenters
with the patients where two of them differ most."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from lgg_core.app import latency
from lgg_core.evaluation import crossval
from lgg_core.evaluation import leaderboard as lb
from lgg_core.evaluation import stats
from lgg_core.app.state import crossval_runs, dataset, eval_tables, open_slice, records, show_model_problems

st.title("Leaderboard")
st.caption("Metrics on each model's held-out test patients (patient-level fold 0). Per-patient Dice is the 3D "
           "volume Dice averaged over patients, with a 95% bootstrap CI over patients; tumor-slice metrics average "
           "slices with tumor; HD95 and ASSD are in pixels. Post-processing variants and gated pipelines are scored "
           "on the same patients. Click a column header to sort; hover it for what it measures.")
show_model_problems()


@st.cache_data(show_spinner=False, max_entries=4)
def board(items: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The leaderboard and the per-patient Dice of its segmenter rows (bootstraps: worth keeping across reruns)."""
    return lb.leaderboard(lb.all_rows(items)), lb.entry_patients(items)


@st.cache_data(show_spinner=False, max_entries=16)
def cv_report(name: str, folder: str, fold_mtimes: tuple[float, ...]) -> crossval.RunReport:
    """One run's pooled folds (bootstraps: worth keeping until a fold is re-evaluated)."""
    return crossval.run_report(name, Path(folder))


recs, _ = records()
items = [(record, *(eval_tables(record) if record.ok else (None, record.problem))) for record in recs]
if not items:
    st.info("The model catalog is empty: add `[[model]]` entries to models.toml (or $LGG_CATALOG).")
    st.stop()
full, per_entry = board(items)
measured = latency.latencies()
left, right = st.columns(2)
table = lb.select_rows(
    lb.with_latency(full, measured),
    variants=left.toggle("Post-processing variants", value=True,
                         help="Each segmenter's masks reduced to their largest 3D component per patient, and "
                              "averaged with the horizontally flipped slice's (flip TTA)"),
    gated=right.toggle("Gated pipelines", value=True,
                       help="A classifier decides which slices keep the segmenter's mask; scored exactly from both "
                            "models' slice tables"))
st.dataframe(lb.styled(table), hide_index=True, placeholder=lb.EMPTY, column_order=list(lb.LABELS), column_config={
    column: st.column_config.Column(label, help=lb.HELP.get(column), width=lb.WIDTHS.get(column),
                                    pinned=True if column == "model" else None)
    for column, label in lb.LABELS.items()})

timed = table.dropna(subset=["latency_ms"])
if st.button("Measure latency", help="Times every model this server can run, with the backend it serves each "
                                     "through; the result is shown to every visitor"):
    with st.spinner("Timing each model on one slice…"):
        latency.measure_all()
    st.rerun()
last = max((m.measured_at for m in measured.values()), default=None)
st.caption(f"Latency: one 256² slice per call, median of {latency.REPEATS} after a warm-up, timed on this server "
           "with the backend each model is served through (column *Timed on*), and shared by every session. "
           + (f"{len(timed)} of {len(table)} rows timed, last at {time.strftime('%H:%M', time.localtime(last))} "
              "(server time)." if len(timed) else "Not measured yet."))

runs, problem = crossval_runs()
reports = [cv_report(entry.name, str(entry.path), mtimes) for entry, mtimes in runs]
if reports or problem:
    st.subheader("Cross-validation: every patient held out once")
    st.caption("The rows above score one test fold of 22 patients. A cross-validation run trains the same recipe "
               "once per patient-level fold and scores each fold's model on its own held-out patients, so all "
               "110 patients are scored exactly once (Buda et al.'s protocol: per-patient volume Dice averaged "
               "over patients, 95% bootstrap CI over patients).")
    if problem:
        st.warning(problem)
for report in reports:
    if report.problem:
        st.warning(report.problem)
        continue
    patients = int(report.table["patients"].iloc[0])
    st.markdown(f"**{report.name}**: {report.folds} of {report.expected} folds evaluated, {patients} patients"
                + ("" if report.folds >= report.expected else " (still running: the pool is partial)")
                + f" · reproduce: `{crossval.reproduce_command(report.folder)}`")
    st.dataframe(crossval.summary_display(report.table), hide_index=True)
    st.plotly_chart(crossval.folds_figure(report.pooled), key=f"cv-{report.name}")

evals = {record.name: tables for record, tables, _ in items if tables is not None}
per_patient = stats.patient_dice(evals)
if per_patient.empty:
    st.info("No evaluated segmenter yet: the figures appear once `lgg evaluate` has written eval/ tables.")
    st.stop()
left, right = st.columns(2)
left.plotly_chart(lb.dice_distribution_figure(per_patient))
right.plotly_chart(lb.scatter_figure(table, "hd95", "patient_dice", "Per-patient Dice vs HD95"))
left.plotly_chart(lb.scatter_figure(table, "params", "patient_dice", "Quality vs parameters", log_x=True))
if len(timed):
    right.plotly_chart(lb.scatter_figure(table, "latency_ms", "patient_dice", "Quality vs latency"))
else:
    right.info("Press **Measure latency** to plot quality against latency.")

st.subheader("Per institution")
shown = per_entry[per_entry["model"].isin(table["model"])]
everything = "all rows shown above"
choice = st.selectbox("Results for", [everything, *table.loc[table["model"].isin(shown["model"]), "model"]])
breakdown = lb.institution_breakdown(shown if choice == everything else shown[shown["model"] == choice])
st.dataframe(lb.institution_display(breakdown), hide_index=True, placeholder=lb.EMPTY)
st.caption("Mean per-patient Dice of each institution's held-out patients, with a 95% bootstrap CI over those "
           "patients (none for a single patient). Few patients per institution make wide intervals.")
st.plotly_chart(lb.institution_figure(breakdown))

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
