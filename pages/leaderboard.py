"""Leaderboard: the catalog's models (post-processing variants and gated pipelines on request) with their held-out
metrics and shared latency, each model against the best one chosen on validation, the cross-validation runs, the
comparison figures, per-institution results, paired tests between segmenters with the patients where two of them
differ most, and a visitor's own predictions, scored for that session only."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from lgg_core.app import board, charts
from lgg_core.app import external as yours
from lgg_core.app import latency
from lgg_core.evaluation import crossval
from lgg_core.evaluation import external
from lgg_core.evaluation import leaderboard as lb
from lgg_core.evaluation import stats
from lgg_core.app.overlay import error_legend
from lgg_core.app.stored import stored_table
from lgg_core.data.cache import LGGData
from lgg_core.app.state import (PAIR_PARAM, catalog_key, crossval_runs, dataset, eval_tables, open_slice, pick_linked,
                                pick_section, records, show_model_problems)

if TYPE_CHECKING:
    import plotly.graph_objects as go

# The verdict and the difference first: in a narrow window the last columns scroll out of view. p-values with two
# significant digits ("%.4f" showed 0.0000, a p of zero); they stay numbers, so a column sorts by value.
PAIR_LABELS = {"a": ("Model A", None), "b": ("Model B", None), "verdict": ("Verdict", None),
               "difference": ("A − B (95% CI)", None), "p_holm": ("Holm p", "%.2g"), "n": ("Shared patients", None),
               "mean_a": ("Dice A", "%.3f"), "mean_b": ("Dice B", "%.3f"), "p": ("Wilcoxon p", "%.2g")}

st.title("Leaderboard")
st.caption("Metrics on each model's held-out test patients (patient-level fold 0). Per-patient Dice is the 3D "
           "volume Dice averaged over patients, with a 95% bootstrap CI over patients; tumor-slice metrics average "
           "slices with tumor; HD95 and ASSD are in pixels. Post-processing variants and gated pipelines are scored "
           "on the same patients. Click a column header to sort; hover it for what it measures.")
show_model_problems()


def board_tables(items: list, gated: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The leaderboard and the per-patient Dice of its segmenter rows.

    Gated pipelines, one per classifier and segmenter, cost most of a cold start: built only when asked for.
    """
    return lb.leaderboard(lb.all_rows(items, gated)), lb.entry_patients(items, gated)


def show_pairs(pairs: pd.DataFrame) -> None:
    """A table of paired tests (:func:`lgg_core.evaluation.stats.pairwise`) with readable column names: the two
    models pinned, then the verdict (wide enough to read whole) and the difference with its CI in one column, so that
    what decides a pair stays in view in a 1366-pixel window even with long run names; the rest scrolls."""
    difference = [f"{m:+.3f} ({low:+.3f} to {high:+.3f})" if m == m else "–"
                  for m, low, high in zip(pairs["mean_diff"], pairs["ci_low"], pairs["ci_high"])]
    st.dataframe(pairs.drop(columns="metric").assign(difference=difference), hide_index=True,
                 column_order=list(PAIR_LABELS), column_config={
                     column: st.column_config.NumberColumn(label, format=fmt) if fmt else st.column_config.Column(
                         label, pinned=column in ("a", "b") or None, width=190 if column == "verdict" else None)
                     for column, (label, fmt) in PAIR_LABELS.items()})


@st.cache_data(show_spinner=False, max_entries=64)
def _kept(what: str, key: tuple, _compute: Callable[[], Any]) -> Any:
    return _compute()


