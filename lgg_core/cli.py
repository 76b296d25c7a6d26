"""The ``lgg`` command line: ``lgg download``, ``lgg check``, ``lgg folds``, ``lgg models``, ``lgg evaluate``,
``lgg assemble``, ``lgg quantize-weights``, ``lgg leaderboard``, ``lgg crossval``, ``lgg recipes``,
``lgg postprocess``, ``lgg score-predictions``, ``lgg zoo-reference``, ``lgg push``, ``lgg pull``,
``lgg export-onnx``.

Training has its own entry point, ``python -m train`` (see ``train/__main__.py``).

Each subcommand is a ``cmd_<name>(args) -> int`` registered in :func:`build_parser`; add new ones there.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lgg_core.data.cache import LGGData, load_dataset
from lgg_core.data.reader import DATA_DIR_ENV, DatasetError, read_metadata
from lgg_core.data.download import download_dataset
from lgg_core.data.splits import fold_summary, make_folds, save_split


def _at_least_two(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2, got {value}")
    return value


def _data_options() -> argparse.ArgumentParser:
    """Options shared by every subcommand that reads the dataset."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--data-dir", help=f"kaggle_3m folder or a parent of it (default: ${DATA_DIR_ENV})")
    parent.add_argument("--cache-dir", help="decoded-array cache (default: $LGG_CACHE_DIR or ~/.cache/lgg_core)")
    parent.add_argument("--no-cache", action="store_true", help="decode every file, ignore and skip the cache")
    return parent


def _load(args: argparse.Namespace) -> LGGData:
    return load_dataset(args.data_dir, cache_dir=args.cache_dir, use_cache=not args.no_cache, progress=True)


