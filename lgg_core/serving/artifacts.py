"""Hub-format artifact folders: config.json + model.safetensors + README.md card, split, epoch log, evaluation."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.constants import SAFETENSORS_SINGLE_FILE

from lgg_core.models import (
    ArtifactError,
    LGGModel,
    assemble,
    check_artifact,
    check_config,
    composite_kwargs,
    count_parameters,
    model_info,
    read_config,
)
from lgg_core.data.inputs import check_inputs
from lgg_core.data.splits import save_split
from lgg_core.serving.artifact_config import ArtifactConfig
from lgg_core.serving.catalog import missing_weights_message

TEMPLATE = Path(__file__).with_name("model_card.md")  # inside the package: an installed wheel renders cards too
DATASET_ID = "mateuszbuda/lgg-mri-segmentation"
# Builder options of a composite that are not its parts (gated: the classifier probability that keeps a mask).
_COMPOSITE_EXTRAS = {"threshold"}
_STARTED = time.time()  # about when this process started: see _remove_stale_copies


def check_overwrite(out_dir: str | Path, overwrite: bool) -> None:
    """Refuse to replace an evaluated artifact unless ``overwrite``: its eval/ tables and card results would be lost.

    Raises:
        FileExistsError: ``out_dir`` holds ``eval/summary.json`` and ``overwrite`` is False.
    """
    if not overwrite and (Path(out_dir) / "eval" / "summary.json").is_file():
        raise FileExistsError(
            f"{out_dir} holds an evaluated model (eval/summary.json); writing it again would delete its evaluation. "
            "Pass --overwrite (overwrite=True) to replace it, or choose another --out"
        )


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (always True on Windows)."""
    if os.name == "nt":
        return True  # os.kill(pid, 0) would end the process on Windows; the age test alone decides there
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: a number no process can have
        return False
    except PermissionError:  # alive, owned by another user
        pass
    return True


def _remove_stale_copies(dest: Path) -> None:
    """Delete the temp (``.<name>.tmp-<pid>``) and old (``<name>.old-<pid>-<time>``) folders of ``dest`` left by
    crashed writes.

    One is stale when its process is gone, or when it is older than this process (its pid was reused): a write in
    progress elsewhere keeps its copies.
    """
    name = re.escape(dest.name)
    pattern = re.compile(rf"\.{name}\.tmp-(\d+)|{name}\.old-(\d+)-\d+")
    for entry in dest.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile by the write that made it
            if match and (not _pid_alive(int(match[1] or match[2])) or entry.stat().st_mtime < _STARTED):
                shutil.rmtree(entry, ignore_errors=True)


def _default_file_modes(folder: Path) -> None:
    """Give every file under ``folder`` the mode ``open()`` gives a new file: 0666 less the umask.

    safetensors creates 0600 files whatever the umask, unreadable to another user such as the app's container user. ``folder`` was made by mkdir, so its mode is 0777 less the umask.
    """
    mode = folder.stat().st_mode & 0o666
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(mode)