def kept(what: str, key: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()`` (bootstraps, tables, figures) kept across reruns under ``key``, a cheap fingerprint of everything
    it reads, since hashing the tables themselves on every rerun costs more than a second. Only for the catalog's
    entries: with a visitor's own entry on the page it is computed afresh, so it never enters a cache that the whole
    process shares."""
    return compute() if submission is not None else _kept(what, key, compute)


def kept_table(what: str, key: tuple, inputs: list[pd.DataFrame | str], compute: Callable[[], pd.DataFrame]
               ) -> pd.DataFrame:
    """:func:`kept`, and for the catalog's entries alone also stored on disk by the content of ``inputs``
    (:func:`~lgg_core.app.stored.stored_table`), so a fresh server reads it: with a visitor's own entry on the page
    it is computed in this session only and written nowhere."""
    return compute() if submission is not None else _kept(what, key, lambda: stored_table(what, inputs, compute))


@st.cache_data(show_spinner=False, max_entries=16)
def cv_report(name: str, folder: str, fold_mtimes: tuple[float, ...]) -> crossval.RunReport:
    """One run's pooled folds and their summary (bootstraps: stored on disk by the pooled table's content)."""
    report = crossval.pool_run(name, Path(folder))
    if report.pooled is None:
        return report
    return dataclasses.replace(report, table=stored_table("cv-summary", [report.pooled],
                                                          lambda: crossval.summary(report.pooled)))




def add_yours(data: LGGData | None) -> external.Submission | None:
    """Masks or a model of the visitor's, scored on ``data``; the result stays in this session only."""
    submission = st.session_state.get(yours.SESSION_KEY)
    # Open while it holds something: a rerun that remounts it (the page above it changed) must not hide the upload.
    busy = st.session_state.get("your_kind", yours.MASKS) != yours.MASKS or any(
        st.session_state.get(key) is not None for key in ("your_predictions_file", "your_model_file", yours.JOB_KEY))
    with st.expander("Add your predictions or your model", expanded=submission is not None or busy):
        kind = st.radio("What you bring", list(yours.KINDS), horizontal=True, key="your_kind",
                        captions=list(yours.KINDS.values()))
        splits = list(external.SPLIT_LABELS)
        split = st.radio("Patients", splits, format_func=external.SPLIT_LABELS.get, horizontal=True,
                         key="your_predictions_split", index=splits.index(external.default_split(data)))
        if kind == yours.MASKS:
            score_masks(data, split)
        else:
            start_model(data, split)
        if (problem := st.session_state.pop(yours.ERROR_KEY, None)) is not None:
            st.error(problem)
        if (submission := st.session_state.get(yours.SESSION_KEY)) is not None:
            if st.button("Remove mine"):
                del st.session_state[yours.SESSION_KEY]
                st.rerun()
            show_submission(submission, data)
    return submission


def score_masks(data: LGGData | None, split: str) -> None:
    st.caption("Masks from your own model, scored exactly as `lgg score-predictions` scores them and compared "
               "with the zoo patient by patient. A `.zip` of masks named like the dataset's "
               "(`TCGA_CS_4941_19960909_12_mask.png` or `.tif`) or an `.npz` of per-patient (slices, 256, 256) "
               "volumes; binary or probabilities in [0, 1] (thresholded at 0.5). Only you see them; they are "
               "kept in memory for this session and never written to the server's disk.")
    upload = st.file_uploader("Predicted masks", type=["zip", "npz"], key="your_predictions_file")
    if st.button("Score", disabled=upload is None or data is None, type="primary"):
        try:
            with st.spinner("Scoring your predictions…"):
                st.session_state[yours.SESSION_KEY] = external.score_submission(upload.name, upload.getvalue(), split,
                                                                                data)
        except ValueError as err:  # the reader's and the split's messages are written for the visitor
            st.error(f"{upload.name}: {err}")


