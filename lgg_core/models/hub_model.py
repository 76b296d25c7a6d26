"""``LGGModel``: any registered model wrapped for saving to / loading from a folder or the Hugging Face Hub.

An artifact is ``config.json`` (``arch``, ``arch_kwargs`` and any extra keys such as training
metadata), ``model.safetensors`` and a ``README.md`` model card. Loading reads safetensors only,
so nothing is ever unpickled.

A saved artifact is untrusted input (a catalog entry, a Hub repo): loading checks its config against the registry
(known keys only, pretrained downloads forced off, bounded input size) and the weights file's header against the
model before anything is allocated, so an artifact can neither reach the network nor make the host build something
huge.
"""
from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.constants import CONFIG_NAME, SAFETENSORS_SINGLE_FILE
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .registry import create_model, get_entry

MAX_CONFIG_BYTES = 1_000_000
MAX_PARAMS = 150_000_000  # the largest registry model (the classifier ensemble) has 56M
INPUT_SIZES = (32, 512)  # training.input_size bounds: the slices are 256², inference memory grows with its square
# Builder arguments that download weights; a saved artifact brings its own, so they are always off when loading.
_DOWNLOAD_OFF = {"encoder_weights": None, "pretrained": False}
# Composite builders name other registry models and carry their kwargs: (arch key, kwargs key) pairs.
_PARTS = {"ensemble": (("members", "member_kwargs"),),
          "gated": (("classifier", "classifier_kwargs"), ("segmenter", "segmenter_kwargs"))}


class ArtifactError(ValueError):
    """A saved model that cannot be loaded safely; the message says which file and why."""


class LGGModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="lgg-core",
    license="mit",
    tags=["medical-imaging", "brain-mri", "lgg-segmentation"],
):
    """A registered model plus the config needed to rebuild it.

    Args:
        arch: Registry name (see :func:`lgg_core.models.list_models`).
        arch_kwargs: Builder kwargs for ``arch``; must be JSON-serialisable.
    """

    def __init__(self, arch: str, arch_kwargs: dict | None = None) -> None:
        super().__init__()
        self.arch = arch
        self.arch_kwargs = dict(arch_kwargs or {})
        self.net = create_model(arch, **self.arch_kwargs)

    @property
    def task(self) -> str:
        """``"segment"`` or ``"classify"``."""
        return get_entry(self.arch).task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def save_pretrained(
        self,
        save_directory: str | Path,
        *,
        config: dict | None = None,
        weights_dtype: torch.dtype | None = None,
        model_card_kwargs: dict | None = None,
    ) -> None:
        """Write ``config.json``, ``model.safetensors`` and (unless present) ``README.md`` to ``save_directory``.

        Args:
            save_directory: Target folder, created if missing.
            config: Extra JSON keys stored next to ``arch`` and ``arch_kwargs`` (e.g. a ``"training"`` dict).
            weights_dtype: Cast floating-point tensors to this dtype (e.g. ``torch.float16`` halves the
                file); integer buffers are left alone.
            model_card_kwargs: Passed to the model card template.
        """
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        state = {
            key: (t.to(weights_dtype) if weights_dtype is not None and t.is_floating_point() else t).contiguous()
            for key, t in self.state_dict().items()
        }
        save_file(state, save_directory / SAFETENSORS_SINGLE_FILE, metadata={"format": "pt"})
        full_config = {**(config or {}), "arch": self.arch, "arch_kwargs": self.arch_kwargs}
        (save_directory / CONFIG_NAME).write_text(json.dumps(full_config, indent=2, sort_keys=True))
        card_path = save_directory / "README.md"
        if not card_path.exists():
            self.generate_model_card(**(model_card_kwargs or {})).save(card_path)

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs,
    ) -> LGGModel:
        # The mixin has already turned config.json into model_kwargs (arch, arch_kwargs); unlike its
        # default, never fall back to a pickled pytorch_model.bin and load strictly.
        arch, saved_kwargs = model_kwargs["arch"], model_kwargs.get("arch_kwargs") or {}
        build_kwargs = loading_kwargs(arch, saved_kwargs)
        if os.path.isdir(model_id):
            weights_file = os.path.join(model_id, SAFETENSORS_SINGLE_FILE)
        else:
            weights_file = hf_hub_download(
                model_id,
                SAFETENSORS_SINGLE_FILE,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
            )
        check_weights(arch, build_kwargs, weights_file)
        model = cls(arch, build_kwargs)
        model.arch_kwargs = dict(saved_kwargs)  # re-saving keeps what the artifact recorded (e.g. ImageNet init)
        # load_state_dict copies into the existing float32 parameters, so fp16 files come back as float32.
        model.load_state_dict(load_file(weights_file), strict=strict)
        return model.to(map_location).eval()


