"""Resumable training checkpoints stored as safetensors + JSON, so resuming never unpickles anything."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names it and how to start afresh."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"cannot resume from checkpoint {path} ({reason}); delete it or start again with --no-resume (resume=False)"
        )


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
    try:
        save_file(tensors, tmp / "tensors.safetensors")
        (tmp / "state.json").write_text(json.dumps(skeleton))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed write (disk full) leaves no partial copy taking space
        raise
    old = path.with_name(path.name + ".old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """Read a checkpoint folder written by :func:`save_checkpoint`; None if there is none.

    Raises:
        CheckpointError: the folder exists but its files are unreadable, truncated or not a checkpoint.
    """
    path = Path(path)
    if not (path / "state.json").exists():
        old = path.with_name(path.name + ".old")  # a kill between the two renames leaves only this one
        if not (old / "state.json").exists():
            return None
        path = old
    try:
        tensors = load_file(path / "tensors.safetensors")
        state = _join_tensors(json.loads((path / "state.json").read_text()), tensors)
    # Truncated, edited or half-copied files fail in safetensors, json or the tensor lookup with assorted types.
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(path, f"{type(err).__name__}: {err}") from err
    if not isinstance(state, dict):
        raise CheckpointError(path, "state.json does not hold a checkpoint")
    return state
