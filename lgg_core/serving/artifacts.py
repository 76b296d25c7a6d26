"""Hub-format artifact folders: config.json + model.safetensors + README.md card, split, epoch log, evaluation."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from lgg_core.models import LGGModel, check_config, count_parameters, model_info, read_config
from lgg_core.data.splits import save_split

TEMPLATE = Path(__file__).resolve().parents[2] / "model_cards" / "template.md"
DATASET_ID = "mateuszbuda/lgg-mri-segmentation"
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
        (tmp / "README.md").write_text(render_card(read_config(tmp)))
        _default_file_modes(tmp)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed write (disk full) leaves no partial copy taking space
        raise
    return out_dir


def load_artifact(path: str | Path, device: str | torch.device = "cpu") -> tuple[LGGModel, dict[str, Any]]:
    """Load an artifact folder (safetensors only) in eval mode; returns (model, config).

    Raises:
        FileNotFoundError: the folder lacks config.json or model.safetensors.
        ArtifactError: the config or weights fail the checks of :func:`lgg_core.models.check_artifact`.
    """
    path = Path(path)
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path} is not a model artifact: it needs config.json and model.safetensors")
    # The config is checked here because the Hub mixin parses it itself; the weights' header is checked (once) by
    # LGGModel's loader before it builds anything.
    config = read_config(path)
    check_config(config)
    model = LGGModel.from_pretrained(path).to(device).eval()
    return model, config


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


def _eval_results(config: dict[str, Any], summary: dict[str, Any] | None) -> list[EvalResult]:
    if not summary:
        return []
    task_type = "image-segmentation" if config["task"] == "segment" else "image-classification"
    split = f"fold {config['training']['fold']} (held-out patients)"
    return [
        EvalResult(task_type=task_type, dataset_type=DATASET_ID, dataset_name="LGG MRI Segmentation",
                   dataset_split=split, metric_type=name, metric_name=name, metric_value=round(value, 4))
        for name, value in summary.get("headline", {}).items()
    ]


def render_card(config: dict[str, Any], summary: dict[str, Any] | None = None, metrics_table: str = "") -> str:
    """Render ``model_cards/template.md`` with model-index eval results taken from ``summary["headline"]``."""
    t = config["training"]
    card_data = ModelCardData(
        library_name="lgg-core", license="mit", datasets=[DATASET_ID], model_name=config["arch"],
        pipeline_tag="image-segmentation" if config["task"] == "segment" else "image-classification",
        tags=["medical-imaging", "brain-mri", "glioma", "segmentation", "pytorch", "safetensors"],
        eval_results=_eval_results(config, summary) or None,
    )
    fields = {
        **t, "model_name": config["arch"], "description": model_info(config["arch"])["description"],
        "arch": config["arch"], "arch_kwargs": json.dumps(config.get("arch_kwargs") or {}), "task": config["task"],
        "params": f"{config['params']:,}", "n_test": t["patients"]["test"], "n_val": t["patients"]["val"],
        "n_train": t["patients"]["train"], "wall_time_min": round(t["wall_time_s"] / 60, 1),
        "metrics_table": metrics_table,
    }
    card = ModelCard.from_template(card_data, template_path=str(TEMPLATE), **fields)
    return str(card)