def _replace_dir(tmp: Path, dest: Path) -> None:
    """Move a finished folder into place so readers never see a half-written artifact."""
    old = dest.with_name(f"{dest.name}.old-{os.getpid()}-{int(time.time())}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_copy(src: str | Path, dest: str | Path, skip: Collection[str] = ()) -> Iterator[Path]:
    """A copy of the artifact ``src`` to change in a temp folder beside ``dest`` (``.<name>.tmp-<pid>``).

    Inside the block, :func:`commit_copy` moves it into place as ``dest``; whatever is left at the end (a rejected
    change, a failure) is deleted, so ``dest`` is either untouched or replaced whole. Stale copies of crashed writes
    are removed first.

    Args:
        src: The artifact folder to copy.
        dest: Where the changed copy goes (``src`` itself to change it in place).
        skip: Names of top-level files not copied (files derived from what changes).
    """
    src, dest = Path(src), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_copies(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(src, tmp, ignore=lambda folder, names: [n for n in names if n in skip and Path(folder) == src])
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def commit_copy(tmp: Path, dest: str | Path) -> None:
    """Move a folder from :func:`staged_copy` into place as ``dest``, its files with ordinary modes."""
    _default_file_modes(tmp)
    _replace_dir(tmp, Path(dest))


def write_artifact(
    out_dir: str | Path,
    model: LGGModel,
    training: dict[str, Any],
    split: dict[str, Any],
    epoch_log: pd.DataFrame,
    weights_dtype: torch.dtype | None = None,
    overwrite: bool = False,
) -> Path:
    """Write weights, config (with ``training``), split.json, epochs.csv and the card, atomically.

    ``split`` holds the keyword arguments of :func:`lgg_core.data.splits.save_split`. Files get the modes of
    ordinary new files (readable by all under the usual umask 022), and stale copies left by crashed writes of the
    same artifact are deleted.

    Raises:
        FileExistsError: ``out_dir`` was evaluated and ``overwrite`` is False (see :func:`check_overwrite`).
    """
    out_dir = Path(out_dir)
    check_overwrite(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_copies(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        extra = {"task": model.task, "params": count_parameters(model), "training": training}
        model.save_pretrained(tmp, config=extra, weights_dtype=weights_dtype)
        save_split(tmp / "split.json", **split)
        epoch_log.to_csv(tmp / "epochs.csv", index=False)
        (tmp / "README.md").write_text(render_card(read_config(tmp), name=artifact_name(out_dir)))
        _default_file_modes(tmp)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed write (disk full) leaves no partial copy taking space
        raise
    return out_dir


def artifact_inputs(config: dict[str, Any]) -> str:
    """What the model takes as input (``training.inputs``; :data:`~lgg_core.data.inputs.INPUTS`), ``sequences`` when
    the record predates the choice.

    Raises:
        ArtifactError: an input kind this version does not know how to build (fed the three sequences instead, such
            a model would give wrong masks without a word).
    """
    inputs = ArtifactConfig.parse(config).training.inputs
    try:
        check_inputs(inputs)
    except ValueError as err:
        raise ArtifactError(f"config.json training.inputs: {err}") from None
    return inputs


def load_artifact(path: str | Path, device: str | torch.device = "cpu") -> tuple[LGGModel, dict[str, Any]]:
    """Load an artifact folder (safetensors only) in eval mode; returns (model, config).

    A reference artifact (an ``ensemble`` or ``gated`` model written by :func:`write_reference`) is assembled from
    the artifacts it names.

    Raises:
        FileNotFoundError: the folder lacks config.json, or the weights (of a part) are not there; the message says
            how to get them.
        ArtifactError: the config or weights fail the checks of :func:`lgg_core.models.check_artifact`.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a model artifact: it needs config.json and model.safetensors")
    # The config is checked here because the Hub mixin parses it itself; the weights' header is checked (once) by
    # LGGModel's loader before it builds anything.
    config = read_config(path)
    check_config(config)
    artifact_inputs(config)
    if "parts" in config:
        spec = ArtifactConfig.parse(config)
        parts = [load_artifact(part, device)[0] for part in part_dirs(path, config)]
        extra = {k: v for k, v in spec.arch_kwargs.items() if k in _COMPOSITE_EXTRAS}
        return assemble(spec.arch, parts, **extra).to(device).eval(), config
    if not (path / SAFETENSORS_SINGLE_FILE).is_file():
        raise FileNotFoundError(missing_weights_message(path))
    model = LGGModel.from_pretrained(path).to(device).eval()
    return model, config


def part_dirs(folder: str | Path, config: dict[str, Any]) -> list[Path]:
    """The artifact folders a reference artifact is made of: sibling folders named in ``config["parts"]``.

    Raises:
        ArtifactError: ``parts`` is not a list of ``"../<name>"`` entries.
    """
    parts = config.get("parts")
    folder = Path(folder).resolve()
    if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
        raise ArtifactError(f"{folder}/config.json parts must be a list of sibling folders such as '../resnet50'")
    paths = [(folder / p).resolve() for p in parts]
    # Only siblings: a config from elsewhere must not make the app open arbitrary folders.
    if outside := [p for p, path in zip(parts, paths) if path.parent != folder.parent or path == folder]:
        raise ArtifactError(f"{folder}/config.json parts {outside} are not sibling artifact folders")
    return paths


def inspect_artifact(folder: str | Path) -> tuple[dict[str, Any], bool]:
    """(config, whether its weights are all present) of an artifact, once everything present passes the checks.

    An artifact without weights still has its evaluation record (config, split, eval/ tables, predicted masks):
    the app shows those and says how to get the weights.

    Raises:
        ArtifactError: the config, a part or a weights header cannot be loaded safely.
        OSError: config.json is missing or unreadable.
    """
    folder = Path(folder)
    config = read_config(folder)
    check_config(config)
    inputs = artifact_inputs(config)
    if "parts" not in config:
        if not (folder / SAFETENSORS_SINGLE_FILE).is_file():
            return config, False
        return check_artifact(folder), True
    present = True
    parts = []
    for part in part_dirs(folder, config):
        part_config, part_present = inspect_artifact(part)
        if "parts" in part_config:
            raise ArtifactError(f"{folder}: part {part.name} is itself made of parts; nesting is not supported")
        if artifact_inputs(part_config) != inputs:
            raise ArtifactError(f"{folder}: part {part.name} takes {artifact_inputs(part_config)!r} inputs where the "
                                f"composite records {inputs!r}; its parts must share one input")
        part_spec = ArtifactConfig.parse(part_config)
        parts.append((part_spec.arch, dict(part_spec.arch_kwargs)))
        present &= part_present
    spec = ArtifactConfig.parse(config)
    expected = composite_kwargs(spec.arch, parts)
    recorded = {k: v for k, v in spec.arch_kwargs.items() if k not in _COMPOSITE_EXTRAS}
    if recorded != expected:
        raise ArtifactError(f"{folder}: its parts no longer match its config (retrained with other settings?); "
                            "write it again with `lgg assemble`")
    return config, present


def write_reference(out_dir: str | Path, arch: str, parts: list[str | Path], overwrite: bool = False,
                    **kwargs: Any) -> Path:
    """Write an ``ensemble`` or ``gated`` artifact that names its trained parts instead of copying their weights.

    Every part must be a sibling folder trained on the same split; the new artifact gets that split, a training
    record summing the parts' costs, and a card. Evaluate it with ``lgg evaluate`` like any artifact.

    Raises:
        ValueError: the parts are not siblings, differ in split, data or input size, or do not fit ``arch``.
        FileExistsError: ``out_dir`` was evaluated and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    check_overwrite(out_dir, overwrite)
    relative = [f"../{Path(p).name}" for p in parts]
    paths = part_dirs(out_dir, {"parts": relative})
    if any(Path(p).resolve() != q for p, q in zip(parts, paths)):
        raise ValueError(f"the parts of {out_dir.name} must be folders beside it ({out_dir.parent})")
    specs = [ArtifactConfig.parse(inspect_artifact(p)[0]) for p in paths]
    splits = [json.loads((p / "split.json").read_text()) for p in paths]
    trainings = [spec.training for spec in specs]
    for key, values in {"split": [s.get("roles") for s in splits],
                        "dataset": [t.dataset_hash for t in trainings],
                        "input size": [t.input_size for t in trainings],
                        "inputs": [t.inputs for t in trainings]}.items():
        if any(v != values[0] for v in values):
            raise ValueError(f"the parts of {out_dir.name} differ in {key}; a composite needs one")
    arch_kwargs = {**composite_kwargs(arch, [(spec.arch, dict(spec.arch_kwargs)) for spec in specs]), **kwargs}
    if unknown := sorted(set(kwargs) - _COMPOSITE_EXTRAS):
        raise ValueError(f"unknown options {unknown} for {arch}; accepted: {sorted(_COMPOSITE_EXTRAS)}")
    first = trainings[0]
    training = {
        "task": model_info(arch)["task"], "parts": [p.name for p in paths], "fold": first.fold, "k": first.k,
        "split_seed": first.split_seed,
        "patients": {"test": first.test_patients, "train": first.train_patients, "val": first.val_patients},
        "dataset_hash": first.dataset_hash, "input_size": first.input_size, "inputs": first.inputs,
        "protocol": first.protocol if all(t.protocol == first.protocol for t in trainings) else None,
        "split_file": "split.json",
        **{k: round(sum(getattr(t, k) or 0 for t in trainings), 1) for k in ("wall_time_s", "cpu_time_s")},
    }
    config = {"arch": arch, "arch_kwargs": arch_kwargs, "task": training["task"], "parts": relative,
              "params": sum(spec.params for spec in specs), "training": training}
    check_config(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / "eval", ignore_errors=True)
    write_json(out_dir / "config.json", config)
    shutil.copyfile(paths[0] / "split.json", out_dir / "split.json")
    (out_dir / "README.md").write_text(render_card(config, name=artifact_name(out_dir)))
    return out_dir


def _write_atomically(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write`` on a temp name beside ``path``, then move the file into place: readers never see half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # after a failed write (disk full), no partial file is left


def write_table(path: str | Path, table: pd.DataFrame) -> None:
    """Write a CSV atomically (the app may read it while evaluation runs)."""
    _write_atomically(path, lambda tmp: table.to_csv(tmp, index=False))


def write_json(path: str | Path, value: Any) -> None:
    """Write JSON atomically."""
    _write_atomically(path, lambda tmp: tmp.write_text(json.dumps(value, indent=1)))


def _pipeline_tag(spec: ArtifactConfig) -> str:
    return "image-segmentation" if spec.task == "segment" else "image-classification"


def _eval_results(spec: ArtifactConfig, summary: dict[str, Any] | None) -> list[EvalResult]:
    if not summary:
        return []
    task_type = _pipeline_tag(spec)
    split = f"fold {spec.training.fold} (held-out patients)"
    return [
        EvalResult(task_type=task_type, dataset_type=DATASET_ID, dataset_name="LGG MRI Segmentation",
                   dataset_split=split, metric_type=name, metric_name=name, metric_value=round(value, 4))
        for name, value in summary.get("headline", {}).items()
    ]


def artifact_name(folder: str | Path) -> str:
    """What a card calls an artifact: its folder's name (``unet-resnet50-transfer``, whose architecture is
    ``unet-resnet50``), with the run for a cross-validation fold (``unet-resnet50-transfer, fold-0``)."""
    folder = Path(folder).resolve()
    return f"{folder.parent.name}, {folder.name}" if re.fullmatch(r"fold-\d+", folder.name) else folder.name


def render_card(config: dict[str, Any], summary: dict[str, Any] | None = None, metrics_table: str = "",
                name: str | None = None) -> str:
    """Render ``lgg_core/serving/model_card.md`` with model-index eval results taken from ``summary["headline"]``.

    ``name``: the card's title and model-index name (:func:`artifact_name`; default: the architecture).
    """
    spec = ArtifactConfig.parse(config)
    t = spec.training
    card_data = ModelCardData(
        library_name="lgg-core", license="mit", datasets=[DATASET_ID], model_name=name or spec.arch,
        pipeline_tag=_pipeline_tag(spec),
        tags=["medical-imaging", "brain-mri", "glioma", "segmentation", "pytorch", "safetensors"],
        eval_results=_eval_results(spec, summary) or None,
    )
    fields = {
        # Every recorded training field, so that the template may print any of them.
        **config["training"], "model_name": name or spec.arch, "description": model_info(spec.arch)["description"],
        "arch": spec.arch, "arch_kwargs": json.dumps(dict(spec.arch_kwargs)), "task": spec.task,
        "params": f"{spec.params:,}", "n_test": t.test_patients, "n_val": t.val_patients,
        "n_train": t.train_patients, "wall_time_min": round(t.wall_time_s / 60, 1),
        "cpu_time_min": round(t.cpu_time_s / 60, 1) if t.cpu_time_s else None,
        "metrics_table": metrics_table, "inputs": artifact_inputs(config),
    }
    card = ModelCard.from_template(card_data, template_path=str(TEMPLATE), **fields)
    return str(card)