def start_model(data: LGGData | None, split: str) -> None:
    from lgg_core.evaluation.by_reference import time_limit_s  # imports torch: only for visitors who bring a model
    from lgg_core.serving.foreign import MAX_MODEL_BYTES, hub_enabled

    st.caption("An ONNX segmenter (N × 3 × H × W float input, the zoo's normalisation, logits out; standard "
               "operators only, weights inside the file) or a `.zip` of an `lgg_core` artifact folder (`config.json` "
               f"and `model.safetensors`), at most {MAX_MODEL_BYTES >> 20} MiB. It runs here on the chosen patients, "
               f"one visitor's model at a time and for at most {time_limit_s() / 60:.0f} minutes, then is scored as "
               "`lgg evaluate model.onnx` scores it. Only you see the result; the file is deleted once the model "
               "is loaded.")
    upload = st.file_uploader("Model", type=["onnx", "zip"], key="your_model_file",
                              max_upload_size=MAX_MODEL_BYTES >> 20)
    repo = st.text_input("…or a Hub repo id of an lgg_core artifact", key="your_model_repo", placeholder="owner/name",
                         help="Downloaded into a temporary folder, checked like any artifact, then deleted"
                         ).strip() if hub_enabled() else ""
    job = st.session_state.get(yours.JOB_KEY)
    if st.button("Evaluate", type="primary",
                 disabled=job is not None or data is None or (upload is None and not repo)):
        try:
            st.session_state[yours.JOB_KEY] = yours.start_job(upload, repo, split, data)
        except ValueError as err:  # the split's message is written for the visitor
            st.error(str(err))
    if st.session_state.get(yours.JOB_KEY) is not None:
        yours.job_progress()


def show_submission(submission: external.Submission, data: LGGData | None) -> None:
    """Scores, the forest plot against the zoo, the patients, the worst slices and the downloads."""
    raw = submission.scored.summary["variants"]["raw"]
    st.markdown(f"**{submission.label}** on {raw['patients']} patients ({external.SPLIT_LABELS[submission.split]}): "
                f"per-patient Dice {raw['patient_dice']:.3f} (95% CI {raw['patient_dice_ci'][0]:.3f}–"
                f"{raw['patient_dice_ci'][1]:.3f}). It joins the table, the figures and the pairwise tests below.")
    for note in submission.notes:
        st.caption(f"Note: {note}.")
    title = f"{submission.label} − each model: mean per-patient Dice (95% CI)"
    forest = yours.forest_rows(submission.comparison)
    st.vega_lite_chart(yours.forest_chart(forest, title, yours.YOURS_AXIS), width="stretch", key="your-forest")
    st.caption("Each model against yours on the patients both were scored on: paired bootstrap 95% CI over "
               f"patients, two-sided Wilcoxon, Holm over the {len(submission.comparison)} comparisons. Blue: yours "
               "significantly better; vermillion: the model significantly better; grey: no significant difference.")
    st.dataframe(external.comparison_display(submission.comparison), hide_index=True)
    st.dataframe(external.patients_display(submission.scored), hide_index=True)
    # The masks index the slices they were scored on: another data folder set since then cannot draw them.
    scored_here = data is not None and data.dataset_hash == submission.scored.summary["dataset_hash"]
    pictures = [] if not scored_here else [
        (f"{w.patient}, slice {w.slice}: patient Dice {w.dice:.3f}", yours.slice_picture(data, w.row, w.mask))
        for w in external.worst_slices(submission.scored, data)]
    if pictures:
        st.markdown("Your worst patients, each on its slice with the most wrong pixels: " + error_legend())
        for column, (caption, image) in zip(st.columns(len(pictures)), pictures):
            column.image(image, caption=caption)
    csv, report = st.columns([1, 3])
    csv.download_button("Per-patient CSV", external.per_patient_csv(submission.scored),
                        file_name=f"{submission.name}-dice.csv", mime="text/csv")
    report.download_button(
        "HTML report", lambda: yours.report_html(
            submission.label, f"Scored on {external.SPLIT_LABELS[submission.split]} as `"
            + ("lgg evaluate model.onnx" if submission.source == "model" else "lgg score-predictions")
            + f" --split {submission.split}` scores them.", submission.notes, submission.scores_markdown(),
            external.comparison_display(submission.comparison), yours.forest_figure(forest, title, yours.YOURS_AXIS),
            pictures, external.patients_display(submission.scored)),
        file_name=f"{submission.name}-report.html", mime="text/html")


data = dataset()  # the visitor's predictions are scored on it; Compare can only open a patient it holds
submission = add_yours(data)
recs, _ = records()
items = [(record, *(eval_tables(record) if record.ok else (None, record.problem))) for record in recs]
if not items:
    st.info("The model catalog is empty: add `[[model]]` entries to models.toml (or $LGG_CATALOG).")
    st.stop()
