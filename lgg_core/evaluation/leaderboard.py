"""The leaderboard: one row per model, post-processing variant and classifier-gated pipeline from the eval tables,
the per-institution table and the markdown tables the README and ``lgg leaderboard`` print; per-patient tables and
pairwise tests: :mod:`lgg_core.evaluation.stats`; how the page shows the table: :mod:`lgg_core.app.board`; its
figures: :mod:`lgg_core.app.charts`.

No model runs here: the variants come from ``eval/`` tables written by ``lgg evaluate``, and a gated pipeline's
results follow exactly from its classifier's and segmenter's slice tables
(:func:`~lgg_core.evaluation.stats.gated_patients`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from lgg_core.data.inputs import INPUTS
from lgg_core.data.inputs import LABELS as INPUT_LABELS
from lgg_core.evaluation.external import compare
from lgg_core.evaluation.failures import gated_slices, raw_slices
from lgg_core.evaluation.metrics import bootstrap_ci
from lgg_core.evaluation.stats import gated_patients, mean_ci_by, variant_patients
from lgg_core.serving.catalog import rebuild_command
from lgg_core.serving.latency import Latency
from lgg_core.serving.records import EvalTables, ModelRecord, gated_name, gates

# Post-processing variants of ``lgg evaluate`` (see lgg_core.evaluation.evaluator.SEG_VARIANTS) as row names say them.
VARIANT_LABELS = {"lcc": "largest component", "tta": "flip TTA"}
MODEL, POST_PROCESSING, GATED = "model", "post-processing", "gated pipeline"
# Metrics that carry a 95% CI: their bounds are the columns <metric>_low and <metric>_high.
CI_METRICS = ("patient_dice", "tumor_slice_dice", "auroc")
COLUMNS = [
    "model", "base", "variant", "kind", "arch", "task", "params", "fold", "patients",
    "patient_dice", "patient_dice_low", "patient_dice_high", "tumor_slice_dice", "tumor_slice_dice_low",
    "tumor_slice_dice_high", "iou", "hd95", "assd", "accuracy", "auroc", "auroc_low", "auroc_high", "protocol",
    "train_cpu_min", "status",
]
_TEXT = ("model", "base", "variant", "kind", "arch", "task", "protocol", "status")
EARLIER = "earlier recipe"

EMPTY = "–"


def variant_name(model: str, variant: str) -> str:
    """Row name of a post-processing variant, e.g. "unet + largest component" ("unet" for ``raw``)."""
    return f"{model} + {VARIANT_LABELS[variant]}" if variant in VARIANT_LABELS else model


def _with_ci(metric: str, value: float | None, ci: list[float] | tuple[float, float] | None) -> dict:
    low, high = ci if ci else (None, None)
    return {metric: value, f"{metric}_low": low, f"{metric}_high": high}


def _segment_metrics(v: dict) -> dict:
    """Row fields of one variant of a segmenter's summary.json."""
    return {**_with_ci("patient_dice", v["patient_dice"], v.get("patient_dice_ci")),
            **_with_ci("tumor_slice_dice", v["tumor_slice_dice"], v.get("tumor_slice_dice_ci")),
            "iou": v["tumor_slice_iou"], "hd95": v["hd95"], "assd": v["assd"],
            "accuracy": v.get("presence_accuracy"), "patients": v.get("patients")}


def _base_row(record: ModelRecord) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(model=record.name, base=record.name, variant="raw", kind=MODEL)
    if record.ok:
        spec, cpu = record.spec, record.spec.training.cpu_time_s
        row.update(arch=spec.arch, task=spec.task, params=spec.params, fold=spec.training.fold,
                   protocol=spec.training.protocol or EARLIER, train_cpu_min=cpu / 60 if cpu else None)
        if spec.gated:  # a gated artifact written by `lgg assemble`
            row["kind"] = GATED
    return row