def read_config(path_or_repo_id: str | Path, revision: str | None = None) -> dict:
    """Return the whole ``config.json`` of a saved model folder or Hub repo, extra keys included.

    Raises:
        ArtifactError: the file is too large, not JSON, nested too deeply or not a JSON object.
        OSError: the file cannot be read.
    """
    if os.path.isdir(path_or_repo_id):
        config_file = Path(path_or_repo_id, CONFIG_NAME)
    else:
        config_file = Path(hf_hub_download(str(path_or_repo_id), CONFIG_NAME, revision=revision))
    if config_file.stat().st_size > MAX_CONFIG_BYTES:
        raise ArtifactError(f"{config_file} is larger than {MAX_CONFIG_BYTES:,} bytes")
    try:
        config = json.loads(config_file.read_text())
    except (ValueError, RecursionError) as err:  # RecursionError: a deeply nested document
        raise ArtifactError(f"{config_file} is not valid JSON: {str(err)[:200]}") from None
    if not isinstance(config, dict):
        raise ArtifactError(f"{config_file} must hold a JSON object")
    return config


def loading_kwargs(arch: str, arch_kwargs: Any, depth: int = 0) -> dict[str, Any]:
    """The builder kwargs to load a saved ``arch`` with: only the builder's own keys, downloads off.

    Raises:
        ArtifactError: unknown arch, arch_kwargs not an object, unknown keys, or composites nested too deeply.
    """
    try:
        builder = get_entry(arch).builder
    except KeyError as err:
        raise ArtifactError(str(err.args[0])) from None
    if not isinstance(arch_kwargs, dict):
        raise ArtifactError(f"arch_kwargs of {arch} must be an object, got {type(arch_kwargs).__name__}")
    accepted = {name for name, p in inspect.signature(builder).parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} | {"standardize"}
    if unknown := sorted(set(arch_kwargs) - accepted):
        raise ArtifactError(f"arch_kwargs of {arch} has unknown keys {unknown}; accepted: {sorted(accepted)}")
    kwargs = {**arch_kwargs, **{k: v for k, v in _DOWNLOAD_OFF.items() if k in accepted}}
    for arch_key, kwargs_key in _PARTS.get(arch, ()):
        if depth > 0:
            raise ArtifactError(f"{arch} inside another composite model is not supported")
        names = kwargs.get(arch_key)
        if isinstance(names, str):
            kwargs[kwargs_key] = loading_kwargs(names, kwargs.get(kwargs_key) or {}, depth + 1)
        elif names is not None:
            parts = kwargs.get(kwargs_key) or [{}] * len(names)
            if not isinstance(names, list) or not isinstance(parts, list) or len(parts) != len(names):
                raise ArtifactError(f"{arch}: {arch_key} and {kwargs_key} must be lists of the same length")
            kwargs[kwargs_key] = [loading_kwargs(n, k, depth + 1) for n, k in zip(names, parts)]
    return kwargs


def check_config(config: dict[str, Any]) -> None:
    """Check the keys of a saved ``config.json`` that loading and the app rely on.

    Raises:
        ArtifactError: what is wrong, in one line.
    """
    arch = config.get("arch")
    if not isinstance(arch, str):
        raise ArtifactError("config.json has no arch")
    loading_kwargs(arch, config.get("arch_kwargs") or {})
    if config.get("task") != get_entry(arch).task:
        raise ArtifactError(f"config.json task {config.get('task')!r} is not {arch}'s task {get_entry(arch).task!r}")
    training = config.get("training", {})
    if not isinstance(training, dict):
        raise ArtifactError(f"config.json training must be an object, got {type(training).__name__}")
    size = training.get("input_size")
    if size is not None and (type(size) is not int or not INPUT_SIZES[0] <= size <= INPUT_SIZES[1]):
        raise ArtifactError(f"config.json training.input_size must be an integer in {INPUT_SIZES}, got {size!r}")


def check_weights(arch: str, build_kwargs: dict[str, Any], weights_file: str | Path) -> None:
    """Compare the safetensors header with the model ``arch`` would build, before allocating either.

    Raises:
        ArtifactError: not a safetensors file (a pickle, truncated), too many parameters, or tensors that do not
            match the model's.
    """
    try:
        with safe_open(str(weights_file), framework="pt") as f:
            header = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError) as err:
        raise ArtifactError(f"{weights_file} is not a readable safetensors file: {err}") from None
    n_params = sum(int(torch.Size(shape).numel()) for shape in header.values())
    if n_params > MAX_PARAMS:
        raise ArtifactError(f"{weights_file} holds {n_params:,} values; at most {MAX_PARAMS:,} are loaded")
    try:
        # The meta device allocates nothing, so even a config asking for a huge network costs no memory here.
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in LGGModel(arch, build_kwargs).state_dict().items()}
    except (RuntimeError, NotImplementedError):
        return  # a builder that reads tensor values (smp's MiT); the size bound above still holds
    except (TypeError, ValueError) as err:
        raise ArtifactError(f"cannot build {arch} with {build_kwargs}: {err}") from None
    if header != expected:
        diff = sorted(set(header.items()) ^ set(expected.items()))[:3]
        raise ArtifactError(f"{weights_file} does not match {arch} {build_kwargs}: first differences {diff}")


def check_artifact(folder: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a local artifact folder, once it and the weights' header pass every check.

    Raises:
        ArtifactError: the config or the weights cannot be loaded safely.
        OSError: a file is missing or unreadable.
    """
    config = read_config(folder)
    check_config(config)
    build_kwargs = loading_kwargs(config["arch"], config.get("arch_kwargs") or {})
    check_weights(config["arch"], build_kwargs, Path(folder) / SAFETENSORS_SINGLE_FILE)
    return config