left, right = st.columns(2)
show_variants = left.toggle("Post-processing variants", value=False,
                            help="Each segmenter's masks reduced to their largest 3D component per patient, and "
                                 "averaged with the horizontally flipped slice's (flip TTA)")
show_gated = right.toggle("Gated pipelines", value=False,
                          help="A classifier decides which slices keep the segmenter's mask; scored exactly from both "
                               "models' slice tables")
catalog = catalog_key(items)
full, per_entry = kept("board", (catalog, show_gated), lambda: board_tables(items, show_gated))
if submission is not None:  # computed apart: the shared cache of board() never holds a visitor's entry
    mine = [(submission.record(), submission.tables(), None)]
    full = lb.leaderboard(full.to_dict("records") + lb.all_rows(mine, gated=False))
    per_entry = pd.concat([per_entry, lb.entry_patients(mine, gated=False)], ignore_index=True)
measured = latency.latencies()
table = lb.select_rows(lb.with_latency(full, measured), variants=show_variants, gated=show_gated)
timed = table.dropna(subset=["latency_ms"])
# Two empty columns until someone measures would push AUROC and the patient count out of a 1366-pixel window.
shown_columns = [c for c in board.LABELS if len(timed) or c not in board.LATENCY_COLUMNS]
st.dataframe(board.styled(table), hide_index=True, placeholder=lb.EMPTY, column_order=shown_columns, column_config={
    column: st.column_config.Column(label, help=board.HELP.get(column), width=board.WIDTHS.get(column),
                                    pinned=True if column == "model" else None)
    for column, label in board.LABELS.items()})
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

evals = {record.name: tables for record, tables, _ in items if tables is not None}
if submission is not None:
    evals[submission.label] = submission.tables()
per_patient = kept("per-patient", catalog, lambda: stats.patient_dice(evals))
NO_SEGMENTERS = "No evaluated segmenter yet: this appears once `lgg evaluate` has written eval/ tables."


def show_against_best() -> None:
    """Each model against the champion: the forest plot the page leads with."""
    if (best := lb.champion(items)) is None or per_patient["model"].nunique() < 2:
        st.info("Comparing with the best needs two evaluated segmenters, one of them trained under a protocol.")
        return
    st.subheader(f"Compared with the best: {best}")
    against = kept_table("against-best", (catalog, best), [per_patient, best],
                         lambda: lb.against_best(per_patient, best))
    st.vega_lite_chart(yours.forest_chart(
        yours.forest_rows(against, reference=best, flip=True), f"Each model − {best}: mean per-patient Dice (95% CI)",
        f"difference in mean per-patient Dice (left of 0: below {best})"), width="stretch", key="against-best")
    protocol = next(r.spec.training.protocol for r, _, _ in items if r.name == best)
    st.caption(f"{best} has the best validation score of the models trained under {protocol}, the protocol most rows "
               "share (chosen on validation patients, never on the test fold). Each other model against it on the held-out patients "
               f"both were scored on: paired bootstrap 95% CI over patients, two-sided Wilcoxon, Holm over these "
               f"{len(against)} tests (more power than all pairs). Blue: the model significantly better; vermillion: "
               f"{best} significantly better; grey: no significant difference.")


RUN_COLUMNS = {
    "Run": st.column_config.Column(pinned=True),
    "Mean per-patient Dice (95% CI)": st.column_config.Column(
        "Mean Dice (95% CI)", help="Per-patient volume Dice averaged over the patients, as predicted"),
    "Median (95% CI)": st.column_config.Column(help="Median per-patient Dice"),
    "Patients ≥ 0.85": st.column_config.Column("≥ 0.85", help="Share of patients whose Dice reaches 0.85"),
    "+ largest 3D component": st.column_config.Column(
        "+ 3D LCC", help="Mean per-patient Dice after keeping each volume's largest 3D component"),
    "+ flip TTA": st.column_config.Column("+ TTA", help="Mean per-patient Dice with horizontal-flip TTA"),
    "Training (CPU-min)": st.column_config.Column(
        "CPU-min", help="CPU-minutes of training, what each fold started from included; measured on shared cores"),
}