def leaderboard_row(record: ModelRecord, tables: EvalTables | None, problem: str | None) -> dict:
    """One leaderboard row; metrics are blank for a model that is missing or not evaluated (``status`` says why)."""
    row = _base_row(record)
    # A record without weights still has every number; the status says it cannot run here.
    row["status"] = problem or ("evaluated" if record.has_weights else "evaluated · weights not bundled")
    if tables is None:
        return row
    raw = tables.summary["variants"]["raw"]
    if record.task == "segment":
        row.update(_segment_metrics(raw))
    else:
        row.update(accuracy=raw["accuracy"], **_with_ci("auroc", raw["auroc"], raw.get("auroc_ci")),
                   patients=raw.get("patients"))
    return row


def variant_rows(record: ModelRecord, tables: EvalTables) -> list[dict]:
    """The rows of a segmenter's post-processing variants (largest component, flip TTA) that its summary holds."""
    rows = []
    for variant, summary in tables.summary["variants"].items():
        if variant in VARIANT_LABELS:
            row = _base_row(record)
            row.update(model=variant_name(record.name, variant), variant=variant, kind=POST_PROCESSING,
                       status="evaluated", **_segment_metrics(summary))
            rows.append(row)
    return rows


def _mean_ci(values: pd.Series, groups: pd.Series | None = None) -> tuple[float, tuple[float, float] | None]:
    """Mean and percentile bootstrap CI as ``lgg evaluate`` computes them (NaN and no CI without values)."""
    if values.empty:
        return np.nan, None
    return float(values.mean()), bootstrap_ci(values.to_numpy(float), None if groups is None else groups.to_numpy())


def gated_row(classifier: tuple[ModelRecord, EvalTables], segmenter: tuple[ModelRecord, EvalTables]) -> dict:
    """The row of the classifier-gated segmenter, computed exactly from the two models' slice tables.

    Its CIs are bootstraps over its per-patient values like ``lgg evaluate``'s (same resamples, same seed): with a
    classifier that keeps every slice, the row equals the segmenter's own. Scored on the patients both models were
    evaluated on; ``status`` says when those differ.
    """
    (c_record, c_tables), (s_record, s_tables) = classifier, segmenter
    per_patient = gated_patients(c_tables, s_tables)
    slices = gated_slices(c_tables.slices, raw_slices(s_tables.slices))
    tumor = slices[slices["true_tumor"].astype(bool)]
    folds = {r.spec.training.fold for r in (c_record, s_record)}
    tested = [set(t.summary.get("patients") or []) for t in (c_tables, s_tables)]
    status = "evaluated" if tested[0] == tested[1] else (
        f"{c_record.name} and {s_record.name} were tested on different patients: scored on the {len(per_patient)} "
        "both have")
    name = gated_name(c_record.name, s_record.name)
    row = dict.fromkeys(COLUMNS)
    row.update(
        model=name, base=name, variant="raw", kind=GATED, arch="gated", task="segment",
        params=(c_record.spec.params or 0) + (s_record.spec.params or 0),
        fold=folds.pop() if len(folds) == 1 else None, patients=len(per_patient),
        **_with_ci("patient_dice", *_mean_ci(per_patient["dice"])),
        **_with_ci("tumor_slice_dice", *_mean_ci(tumor["dice"], tumor["patient"])),
        iou=tumor["iou"].mean(), hd95=tumor["hd95"].mean(), assd=tumor["assd"].mean(),
        accuracy=(slices["pred_tumor"].astype(bool) == slices["true_tumor"].astype(bool)).mean(), status=status)
    return row


def _gated_pairs(items: list[tuple[ModelRecord, EvalTables | None, str | None]]
                 ) -> list[tuple[tuple[ModelRecord, EvalTables], tuple[ModelRecord, EvalTables]]]:
    """(classifier, segmenter) pairs that form a gated pipeline (:func:`~lgg_core.serving.records.gates`), both
    evaluated."""
    evaluated = [(r, t) for r, t, _ in items if t is not None]
    return [(c, s) for c in evaluated for s in evaluated if gates(c[0], s[0]) and s[1].patients is not None]


def all_rows(items: list[tuple[ModelRecord, EvalTables | None, str | None]], gated: bool = True) -> list[dict]:
    """Every leaderboard row of ``(record, eval tables or None, problem or None)`` triples: each model, each
    evaluated segmenter's post-processing variants, and (``gated``) each (evaluated classifier, segmenter) gated
    pipeline, which cost most of the time: a bootstrap per pair."""
    rows = []
    for record, tables, problem in items:
        rows.append(leaderboard_row(record, tables, problem))
        if tables is not None and record.task == "segment":
            rows += variant_rows(record, tables)
    if gated:
        rows += [gated_row(c, s) for c, s in _gated_pairs(items)]
    return rows


