"""Name -> builder registry for every model in the comparison, in the style of timm / smp."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

TASKS = ("segment", "classify")


@dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Attributes:
        name: Registry name, e.g. ``"unet-mini"``.
        task: ``"segment"`` (logits ``(B, 1, H, W)``) or ``"classify"`` (logits ``(B, 1)``).
        description: One-line human-readable summary.
        builder: Callable returning a fresh ``nn.Module``; its kwargs are the model's options.
    """

    name: str
    task: str
    description: str
    builder: Callable[..., nn.Module]


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, task: str, description: str) -> Callable:
    """Decorator registering a model builder under ``name``.

    Raises:
        ValueError: If ``task`` is unknown or ``name`` is already taken.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, task, description, builder)
        return builder

    return decorator


def get_entry(name: str) -> ModelEntry:
    """Return the registry entry for ``name``.

    Raises:
        KeyError: If ``name`` is not registered; the message lists the valid names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; valid names: {', '.join(list_models())}") from None


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with builder ``kwargs`` (random init, no downloads by default)."""
    return get_entry(name).builder(**kwargs)


def list_models(task: str | None = None) -> list[str]:
    """Sorted registered names, optionally only those of ``task``."""
    return sorted(name for name, entry in _REGISTRY.items() if task is None or entry.task == task)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements in ``model`` (only ``requires_grad`` ones if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@functools.cache
def _default_param_count(name: str) -> int:
    # The meta device allocates no memory and skips real init, so even ResNet-101 counts in milliseconds.
    try:
        with torch.device("meta"):
            return count_parameters(create_model(name))
    except (RuntimeError, NotImplementedError):
        # A few builders read tensor values while constructing (smp's MiT encoder calls .item()).
        return count_parameters(create_model(name))


def model_info(name: str) -> dict:
    """Summary of ``name``: ``{"name", "task", "description", "params"}`` (params of the default build)."""
    entry = get_entry(name)
    return {"name": name, "task": entry.task, "description": entry.description, "params": _default_param_count(name)}
