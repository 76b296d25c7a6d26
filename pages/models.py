"""Models: the model cards, training curves, calibration, split and data hash of every catalog entry."""
from __future__ import annotations

import streamlit as st

from lgg_core.app.figures import training_curves, validation_metric
from lgg_core.app.state import CARD_PARAM, eval_tables, pick_linked, records
from lgg_core.app.charts import reliability_figure
from lgg_core.evaluation.leaderboard import training_text
from lgg_core.evaluation.calibration import LEVEL_NAMES, calibration_caption, calibration_metrics
from lgg_core.serving.records import REPO_ROOT, read_card, read_epochs, read_split, weights_problem

st.title("Model cards")
recs, problem = records()
if problem:
    st.error(problem)
if not recs:
    st.info("The model catalog is empty.")
    st.stop()



def known(value: object) -> str:
    """The recorded value as text, "?" where the record does not say."""
    return "?" if value is None else str(value)


record = {r.name: r for r in recs}[pick_linked("Model", [r.name for r in recs], CARD_PARAM)]
if not record.ok:
    st.warning(f"**{record.name}** is not available: {record.problem}")
    st.stop()

if problem := weights_problem(record):
    st.info(problem + " Its evaluation record (card, curves, tables, stored test masks) is shown everywhere; "
            "Explain and Upload need the weights.")
training = record.spec.training
split = read_split(record) or {}
c1, c2, c3, c4 = st.columns(4)
c1.metric("Architecture", record.spec.arch)
c2.metric("Parameters", f"{record.spec.params or 0:,}")
c3.metric("Fold", f"{known(training.fold)} of {known(training.k)}")
if training.parts is not None:  # assembled by `lgg assemble` from trained artifacts: it has no training of its own
    c4.metric("Made of", ", ".join(training.parts))
else:
    c4.metric("Epochs (best)", f"{known(training.epochs_run)} ({known(training.best_epoch)})")
roles = split.get("roles", {})
st.markdown(
    f"**Task:** {record.task} · **input size:** {record.input_size or 256}² · "
    f"**split:** {', '.join(f'{len(v)} {k}' for k, v in roles.items()) or 'unknown'} patients "
    f"(seed {split.get('seed', '?')}) · **data hash:** `{known(training.dataset_hash)[:16]}…`  \n"
    f"**Training:** {training_text(record)}")

epochs = read_epochs(record)
if epochs is None or epochs.empty:
    st.info("No training log (epochs.csv) in this artifact.")
else:
    st.plotly_chart(training_curves(epochs))
    st.caption(f"Early stopping and the kept epoch follow the {validation_metric(epochs)}.")
    with st.expander("Held-out test patients"):
        st.write(", ".join(sorted(roles.get("test", []))) or "unknown")

st.subheader("Calibration on the held-out slices")
tables, why_not = eval_tables(record)
if tables is None:
    st.info(why_not)
elif tables.calibration is None:
    st.info(f"This evaluation predates calibration: run `lgg evaluate {record.path}` to compute it.")
else:
    levels = tables.calibration["levels"]
    for column, (name, level) in zip(st.columns(len(levels)), levels.items()):
        column.plotly_chart(reliability_figure(level, LEVEL_NAMES.get(name, name)))
    scores = calibration_metrics(tables.calibration)
    for column, (label, value, details) in zip(st.columns(len(scores)), scores):
        column.metric(label, value, help=details)
    st.caption(calibration_caption(tables.calibration))

card = read_card(record)
if card:
    # The card's usage snippet names a placeholder repo: show the folder this app loads the model from instead.
    folder = record.path.relative_to(REPO_ROOT) if record.path.is_relative_to(REPO_ROOT) else record.path
    card = card.replace('load_predictor(pull("OWNER/REPO"))', f'load_predictor("{folder}")')
with st.expander("Model card (README.md)", expanded=True):
    st.markdown(card or "This artifact has no model card.")