def show_crossval() -> None:
    """The catalog's cross-validation runs, pooled over their folds, and against each other."""
    runs, problem = crossval_runs()
    st.subheader("Cross-validation: every patient held out once")
    st.caption("The table above scores one test fold of 22 patients. A cross-validation run trains the same recipe "
               "once per patient-level fold and scores each fold's model on its own held-out patients, so all "
               "110 patients are scored exactly once (Buda et al.'s protocol: per-patient volume Dice averaged "
               "over patients, 95% bootstrap CI over patients).")
    if problem:
        st.warning(problem)
    if not runs and not problem:
        st.info("The catalog lists no cross-validation run: add `[[crossval]]` entries to models.toml.")
    reports = [cv_report(entry.name, str(entry.path), mtimes) for entry, mtimes in runs]
    runs_key = tuple((entry.name, str(entry.path), mtimes) for entry, mtimes in runs)
    for report in reports:
        if report.problem:
            st.warning(report.problem)
    if not (shown := crossval.runs_display(reports)).empty:
        # The commands go below the table: a column of them pushed the scores out of view at 1366 px.
        st.dataframe(shown.drop(columns="Reproduce"), hide_index=True, column_config=RUN_COLUMNS)
        st.caption("Each run pooled over its folds, best mean first: per-patient Dice as predicted, with the means "
                   "after the largest 3D component and with flip TTA beside it. A run still training pools the folds "
                   "evaluated so far.")
        with st.expander("Reproduce these runs"):
            st.code("\n".join(f"{command}  # {run}" for run, command in zip(shown["Run"], shown["Reproduce"])),
                    language="bash")
    pooled = [report for report in reports if report.pooled is not None]
    if pooled:
        st.plotly_chart(kept("folds", runs_key, lambda: charts.folds_figure({r.name: r.pooled for r in pooled})),
                        key="cv-folds")
    if len(done := crossval.complete(reports)) > 1:
        st.markdown("**The complete runs against each other**, on all the patients both hold out:")
        show_pairs(kept_table("run-pairs", runs_key, [r.pooled.assign(run=r.name) for r in done],
                              lambda: crossval.compare_runs(done)))
        st.caption("Per-patient Dice as predicted: paired bootstrap 95% CI over the shared patients, two-sided "
                   f"Wilcoxon, Holm over these {len(done) * (len(done) - 1) // 2} pairs at α = 0.05. A run still "
                   "training joins them once its last fold is evaluated, so that these p-values do not move with "
                   "every fold that lands.")


def show_figures() -> None:
    """One comparison figure at a time, picked above it."""
    rows_key = (catalog, show_variants, show_gated, tuple(sorted((n, m.measured_at) for n, m in measured.items())))
    figures = {"Per-patient Dice": lambda: charts.dice_distribution_figure(per_patient),
               "Dice vs HD95": lambda: charts.scatter_figure(table, "hd95", "patient_dice", "Per-patient Dice vs HD95"),
               "Quality vs parameters": lambda: charts.scatter_figure(table, "params", "patient_dice",
                                                                      "Quality vs parameters", log_x=True),
               "Quality vs latency": lambda: charts.scatter_figure(table, "latency_ms", "patient_dice",
                                                                   "Quality vs latency")}
    shown_figure = st.segmented_control("Figure", list(figures), default=list(figures)[0], key="leaderboard_figure",
                                        label_visibility="collapsed") or list(figures)[0]
    if shown_figure == "Quality vs latency" and not len(timed):
        st.info("Press **Measure latency** to plot quality against latency.")
    else:
        st.plotly_chart(kept(shown_figure, rows_key, figures[shown_figure]))


