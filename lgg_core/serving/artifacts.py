"""Hub-format artifact folders: config.json + model.safetensors + README.md card, split, epoch log, evaluation."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from lgg_core.models import LGGModel, count_parameters, model_info, read_config
from lgg_core.data.splits import save_split

TEMPLATE = Path(__file__).resolve().parents[2] / "model_cards" / "template.md"
DATASET_ID = "mateuszbuda/lgg-mri-segmentation"


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
) -> Path:
    """Write weights, config (with ``training``), split.json, epochs.csv and the card, atomically.

    ``split`` holds the keyword arguments of :func:`lgg_core.data.splits.save_split`.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    extra = {"task": model.task, "params": count_parameters(model), "training": training}
    model.save_pretrained(tmp, config=extra, weights_dtype=weights_dtype)
    save_split(tmp / "split.json", **split)
    epoch_log.to_csv(tmp / "epochs.csv", index=False)
    (tmp / "README.md").write_text(render_card(read_config(tmp)))
    _replace_dir(tmp, out_dir)
    return out_dir


def load_artifact(path: str | Path, device: str | torch.device = "cpu") -> tuple[LGGModel, dict[str, Any]]:
    """Load an artifact folder (safetensors only) in eval mode; returns (model, config)."""
    path = Path(path)
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path} is not a model artifact: it needs config.json and model.safetensors")
    model = LGGModel.from_pretrained(path).to(device).eval()
    return model, read_config(path)


def write_table(path: str | Path, table: pd.DataFrame) -> None:
    """Write a CSV atomically (the app may read it while evaluation runs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    table.to_csv(tmp, index=False)
    os.replace(tmp, path)


def write_json(path: str | Path, value: Any) -> None:
    """Write JSON atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


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
