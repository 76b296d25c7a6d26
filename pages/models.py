"""Models: the model cards, training curves, split and data hash of every catalog entry."""
from __future__ import annotations

import plotly.express as px
import streamlit as st

from lgg_core.serving.records import read_card, read_epochs, read_split
from lgg_core.app.state import records

st.title("Model cards")
recs, problem = records()
if problem:
    st.error(problem)
if not recs:
    st.info("The model catalog is empty.")
    st.stop()

record = {r.name: r for r in recs}[st.selectbox("Model", [r.name for r in recs])]
if not record.ok:
    st.warning(f"**{record.name}** is not available: {record.problem}")
    st.stop()

training = record.config.get("training", {})
split = read_split(record) or {}
c1, c2, c3, c4 = st.columns(4)
c1.metric("Architecture", record.config["arch"])
c2.metric("Parameters", f"{record.config.get('params', 0):,}")
c3.metric("Fold", f"{training.get('fold', '?')} of {training.get('k', '?')}")
c4.metric("Epochs (best)", f"{training.get('epochs_run', '?')} ({training.get('best_epoch', '?')})")
roles = split.get("roles", {})
st.markdown(
    f"**Task:** {record.task} · **input size:** {record.input_size or 256}² · "
    f"**split:** {', '.join(f'{len(v)} {k}' for k, v in roles.items()) or 'unknown'} patients "
    f"(seed {split.get('seed', '?')}) · **data hash:** `{str(training.get('dataset_hash', '?'))[:16]}…`")

epochs = read_epochs(record)
if epochs is None or epochs.empty:
    st.info("No training log (epochs.csv) in this artifact.")
else:
    curves = [c for c in ("train_loss", "train_dice", "train_accuracy", "val_score") if c in epochs]
    long = epochs.melt(id_vars="epoch", value_vars=curves, var_name="curve")
    st.plotly_chart(px.line(long, x="epoch", y="value", color="curve", markers=True, title="Training curves"))
    with st.expander("Held-out test patients"):
        st.write(", ".join(sorted(roles.get("test", []))) or "unknown")

card = read_card(record)
with st.expander("Model card (README.md)", expanded=True):
    st.markdown(card or "This artifact has no model card.")