def show_institutions() -> None:
    """Each institution's held-out patients, for every row shown or one model."""
    st.subheader("Per institution")
    shown = per_entry[per_entry["model"].isin(table["model"])]
    everything = "all rows shown above"
    choice = st.selectbox("Results for", [everything, *table.loc[table["model"].isin(shown["model"]), "model"]])

    def institutions() -> tuple[pd.DataFrame, go.Figure]:
        breakdown = lb.institution_breakdown(shown if choice == everything else shown[shown["model"] == choice])
        return breakdown, charts.institution_figure(breakdown)

    breakdown, figure = kept("institutions", (catalog, show_variants, show_gated, choice), institutions)
    st.dataframe(board.institution_display(breakdown), hide_index=True, placeholder=lb.EMPTY)
    st.caption("Mean per-patient Dice of each institution's held-out patients, with a 95% bootstrap CI over those "
               "patients (none for a single patient). Few patients per institution make wide intervals.")
    st.plotly_chart(figure)


def show_two_models() -> None:
    """Paired tests of all pairs (the matrix on request), one pair in words and where its two models differ most."""
    st.subheader("Decide between two models")
    pairs = kept_table("pairs", catalog, [per_patient], lambda: stats.pairwise(per_patient))
    if pairs.empty:
        st.info("Pairwise tests need at least two evaluated segmenters.")
        return
    # A toggle rather than an expander: a collapsed expander still draws the matrix, which grows with the models.
    if st.toggle(f"All {len(pairs)} pairs: the full matrix and table", key="leaderboard_all_pairs"):
        st.plotly_chart(kept("matrix", catalog, lambda: charts.pairwise_figure(pairs)))
        st.caption("Each cell compares the row model with the column model on the held-out patients both were "
                   "evaluated on. Colour and first line: mean per-patient Dice of the row model minus the column "
                   "model's (blue: row higher, red: column higher). Second line: the row model is *better*, *worse*, "
                   "or *n.s.* (no significant difference) by a two-sided Wilcoxon signed-rank test, Holm–Bonferroni "
                   f"corrected over all pairs (m = {len(pairs)}) at α = 0.05; third line: the Holm-adjusted p. The "
                   "table gives each pair's 95% CI (paired bootstrap over patients, 10,000 resamples).")
        show_pairs(pairs)

    names = [f"{a} vs {b}" for a, b in zip(pairs["a"], pairs["b"])]
    pair = pairs.loc[names.index(pick_linked("Pair", names, PAIR_PARAM))]
    a, b = pair["a"], pair["b"]
    st.markdown(f"**{stats.named_verdict(pair)}** on {pair['n']} shared patients: mean Dice {a} − {b} = "
                f"{pair['mean_diff']:+.3f} (95% CI {pair['ci_low']:+.3f} to {pair['ci_high']:+.3f}), Wilcoxon p "
                f"{stats.format_p(pair['p'])}, Holm {stats.format_p(pair['p_holm'])}.")
    rows = kept("largest-differences", (catalog, a, b), lambda: stats.largest_differences(evals[a], evals[b]))
    held = set(data.patients) if data is not None else set()
    st.caption("Patients where the two differ most, each with the slice where their masks differ most.")
    if missing := len(set(rows["patient"]) - held):
        st.caption(f"{missing} of these patients are not in the data folder set in the sidebar, so Compare cannot "
                   "show them: point it at a full kaggle_3m copy.")
    for _, row in rows.iterrows():
        text, button = st.columns([4, 1])
        text.markdown(f"**{row['patient']}** · {a} {row['dice_a']:.3f} · {b} {row['dice_b']:.3f} · "
                      f"difference {row['diff']:+.3f}")
        if button.button(f"Compare slice {row['slice']}", key=f"pair-{a}-{b}-{row['patient']}",
                         disabled=row["patient"] not in held):
            open_slice("pages/compare.py", row["patient"], int(row["slice"]), [a, b])


# Only the open tab is drawn: each figure and table the browser draws adds to every visit and rerun.
SECTIONS = {"Against the best": show_against_best, "Cross-validation": show_crossval, "Figures": show_figures,
            "Per institution": show_institutions, "Two models": show_two_models}
section, tab = pick_section(list(SECTIONS), linked={PAIR_PARAM: "Two models"})
with tab:
    if per_patient.empty and section != "Cross-validation":
        st.info(NO_SEGMENTERS)
    else:
        SECTIONS[section]()
