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


def standardize_slices(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Zero mean, unit variance per slice and channel.

    Scanners and protocols differ in overall FLAIR brightness: with one global normalization, a tumor that is bright
    for its own scan can be darker than healthy tissue of another, and is missed. Because this is invariant to any
    per-channel affine intensity change, it can run after the global normalization, inside the model.
    """
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True)
    return (x - mean) / (std + eps)


def _standardize_hook(module: nn.Module, args: tuple) -> tuple:
    return (standardize_slices(args[0]), *args[1:])


def create_model(name: str, standardize: bool = False, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with builder ``kwargs`` (random init, no downloads by default).

    ``standardize=True`` makes the model standardize each input slice per channel first (see
    :func:`standardize_slices`); it is a forward pre-hook, so weights and layer names are those of the plain model,
    and it travels in ``arch_kwargs`` wherever the model is saved or exported.
    """
    net = get_entry(name).builder(**kwargs)
    if standardize:
        net.register_forward_pre_hook(_standardize_hook)
    return net


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