def cmd_download(args: argparse.Namespace) -> int:
    """Download the dataset from Kaggle and print where its kaggle_3m folder is."""
    root = download_dataset(args.dest)
    print(root)
    print(f"use it with --data-dir {root} or export {DATA_DIR_ENV}={root}", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate every slice and print a summary of the dataset."""
    data = _load(args)
    index = data.index
    institutions = index.groupby("institution")["patient"].nunique()
    metadata = read_metadata(data.root)
    metadata_text = "no data.csv" if metadata is None else f"data.csv, {len(metadata)} rows"
    print(f"root:          {data.root}")
    print(f"patients:      {index['patient'].nunique()}")
    print(f"slices:        {len(index)}")
    print(f"tumor slices:  {int(index['has_tumor'].sum())}")
    print(f"institutions:  {len(institutions)} ({', '.join(f'{k}: {v}' for k, v in institutions.items())})")
    print(f"metadata:      {metadata_text}")
    print(f"dataset hash:  {data.dataset_hash}")
    return 0


def cmd_folds(args: argparse.Namespace) -> int:
    """Write a patient-level K-fold split file and print the balance of its folds."""
    data = _load(args)
    folds = make_folds(data.index, k=args.k, seed=args.seed)
    save_split(args.out, folds, k=args.k, seed=args.seed, dataset_hash=data.dataset_hash)
    print(fold_summary(data.index, folds).to_string(float_format="%.3f"))
    print(f"wrote {args.out}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Print the model registry: name, task, parameters, description."""
    from lgg_core.models import list_models, model_info

    for name in list_models(args.task):
        info = model_info(name)
        print(f"{name:22} {info['task']:9} {info['params'] / 1e6:7.2f}M  {info['description']}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate artifacts on their held-out patients and store eval/ tables in each folder; score ONNX segmenters
    given by reference on the split's patients, against the zoo."""
    from lgg_core.evaluation.evaluator import evaluate
    from lgg_core.evaluation.tables import metrics_markdown
    from lgg_core.serving.device import retain_freed_memory

    retain_freed_memory()
    graphs = [Path(p) for p in args.artifacts if p.lower().endswith(".onnx")]
    # A stranger's graph is checked before the dataset is loaded: a refused file costs nothing.
    predictors = {path: _foreign_segmenter(path) for path in graphs}
    data = _load(args)
    for path in args.artifacts:
        if path.lower().endswith(".onnx"):
            _score_onnx(Path(path), predictors[Path(path)], data, args)
            continue
        summary = evaluate(path, data, batch_size=args.batch_size)
        print(f"{path}\n{metrics_markdown(summary)}\n")
    return 0


def _foreign_segmenter(path: Path):
    from lgg_core.serving.onnx_backend import ForeignOnnxSegmenter

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return ForeignOnnxSegmenter(path)


def _score_onnx(path: Path, predictor, data: LGGData, args: argparse.Namespace) -> None:
    """Predict the split's patients with an ONNX segmenter and print what score-predictions prints for masks."""
    from lgg_core.evaluation import external
    from lgg_core.evaluation.reference import load_reference

    reference = load_reference()
    patients = external.split_patients(args.split, data, reference)
    print(f"{path.name}: predicting {len(patients)} patients ({args.split})…", file=sys.stderr)
    predictions = external.predict_split(predictor, data, patients, args.batch_size)
    _report_scored(path.stem, args.split, external.score(predictions, data, patients), reference, predictions.notes)


def _report_scored(name: str, split: str, scored, reference, notes: list[str]) -> None:
    """Print the per-patient table, the scores and the many-to-one tests against the zoo."""
    from lgg_core.evaluation import external
    from lgg_core.evaluation.reference import others

    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{name} on {len(scored.summary['patients'])} patients ({split})\n")
    print(external.patients_markdown(scored) + "\n")
    print(external.scores_markdown(scored))
    if zoo := others(reference, split):
        what = "cross-validation run" if split == "cv" else "zoo model"
        print(f"\nAgainst each {what} on the same patients (paired bootstrap 95% CI, Wilcoxon, Holm over "
              f"{len(zoo)} tests):\n")
        print(external.compare_markdown(external.compare(scored.dice(), zoo)))


def cmd_assemble(args: argparse.Namespace) -> int:
    """Write an ensemble or gated artifact that names its trained parts (no weights copied)."""
    from lgg_core.models import ArtifactError
    from lgg_core.serving.artifacts import write_reference

    extra = {"threshold": args.threshold} if args.threshold is not None else {}
    try:
        out = write_reference(args.out, args.arch, args.parts, overwrite=args.overwrite, **extra)
    except (ValueError, ArtifactError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}; evaluate it with `lgg evaluate {out}`")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """Upload an artifact folder to a Hub model repo (created if needed) and print the commit."""
    from lgg_core.serving.hub import push

    result = push(args.artifact, args.repo_id, revision=args.revision, private=args.private,
                  include_onnx=args.with_onnx, commit_message=args.message)
    print(f"pushed {args.artifact} to {result.repo_id} at {result.revision}")
    print(result.commit_url)
    print(f'catalog entry: repo_id = "{result.repo_id}"  revision = "{result.revision}"', file=sys.stderr)
    return 0


def _catalog_entries(catalog: str | None, hub: bool) -> list:
    from lgg_core.serving.catalog import load_catalog

    return [entry for entry in load_catalog(catalog) if (entry.repo_id is not None) == hub]


def cmd_pull(args: argparse.Namespace) -> int:
    """Download Hub model repos at a revision into the HF cache and print each local folder."""
    from lgg_core.serving.hub import pull

    targets = [(repo_id, args.revision) for repo_id in args.repo_ids]
    if args.catalog is not None:
        targets += [(e.repo_id, e.revision) for e in _catalog_entries(args.catalog or None, hub=True)]
    if not targets:
        raise ValueError("nothing to pull: give repo ids or --catalog with Hub entries")
    for repo_id, revision in targets:
        print(pull(repo_id, revision, cache_dir=args.cache_dir, local_files_only=args.offline))
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    """Export artifacts to model.onnx beside their weights, checking parity with PyTorch, then measure their CPU
    serving paths on this host and record the fastest that keeps the held-out quality (serving.json)."""
    from lgg_core.evaluation.serving_choice import choose_serving_path, record_table
    from lgg_core.serving.cpu_paths import INT8_FILE, SERVING_FILE
    from lgg_core.serving.onnx_backend import export_artifact

    folders = list(args.artifacts)
    if args.catalog is not None:
        folders += [e.path for e in _catalog_entries(args.catalog or None, hub=False)]
    if not folders:
        raise ValueError("nothing to export: give artifact folders or --catalog with local entries")
    # Without data only the fp32 paths can be chosen: bf16 and int8 must prove their held-out Dice first.
    data = _load(args) if args.data_dir or os.environ.get(DATA_DIR_ENV) else None
    for folder in folders:
        print(f"wrote {export_artifact(folder)}")
        if args.no_measure:
            continue
        record = choose_serving_path(folder, data)
        if record["path"] == "onnxruntime-int8":
            print(f"wrote {Path(folder) / INT8_FILE}")
        print(f"wrote {Path(folder) / SERVING_FILE}")
        chosen = record["candidates"][record["path"]]
        print(f"{folder}: serving through {record['path']}, {chosen['ms']:.1f} ms/slice at batch 1 "
              f"({chosen['ratio']:.2f}x PyTorch fp32, {record['threads']} thread(s))\n{record_table(record)}",
              file=sys.stderr)
    return 0


def cmd_quantize_weights(args: argparse.Namespace) -> int:
    """Store artifacts' weights as int8 per channel where their held-out scores stay within the tolerance; returns 1
    when any keeps its original weights."""
    from lgg_core.evaluation.quantize import quantize_artifact
    from lgg_core.models.hub_model import INT8_PER_CHANNEL, stored_quantization
    from lgg_core.serving.device import retain_freed_memory

    if args.out and len(args.artifacts) > 1:
        raise ValueError("--out takes one artifact")
    retain_freed_memory()
    data = _load(args)
    status = 0
    for path in args.artifacts:
        weights = Path(path) / "model.safetensors"
        if weights.is_file() and stored_quantization(weights) == INT8_PER_CHANNEL:
            print(f"{path}: already {INT8_PER_CHANNEL}, nothing to do")
            continue
        result = quantize_artifact(path, data, tolerance=args.tolerance, out=args.out, batch_size=args.batch_size)
        scores = ", ".join(f"{name} {old:.4f} -> {new:.4f} ({new - old:+.4f})"
                           for name, (old, new) in result.scores.items())
        if result.accepted:
            print(f"{result.path}: int8 per channel kept, {result.bytes[0]:,} -> {result.bytes[1]:,} bytes; "
                  f"held-out {scores}, within {result.tolerance}; eval/ and the card describe the int8 weights")
        else:
            status = 1
            print(f"{path}: original weights kept (unchanged): held-out {scores} moves by more than "
                  f"{result.tolerance}")
        if result.dropped:
            print(f"  {', '.join(result.dropped)} (made from the old weights) left out: run `lgg export-onnx "
                  f"{result.path}` again", file=sys.stderr)
        if result.referrers:
            print(f"  {', '.join(result.referrers)} use this model: evaluate them again (`lgg evaluate`)",
                  file=sys.stderr)
    return status


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Print markdown tables of every evaluated catalog model (the results tables of docs/zoo.md), of the post-processing
    variants and gated pipelines with their CIs, of the catalog's cross-validation runs, and with ``--pairs`` the
    pairwise tests of every two segmenters."""
    from lgg_core.evaluation import crossval
    from lgg_core.serving.catalog import load_crossval
    from lgg_core.serving.records import read_eval, resolve_models
    from lgg_core.evaluation.external import compare_markdown
    from lgg_core.evaluation.leaderboard import (against_best, all_rows, champion, headline_markdown, leaderboard,
                                                 markdown_tables, variants_markdown)
    from lgg_core.evaluation.stats import pairs_markdown, patient_dice

    records, problem = resolve_models(args.catalog)
    if problem:
        raise ValueError(problem)
    evaluated = []
    for record in records:
        tables, why = read_eval(record)
        if tables is None:
            print(f"skipped {record.name}: {why}", file=sys.stderr)
        else:
            evaluated.append((record, tables))
    if args.top:
        print(headline_markdown(evaluated, args.top))
        return 0
    print(markdown_tables(evaluated))
    if variants := variants_markdown(leaderboard(all_rows([(record, tables, None) for record, tables in evaluated]))):
        print("\n" + variants)
    runs = []
    for entry in load_crossval(args.catalog):
        report = crossval.run_report(entry.name, entry.path)
        if report.problem:
            print(f"skipped {report.problem}", file=sys.stderr)
        else:
            runs.append(report)
    if runs:
        print("\nCross-validation runs, each patient held out once (per-patient Dice as predicted, 95% bootstrap CIs "
              "over patients; the variants' means beside):\n")
        print(crossval.markdown(crossval.runs_display(runs)))
    if args.pairs:
        segmenters = {record.name: tables for record, tables in evaluated if record.task == "segment"}
        best = champion([(record, tables, None) for record, tables in evaluated])
        if best is not None and len(segmenters) > 1:
            print(f"\nEach segmenter against the champion, {best} (the best validation score under the protocol "
                  "most rows share), on the held-out patients both hold out: paired bootstrap 95% CI, two-sided "
                  f"Wilcoxon, Holm over these {len(segmenters) - 1} tests (the Leaderboard's first view):\n")
            print(compare_markdown(against_best(patient_dice(segmenters), best), ours=best))
        print("\n" + pairs_markdown({record.name: tables for record, tables in evaluated}))
        if len(runs) > 1:
            print("\n" + crossval.runs_markdown(runs))
    return 0


def cmd_crossval(args: argparse.Namespace) -> int:
    """Print the pooled per-patient Dice of one model's evaluated fold artifacts (each patient held out once)."""
    from lgg_core.evaluation import crossval

    folds = crossval.fold_dirs(args.artifacts)
    pooled = crossval.fold_patients(folds)
    expected = crossval.expected_folds(folds)
    if len(folds) < expected:
        print(f"warning: {len(folds)} of {expected} folds: the pooled patients are not the whole dataset",
              file=sys.stderr)
    print(crossval.summary_markdown(crossval.summary(pooled)))
    other = crossval.fold_patients(crossval.fold_dirs(args.against)) if args.against else None
    if other is not None:
        print(f"\nPaired by patient against {' '.join(args.against)}:\n")
        print(crossval.paired_markdown(crossval.paired_against(pooled, other)))
    if args.data_dir or os.environ.get(DATA_DIR_ENV):
        _print_missing_sequences(pooled, other, _load(args))
    else:
        print(f"\n(the patients lacking a contrast sequence are scored apart when the dataset is given: --data-dir or "
              f"${DATA_DIR_ENV})", file=sys.stderr)
    if args.out:
        pooled.to_csv(args.out, index=False)
    return 0


def _print_missing_sequences(pooled, other, data: LGGData) -> None:
    """The pooled patients whose contrast sequences the dataset replaced by FLAIR, scored apart (and paired)."""
    from lgg_core.data.inputs import missing_sequences
    from lgg_core.evaluation import crossval

    apart = missing_sequences(data.images, data.index)
    mine = pooled[pooled["patient"].isin(list(apart))]
    if mine.empty:
        print("\nNone of the pooled patients lacks a contrast sequence.")
        return
    print(f"\nThe {mine['patient'].nunique()} pooled patients lacking a contrast sequence (FLAIR repeated in its "
          "place), apart:\n")
    print(crossval.summary_markdown(crossval.summary(mine)))
    if other is not None:
        print()
        print(crossval.paired_markdown(crossval.paired_against(mine, other)))


def cmd_score_predictions(args: argparse.Namespace) -> int:
    """Score a researcher's predicted masks under the protocol and test them against every zoo model."""
    from lgg_core.data.external import read_predictions
    from lgg_core.evaluation import external
    from lgg_core.evaluation.reference import build_reference, load_reference

    predictions = read_predictions(args.predictions)  # before the dataset: a bad archive fails at once
    table = build_reference(args.catalog) if args.catalog else load_reference()
    data = _load(args)
    patients = external.split_patients(args.split, data, table)
    scored = external.score(predictions, data, patients)
    name = args.name or Path(args.predictions).stem
    _report_scored(name, args.split, scored, table, predictions.notes)
    if args.out:
        scored.dice()[["patient", "dice"]].to_csv(args.out, index=False)
    if args.save:
        external.write_record(args.save, scored, name, args.split, str(args.predictions), predictions.notes)
        print(f"\nrecord written to {args.save}", file=sys.stderr)
    return 0


def cmd_zoo_reference(args: argparse.Namespace) -> int:
    """Write the zoo's per-patient Dice table that score-predictions compares with (bundled with the package)."""
    from lgg_core.evaluation.reference import REFERENCE_FILE, build_reference

    table = build_reference(args.catalog)
    out = Path(args.out or REFERENCE_FILE)
    table.to_csv(out, index=False)
    print(f"wrote {out}: {table['name'].nunique()} models and runs, {len(table)} rows")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    """Print the recipe search's table: each run's validation Dice, its cost and its paired gain over the baseline."""
    from lgg_core.data.inputs import missing_sequences
    from lgg_core.evaluation.recipes import curve_markdown, find_runs, recipe_curve, recipe_markdown, recipe_table

    runs = find_runs(args.runs)
    if args.curve:
        print(curve_markdown(recipe_curve(runs)))
        return 0
    apart: list[str] = []
    if args.data_dir or os.environ.get(DATA_DIR_ENV):
        data = _load(args)
        apart = sorted(missing_sequences(data.images, data.index))
    print(recipe_markdown(recipe_table(runs, apart)))
    if not apart:
        print(f"\n(patients lacking a sequence are marked when the dataset is given: --data-dir or ${DATA_DIR_ENV})",
              file=sys.stderr)
    return 0


def cmd_postprocess(args: argparse.Namespace) -> int:
    """Print each run's validation Dice under every post-processing option (and, for 2.5D runs, on lone slices)."""
    from lgg_core.evaluation.postprocessing import variant_dice, variant_markdown, variant_table

    data = _load(args)
    dice = {Path(run).name: variant_dice(run, data, args.batch_size) for run in args.runs}
    print(variant_markdown(variant_table(dice)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``lgg`` parser; each subparser sets ``func`` to its ``cmd_*`` handler."""
    parser = argparse.ArgumentParser(
        prog="lgg", description="Compare and explain brain-MRI tumor segmentation models on the LGG dataset."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_options = _data_options()

    download = commands.add_parser("download", help="download the dataset from Kaggle (kagglehub)")
    download.add_argument("--dest", help="also copy kaggle_3m/ into this folder")
    download.set_defaults(func=cmd_download)

    check = commands.add_parser("check", parents=[data_options], help="validate the dataset and print a summary")
    check.set_defaults(func=cmd_check)

    folds = commands.add_parser("folds", parents=[data_options], help="write a patient-level K-fold split file")
    folds.add_argument("--k", type=_at_least_two, default=5, help="number of folds (default: 5)")
    folds.add_argument("--seed", type=int, default=0, help="split seed (default: 0)")
    folds.add_argument("--out", required=True, help="split file to write (JSON)")
    folds.set_defaults(func=cmd_folds)

    models = commands.add_parser("models", help="list the model registry")
    models.add_argument("--task", choices=["segment", "classify"], help="only this task")
    models.set_defaults(func=cmd_models)

    evaluate = commands.add_parser(
        "evaluate", parents=[data_options], help="evaluate artifacts on their held-out patients (writes eval/)"
    )
    evaluate.add_argument("artifacts", nargs="+",
                          help="artifact folders, or ONNX segmenters (N x 3 x H x W normalized input, logits out; "
                               "self-contained, standard operators only) scored against the zoo like predictions")
    evaluate.add_argument("--batch-size", type=int, default=16)
    evaluate.add_argument("--split", choices=["fold0", "cv"], default="fold0",
                          help="for ONNX segmenters: the zoo's 22 held-out patients (default), or every patient")
    evaluate.set_defaults(func=cmd_evaluate)

    assemble = commands.add_parser(
        "assemble", help="write an ensemble or gated artifact made of trained artifacts beside it (no weight copies)"
    )
    assemble.add_argument("arch", choices=["ensemble", "gated"])
    assemble.add_argument("out", help="the new artifact folder, beside its parts")
    assemble.add_argument("parts", nargs="+", help="ensemble: classifier folders; gated: classifier then segmenter")
    assemble.add_argument("--threshold", type=float, help="gated: classifier probability that keeps a mask (0.5)")
    assemble.add_argument("--overwrite", action="store_true", help="replace an evaluated artifact")
    assemble.set_defaults(func=cmd_assemble)

    quantize = commands.add_parser(
        "quantize-weights", parents=[data_options],
        help="store artifacts' weights as int8 per channel if their held-out scores do not move",
        description="Evaluates each artifact on its test patients with its weights and with int8 per-channel "
                    "weights (about half a float16 file) and keeps the int8 ones, with their eval/ tables and "
                    "card, only when mean per-patient Dice (segmenters) or slice accuracy and AUROC "
                    "(classifiers) stay within the tolerance; otherwise the artifact is left as it was (exit "
                    "status 1). Both scores go to config.json (training.weights_quantization).")
    quantize.add_argument("artifacts", nargs="+", help="artifact folders with their own weights")
    quantize.add_argument("--tolerance", type=float, default=0.005,
                          help="largest allowed change of each score (default: 0.005)")
    quantize.add_argument("--out", help="write the int8 artifact to this new folder instead (one artifact)")
    quantize.add_argument("--batch-size", type=int, default=16)
    quantize.set_defaults(func=cmd_quantize_weights)

    board = commands.add_parser("leaderboard", help="markdown tables of the evaluated catalog models")
    board.add_argument("--catalog", help="catalog file (default: $LGG_CATALOG or models.toml)")
    board.add_argument("--pairs", action="store_true",
                       help="also test every two segmenters on their shared patients (Dice and HD95: paired "
                            "bootstrap CI, Wilcoxon signed-rank, Holm)")
    board.add_argument("--top", type=int, metavar="N", help="only the N best segmenters, in a narrow table")
    board.set_defaults(func=cmd_leaderboard)

    crossval = commands.add_parser(
        "crossval", parents=[data_options],
        help="pool one model's evaluated fold artifacts: per-patient Dice over every held-out patient",
        description="Reads each fold artifact's eval/patients.csv (lgg evaluate on that fold's test patients), "
                    "refuses folds of different models or recipes and patients held out twice, and prints the mean "
                    "and median per-patient Dice with 95%% bootstrap CIs over patients, per variant (as predicted, "
                    "largest 3D component, flip TTA); with the dataset (--data-dir), the patients lacking a contrast sequence "
                    "apart.")
    crossval.add_argument("artifacts", nargs="+",
                          help="one artifact folder per fold, or a run folder holding fold-* (train/cv.sh's)")
    crossval.add_argument("--out", help="also write the pooled per-patient table (CSV)")
    crossval.add_argument("--against", nargs="+", metavar="ARTIFACT",
                          help="another run's fold artifacts (or run folder): the per-patient difference on the "
                               "patients both hold out, with a paired bootstrap CI and the Wilcoxon p")
    crossval.set_defaults(func=cmd_crossval)

    score = commands.add_parser(
        "score-predictions", parents=[data_options],
        help="score predicted masks made elsewhere under the protocol, against every zoo model",
        description="PREDICTIONS is a folder or .zip of masks named like the dataset's "
                    "(TCGA_CS_4941_19960909_12_mask.png or .tif), or one .npz of per-patient (slices, 256, 256) "
                    "volumes keyed by patient id. Binary masks or probabilities in [0, 1] (thresholded at 0.5). "
                    "Scored by the same code as `lgg evaluate` on exactly the split's patients, then compared with "
                    "each zoo model (fold0) or cross-validation run (cv) on the same patients, from the zoo's "
                    "per-patient table bundled with the package (or --catalog).")
    score.add_argument("predictions", help="folder, .zip or .npz of predicted masks")
    score.add_argument("--split", choices=["fold0", "cv"], required=True,
                       help="fold0: the zoo's 22 held-out patients; cv: all 110, each once")
    score.add_argument("--name", help="name shown in the tables (default: the file or folder name)")
    score.add_argument("--out", help="write the per-patient Dice as CSV (columns patient,dice)")
    score.add_argument("--save", metavar="DIR", help="write an eval/ record (tables, summary, masks) to DIR")
    score.add_argument("--catalog", help="compare with this catalog's evaluated models and CV runs instead of the "
                                         "zoo's bundled per-patient table")
    score.set_defaults(func=cmd_score_predictions)

    reference = commands.add_parser(
        "zoo-reference", help="write the zoo's per-patient Dice table that score-predictions compares with")
    reference.add_argument("--catalog", help="catalog file (default: $LGG_CATALOG or models.toml)")
    reference.add_argument("--out", help="output CSV (default: the copy bundled with the package)")
    reference.set_defaults(func=cmd_zoo_reference)

    recipes = commands.add_parser(
        "recipes", parents=[data_options],
        help="the recipe search: validation per-patient Dice of each run, its cost, its paired gain over the baseline",
        description="Reads each run's config.json (train/recipes.sh): the Dice of every validation patient at the "
                    "chosen epoch. Each run is compared patient by patient with its fold's baseline (same model, the "
                    "three sequences, no modality dropout, fewest epochs): bootstrap 95%% CI and Wilcoxon p. With the "
                    "dataset, the validation patients lacking a contrast sequence are also shown on their own.")
    recipes.add_argument("runs", nargs="+", help="run folders, or a folder of them (artifacts/recipes)")
    recipes.add_argument("--curve", action="store_true",
                         help="print validation Dice after every epoch against CPU-minutes instead (epochs.csv)")
    recipes.set_defaults(func=cmd_recipes)

    post = commands.add_parser(
        "postprocess", parents=[data_options],
        help="choose post-processing on validation patients; what a 2.5D model loses on a lone slice",
        description="Predicts each run's validation patients (split.json) and scores every post-processing option "
                    "(largest component, small components removed, holes filled) and, for a model that takes "
                    "neighbouring slices, each slice fed alone as the Upload page does, against plain thresholding: "
                    "paired bootstrap 95%% CI and Wilcoxon p. Test patients are never read.")
    post.add_argument("runs", nargs="+", help="trained run folders with weights (artifacts/recipes/<run>)")
    post.add_argument("--batch-size", type=int, default=16, help="slices per forward pass (default: 16)")
    post.set_defaults(func=cmd_postprocess)

    push = commands.add_parser("push", help="upload an artifact folder to a Hugging Face Hub model repo")
    push.add_argument("artifact", help="artifact folder")
    push.add_argument("repo_id", help="owner/name on the Hub (created if missing)")
    push.add_argument("--revision", help="branch to commit to (default: main)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--with-onnx", action="store_true",
                      help="also upload model.onnx, and model.int8.onnx where export-onnx kept one")
    push.add_argument("--message", help="commit message")
    push.set_defaults(func=cmd_push)

    catalog_help = "also every {} entry of the model catalog (default file: $LGG_CATALOG or models.toml)"
    pull = commands.add_parser("pull", help="download Hub model repos into the Hugging Face cache")
    pull.add_argument("repo_ids", nargs="*", metavar="REPO_ID", help="owner/name on the Hub")
    pull.add_argument("--revision", help="branch, tag or commit hash for the REPO_IDs (default: main)")
    pull.add_argument("--catalog", nargs="?", const="", metavar="FILE", help=catalog_help.format("Hub"))
    pull.add_argument("--cache-dir", help="cache folder (default: the HF cache, $HF_HOME/hub)")
    pull.add_argument("--offline", action="store_true", help="use the cache only, never contact the Hub")
    pull.set_defaults(func=cmd_pull)

    export = commands.add_parser(
        "export-onnx", parents=[data_options],
        help="export artifacts to model.onnx and record their fastest CPU path on this host (serving.json)",
        description="Writes model.onnx (parity with PyTorch), then times PyTorch fp32/bf16 and ONNX Runtime "
                    "fp32/int8 at batch 1 and records the fastest in serving.json. bf16 and int8 qualify only "
                    "when the data (--data-dir or $LGG_DATA_DIR) holds the artifact's test patients and their "
                    "held-out Dice stays within 0.005 of fp32; int8 is calibrated on its training patients.")
    export.add_argument("artifacts", nargs="*", help="artifact folders")
    export.add_argument("--catalog", nargs="?", const="", metavar="FILE", help=catalog_help.format("local"))
    export.add_argument("--no-measure", action="store_true", help="only write model.onnx, no serving.json")
    export.set_defaults(func=cmd_export_onnx)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lgg`` command; dataset and file problems print ``error: ...`` and return 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    # OSError: user-supplied paths (unwritable --out, missing artifact); ValueError: data that does not fit the
    # artifact (held-out patients missing). A message serves better than a traceback.
    except (DatasetError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