def champion(items: list[tuple[ModelRecord, EvalTables | None, str | None]]) -> str | None:
    """The evaluated segmenter with the best validation score (``training.best_val_score``), chosen among those that
    share the most common protocol, fold and validation-set size, so that their scores come from the same validation
    patients; the test patients play no part. None when no evaluated segmenter records one."""
    candidates = {}
    for record, tables, _ in items:
        training = record.spec.training if record.ok else None
        score = training.best_val_score if training else None
        if tables is not None and record.task == "segment" and isinstance(score, (int, float)):
            key = (training.protocol, training.fold, training.val_patients)
            candidates.setdefault(key, []).append((score, record.name))
    if not candidates:
        return None
    group = max(candidates.values(), key=len)
    return max(group)[1]


def against_best(per_patient: pd.DataFrame, best: str) -> pd.DataFrame:
    """Every other segmenter against the champion ``best`` on the patients both hold out, Holm over these k − 1 tests
    (more power than all pairs): :func:`~lgg_core.evaluation.external.compare` of :func:`~lgg_core.evaluation.stats.
    patient_dice`'s long table."""
    dice = {name: group[["patient", "dice"]] for name, group in per_patient.groupby("model", sort=False)}
    return compare(dice.pop(best), dice, name=best)


def leaderboard(rows: list[dict]) -> pd.DataFrame:
    """The table, segmenters by per-patient Dice then classifiers by AUROC, unevaluated models last.

    CIs of rows scored on a single patient are blanked.
    """
    table = pd.DataFrame(rows, columns=COLUMNS)
    numeric = [c for c in COLUMNS if c not in _TEXT]
    table[numeric] = table[numeric].apply(pd.to_numeric)
    # A single patient has no spread to resample: its "CI" would be the value twice.
    for metric in CI_METRICS:
        table.loc[table["patients"] < 2, [f"{metric}_low", f"{metric}_high"]] = np.nan
    table["_rank"] = table["patient_dice"].fillna(table["auroc"])
    table = table.sort_values(["task", "_rank"], ascending=[False, False], na_position="last", kind="stable")
    return table.drop(columns="_rank").reset_index(drop=True)


def select_rows(table: pd.DataFrame, variants: bool = True, gated: bool = True) -> pd.DataFrame:
    """The table without post-processing variants and/or without gated pipelines (models always stay)."""
    dropped = ({POST_PROCESSING} if not variants else set()) | ({GATED} if not gated else set())
    return table[~table["kind"].isin(dropped)].reset_index(drop=True)


