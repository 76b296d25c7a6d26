"""Resumable training checkpoints stored as safetensors + JSON, so resuming never unpickles anything."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def _split_tensors(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor in a nested dict/list by a key into ``tensors`` so the rest is JSON."""
    if isinstance(obj, torch.Tensor):
        key = prefix.lstrip(".")
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_split_tensors(k, f"{prefix}.k{i}", tensors), _split_tensors(v, f"{prefix}.{i}", tensors)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        return [_split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _join_tensors(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {_join_tensors(k, tensors): _join_tensors(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_join_tensors(v, tensors) for v in obj]
    return obj


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts/lists of tensors and JSON values) to folder ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split_tensors(state, "", tensors)
    save_file(tensors, tmp / "tensors.safetensors")
    (tmp / "state.json").write_text(json.dumps(skeleton))
    old = path.with_name(path.name + ".old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """Read a checkpoint folder written by :func:`save_checkpoint`; None if there is none."""
    path = Path(path)
    if not (path / "state.json").exists():
        old = path.with_name(path.name + ".old")  # a kill between the two renames leaves only this one
        if not (old / "state.json").exists():
            return None
        path = old
    tensors = load_file(path / "tensors.safetensors")
    return _join_tensors(json.loads((path / "state.json").read_text()), tensors)