def entry_patients(items: list[tuple[ModelRecord, EvalTables | None, str | None]], gated: bool = True
                   ) -> pd.DataFrame:
    """Long table (model, kind, patient, institution, dice) of per-patient volume Dice of every segmenter row:
    models, their post-processing variants and (``gated``) the gated pipelines (names as in :func:`all_rows`)."""
    columns = ["model", "kind", "patient", "institution", "dice"]
    parts = []
    for record, tables, _ in items:
        if tables is None or tables.patients is None:
            continue
        kind = GATED if record.spec.gated else MODEL
        for variant in tables.patients["variant"].unique():
            name, part_kind = (record.name, kind) if variant == "raw" else (variant_name(record.name, variant),
                                                                            POST_PROCESSING)
            parts.append(variant_patients(tables, variant).assign(model=name, kind=part_kind))
    for (c_record, c_tables), (s_record, s_tables) in _gated_pairs(items) if gated else []:
        parts.append(gated_patients(c_tables, s_tables).assign(model=gated_name(c_record.name, s_record.name),
                                                                kind=GATED))
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def institution_breakdown(per_patient: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per (model, institution): patients n, mean per-patient Dice and its bootstrap 95% CI over those patients.

    Sorted by institution, then best model first. The CI is NaN for an institution with one patient.
    """
    table = mean_ci_by(per_patient, ["model", "institution"], "dice", n_boot, seed).rename(columns={"mean": "dice"})
    return table.sort_values(["institution", "dice"], ascending=[True, False], kind="stable").reset_index(drop=True)


def with_latency(table: pd.DataFrame, latencies: Mapping[tuple[str, str], Latency]) -> pd.DataFrame:
    """The table with latency_ms, latency_min_ms, latency_max_ms and timed_on (the backend) from measurements keyed
    by (base, variant); blank where none."""
    found = [latencies.get((base, variant)) for base, variant in zip(table["base"], table["variant"], strict=True)]
    return table.assign(
        latency_ms=[m.ms if m else np.nan for m in found], latency_min_ms=[m.min_ms if m else np.nan for m in found],
        latency_max_ms=[m.max_ms if m else np.nan for m in found], timed_on=[m.backend if m else None for m in found])


def is_missing(value: object) -> bool:
    """None or NaN: a cell the tables show as :data:`EMPTY`."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def value_ci(value: float, low: float, high: float) -> str:
    """"0.780 (0.738–0.817)"; the value alone without a CI, "–" without a value."""
    if is_missing(value):
        return EMPTY
    return f"{value:.3f}" if is_missing(low) or is_missing(high) else f"{value:.3f} ({low:.3f}–{high:.3f})"


def params_text(count: float) -> str:
    """A parameter count as text: "4.4M", "310k"."""
    return f"{count / 1e6:.3g}M" if count >= 1e6 else f"{count / 1e3:.3g}k"


def _ci_text(value: float, ci: list[float]) -> str:
    return f"{value:.3f} ({ci[0]:.3f}–{ci[1]:.3f})"


def training_text(record: ModelRecord) -> str:
    """How a results row was trained: its protocol, input, options and cost (CPU time where recorded)."""
    t = record.spec.training
    if t.parts is not None:
        return f"assembled from {', '.join(f'`{p}`' for p in t.parts)}, no training of its own"
    parts = [f"{t.crop}² crops" if t.crop else f"whole slice at {t.input_size or 256}²"]
    if t.inputs != INPUTS[0]:
        parts.append(f"input {INPUT_LABELS.get(t.inputs, t.inputs)}")
    if t.modality_dropout:
        parts.append(f"modality dropout {t.modality_dropout}")
    if record.spec.standardize:
        parts.append("per-slice std.")
    if t.pos_weight is not None:
        parts.append(f"pos_weight {t.pos_weight}")
    if t.encoder_init:
        parts.append(f"encoder from `{Path(t.encoder_init).name}`")
    if t.init_from:
        parts.append(f"continued from `{Path(t.init_from).name}`")
    epochs = "?" if t.epochs_run is None else t.epochs_run
    cost = (f"{t.cpu_time_s / 60:.0f} CPU-min" if t.cpu_time_s
            else f"{t.wall_time_s / 60:.0f} min" if t.wall_time_s else "cost not recorded")
    return f"{t.protocol or EARLIER}: {', '.join(parts)}, {epochs} ep / {cost}"


def _reproduce(record: ModelRecord) -> str:
    parts = record.spec.training.parts
    if parts is not None:
        return f"`lgg assemble {record.spec.arch} artifacts/{record.name} " + " ".join(
            f"artifacts/{p}" for p in parts) + "`"
    return f"`{rebuild_command(record.path)}`"


def gated_patient_dice(classifier: EvalTables, segmenter: EvalTables) -> float:
    """Mean per-patient volume Dice of the classifier-gated segmenter, exactly, from the two slice tables."""
    return float(gated_patients(classifier, segmenter)["dice"].mean())


def headline_markdown(evaluated: list[tuple[ModelRecord, EvalTables]], top: int) -> str:
    """The ``top`` segmenters by per-patient Dice in a narrow table (the README's headline)."""
    table = leaderboard([leaderboard_row(r, t, None) for r, t in evaluated])
    table = table[(table["task"] == "segment") & table["patient_dice"].notna()].head(top)
    lines = ["| segmenter | per-patient Dice (95% CI) | HD95 px | parameters | training |", "|---|---|---:|---:|---:|"]
    lines += [f"| `{r.model}` | {value_ci(r.patient_dice, r.patient_dice_low, r.patient_dice_high)} | {r.hd95:.1f} | "
              f"{params_text(r.params)} | {EMPTY if is_missing(r.train_cpu_min) else f'{r.train_cpu_min:.0f} CPU-min'} |"
              for r in table.itertuples()]
    return "\n".join(lines)


def markdown_tables(evaluated: list[tuple[ModelRecord, EvalTables]]) -> str:
    """Results tables (docs/zoo.md) of evaluated models: segmenters by per-patient Dice, then classifiers by AUROC.

    Segmenter rows also give the per-patient Dice of the pipeline gated by the best classifier. Each row names the
    command that reproduces it (``train/zoo.sh <name>`` trains with ``train/configs/<name>.toml`` on fold 0 and
    evaluates on the held-out patients).
    """
    seg = sorted((p for p in evaluated if p[0].task == "segment"),
                 key=lambda p: -p[1].summary["variants"]["raw"]["patient_dice"])
    cls = sorted((p for p in evaluated if p[0].task == "classify"),
                 key=lambda p: -p[1].summary["variants"]["raw"]["auroc"])
    gate = cls[0] if cls else None
    gate_header = f" gated by {gate[0].name} |" if gate else ""
    lines = ["| segmenter | params | training (CPU) | per-patient Dice (95% CI) | + largest component | "
             f"tumor-slice Dice (95% CI) | HD95 px | slice presence acc. |{gate_header} reproduce |",
             "|---|---:|---|---|---|---|---:|---:|" + ("---:|" if gate else "") + "---|"]
    for record, tables in seg:
        v = tables.summary["variants"]
        raw, lcc = v["raw"], v["lcc"]
        # The app assembles no pipeline whose classifier takes other inputs than the segmenter: neither does this.
        gated = "" if not gate else (f" {gated_patient_dice(gate[1], tables):.3f} |" if gates(gate[0], record)
                                     else f" {EMPTY} |")
        lines.append(
            f"| `{record.name}` | {params_text(record.spec.params)} | {training_text(record)} "
            f"| {_ci_text(raw['patient_dice'], raw['patient_dice_ci'])} "
            f"| {_ci_text(lcc['patient_dice'], lcc['patient_dice_ci'])} "
            f"| {_ci_text(raw['tumor_slice_dice'], raw['tumor_slice_dice_ci'])} | {raw['hd95']:.1f} "
            f"| {raw['presence_accuracy']:.3f} |{gated} {_reproduce(record)} |")
    if cls:
        lines += ["", "| classifier | params | training (CPU) | accuracy (95% CI) | AUROC (95% CI) | F1 | reproduce |",
                  "|---|---:|---|---|---|---:|---|"]
        for record, tables in cls:
            raw = tables.summary["variants"]["raw"]
            lines.append(
                f"| `{record.name}` | {params_text(record.spec.params)} | {training_text(record)} "
                f"| {_ci_text(raw['accuracy'], raw['accuracy_ci'])} | {_ci_text(raw['auroc'], raw['auroc_ci'])} "
                f"| {raw['f1']:.3f} | {_reproduce(record)} |")
    return "\n".join(lines)



def variants_markdown(table: pd.DataFrame) -> str:
    """A markdown table of the post-processing variants and gated pipelines of :func:`leaderboard`, best first."""
    rows = table[(table["task"] == "segment") & (table["kind"] != MODEL) & table["patient_dice"].notna()]
    if rows.empty:
        return ""
    lines = ["Post-processing variants and classifier-gated pipelines on the same held-out patients (95% CIs: "
             "bootstrap over patients):", "",
             "| model | kind | patients | per-patient Dice (95% CI) | tumor-slice Dice (95% CI) | HD95 px "
             "| slice presence acc. |", "|---|---|---:|---|---|---:|---:|"]
    for r in rows.itertuples(index=False):
        lines.append(
            f"| `{r.model}` | {r.kind} | {r.patients:.0f} "
            f"| {value_ci(r.patient_dice, r.patient_dice_low, r.patient_dice_high)} "
            f"| {value_ci(r.tumor_slice_dice, r.tumor_slice_dice_low, r.tumor_slice_dice_high)} "
            f"| {r.hd95:.1f} | {r.accuracy:.3f} |")
    return "\n".join(lines)
