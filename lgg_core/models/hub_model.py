"""``LGGModel``: any registered model wrapped for saving to / loading from a folder or the Hugging Face Hub.

An artifact is ``config.json`` (``arch``, ``arch_kwargs`` and any extra keys such as training
metadata), ``model.safetensors`` and a ``README.md`` model card. Loading reads safetensors only,
so nothing is ever unpickled.

A saved artifact is untrusted input (a catalog entry, a Hub repo): loading checks its config against the registry
(known keys only, pretrained downloads forced off, bounded input size) and the weights file's header against the
model before anything is allocated, so an artifact can neither reach the network nor make the host build something
huge.

Weights are stored as float32, float16, or int8 per channel (``weights_dtype=torch.int8``): every floating tensor
with two or more dimensions (conv and linear weights) becomes int8 rows along dim 0 with one float32 scale per row,
stored as the tensor ``<key>::scale``; 1-D tensors (biases, BatchNorm) are float16 and integer buffers stay as they
are. The file's metadata names the scheme, and loading dequantizes into the float32 model.
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
from safetensors.torch import save_file
from torch import nn

from .registry import create_model, get_entry

MAX_CONFIG_BYTES = 1_000_000
MAX_PARAMS = 150_000_000  # the largest registry model (the classifier ensemble) has 56M
INPUT_SIZES = (32, 512)  # training.input_size bounds: the slices are 256², inference memory grows with its square
# Builder arguments that download weights; a saved artifact brings its own, so they are always off when loading.
_DOWNLOAD_OFF = {"encoder_weights": None, "pretrained": False}
# safetensors metadata key naming how the weights are stored; absent for plain float files.
QUANTIZATION_KEY = "lgg_quantization"
INT8_PER_CHANNEL = "int8-per-channel"
SCALE_SUFFIX = "::scale"  # no registry module has ":" in its name, so "<key>::scale" is never a model's own key
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
                file; ``torch.int8`` stores int8 per channel, see :func:`save_weights`); integer buffers are left
                alone.
            model_card_kwargs: Passed to the model card template.
        """
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        save_weights(self.state_dict(), save_directory / SAFETENSORS_SINGLE_FILE, weights_dtype)
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
        model.load_state_dict(load_weights(weights_file), strict=strict)
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


def _kind(dtype: str | torch.dtype) -> str:
    """``"float"``, ``"int8"`` or ``"int"``: what a stored tensor must be, whatever its width (a safetensors dtype
    name such as ``"F16"`` or a torch dtype)."""
    if isinstance(dtype, torch.dtype):
        return "float" if dtype.is_floating_point else "int8" if dtype == torch.int8 else "int"
    return "float" if dtype.startswith("F") or dtype == "BF16" else "int8" if dtype == "I8" else "int"


def _is_quantized(t: torch.Tensor) -> bool:
    """Whether int8 per channel stores ``t`` as int8 rows: floating with two or more dimensions (conv, linear)."""
    return t.is_floating_point() and t.ndim >= 2


def _scheme(metadata: dict[str, str] | None, weights_file: str | Path) -> str | None:
    """The quantization a weights file's metadata declares (None: plain floats).

    Raises:
        ArtifactError: a scheme this version cannot read.
    """
    scheme = (metadata or {}).get(QUANTIZATION_KEY)
    if scheme not in (None, INT8_PER_CHANNEL):
        raise ArtifactError(f"{weights_file} declares {QUANTIZATION_KEY}={scheme!r}; "
                            f"only plain float weights and {INT8_PER_CHANNEL!r} can be loaded")
    return scheme


def storage_layout(state: dict[str, torch.Tensor], scheme: str | None) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The (kind, shape) of every tensor a weights file of ``state`` holds under ``scheme`` (see :func:`_kind`).

    Only shapes and dtypes are read, so ``state`` may live on the meta device.
    """
    layout = {}
    for key, t in state.items():
        if scheme == INT8_PER_CHANNEL and _is_quantized(t):
            layout[key] = ("int8", tuple(t.shape))
            layout[key + SCALE_SUFFIX] = ("float", (t.shape[0],))
        else:
            layout[key] = (_kind(t.dtype), tuple(t.shape))
    return layout


def quantize_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row along dim 0 (the output channel of conv and linear weights, the input channel of
    transposed convs).

    Returns:
        (int8 tensor of ``t``'s shape, float32 scale per row); ``q * scale`` is within half a scale of ``t``.

    Raises:
        ValueError: ``t`` holds NaN or infinite values.
    """
    rows = t.detach().float().reshape(t.shape[0], -1)
    if not torch.isfinite(rows).all():
        raise ValueError("cannot quantize non-finite weights")
    scale = rows.abs().amax(dim=1) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row is exact with any scale
    q = torch.round(rows / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(t.shape), scale


def save_weights(state: dict[str, torch.Tensor], path: str | Path, weights_dtype: torch.dtype | None = None) -> None:
    """Write a state dict to a safetensors file, floating tensors stored as ``weights_dtype`` (None: as they are).

    ``torch.int8`` means int8 per channel: floating tensors of two or more dimensions become int8 rows with a float32
    scale each (``<key>::scale``, see :func:`quantize_rows`), other floating tensors float16; the metadata records
    the scheme. Integer buffers are always left alone.

    Raises:
        ValueError: ``weights_dtype`` is neither floating nor ``torch.int8``, or a tensor to quantize is not finite.
    """
    if weights_dtype is not None and not (weights_dtype.is_floating_point or weights_dtype == torch.int8):
        raise ValueError(f"weights_dtype must be a floating dtype or torch.int8, got {weights_dtype}")
    int8 = weights_dtype == torch.int8
    tensors, metadata = {}, {"format": "pt"}
    for key, t in state.items():
        if int8 and _is_quantized(t):
            tensors[key], tensors[key + SCALE_SUFFIX] = quantize_rows(t)
        elif weights_dtype is not None and t.is_floating_point():
            tensors[key] = t.to(torch.float16 if int8 else weights_dtype)
        else:
            tensors[key] = t
    if int8:
        metadata[QUANTIZATION_KEY] = INT8_PER_CHANNEL
    save_file({key: t.contiguous() for key, t in tensors.items()}, str(path), metadata=metadata)


def stored_quantization(weights_file: str | Path) -> str | None:
    """The quantization scheme of a weights file (``"int8-per-channel"``), or None for plain float weights.

    Raises:
        ArtifactError: not a readable safetensors file, or a scheme this version cannot read.
    """
    try:
        with safe_open(str(weights_file), framework="pt") as f:
            metadata = f.metadata()
    except (SafetensorError, OSError) as err:
        raise ArtifactError(f"{weights_file} is not a readable safetensors file: {err}") from None
    return _scheme(metadata, weights_file)


def load_weights(weights_file: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a safetensors weights file; int8-per-channel tensors come back dequantized to float32.

    Check the header first (:func:`check_weights`): this reads every tensor.

    Raises:
        ArtifactError: an unknown scheme, or an int8 tensor without a scale of one value per row, or a scale
            without its tensor.
    """
    with safe_open(str(weights_file), framework="pt") as f:
        scheme = _scheme(f.metadata(), weights_file)
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    if scheme is None:
        return tensors
    state = {}
    for key, t in tensors.items():
        if key.endswith(SCALE_SUFFIX):
            base = tensors.get(key.removesuffix(SCALE_SUFFIX))
            if base is None or base.dtype != torch.int8:
                raise ArtifactError(f"{weights_file}: scale {key} belongs to no int8 tensor")
            continue
        if t.dtype != torch.int8:
            state[key] = t
            continue
        # check_weights compares this with the model; a builder it cannot run on the meta device relies on this.
        scale = tensors.get(key + SCALE_SUFFIX)
        if t.ndim < 2 or scale is None or not scale.is_floating_point() or tuple(scale.shape) != (t.shape[0],):
            raise ArtifactError(f"{weights_file}: int8 tensor {key} {tuple(t.shape)} needs a floating "
                                f"{key + SCALE_SUFFIX} of shape ({t.shape[0] if t.ndim else '?'},)")
        state[key] = t.float() * scale.float().reshape(-1, *[1] * (t.ndim - 1))
    return state


def check_weights(arch: str, build_kwargs: dict[str, Any], weights_file: str | Path) -> None:
    """Compare the safetensors header with the model ``arch`` would build, before allocating either.

    Each tensor must have the model's shape and kind (float, or int8 with a per-row scale in an int8-per-channel
    file; see :func:`storage_layout`).

    Raises:
        ArtifactError: not a safetensors file (a pickle, truncated), an unknown quantization, too many parameters,
            or tensors that do not match the model's.
    """
    try:
        with safe_open(str(weights_file), framework="pt") as f:
            metadata = f.metadata()
            header = {}
            for key in f.keys():
                tensor = f.get_slice(key)
                header[key] = (_kind(tensor.get_dtype()), tuple(tensor.get_shape()))
    except (SafetensorError, OSError) as err:
        raise ArtifactError(f"{weights_file} is not a readable safetensors file: {err}") from None
    scheme = _scheme(metadata, weights_file)
    n_params = sum(int(torch.Size(shape).numel()) for _, shape in header.values())
    if n_params > MAX_PARAMS:
        raise ArtifactError(f"{weights_file} holds {n_params:,} values; at most {MAX_PARAMS:,} are loaded")
    try:
        # The meta device allocates nothing, so even a config asking for a huge network costs no memory here.
        with torch.device("meta"):
            expected = storage_layout(LGGModel(arch, build_kwargs).state_dict(), scheme)
    except (RuntimeError, NotImplementedError):
        return  # a builder that reads tensor values (smp's MiT); the size bound above still holds
    except (TypeError, ValueError) as err:
        raise ArtifactError(f"cannot build {arch} with {build_kwargs}: {err}") from None
    if header != expected:
        unexpected, missing = sorted(set(header) - set(expected)), sorted(set(expected) - set(header))
        wrong = [k for k in sorted(set(header) & set(expected)) if header[k] != expected[k]]
        problems = ([f"unexpected tensors {', '.join(unexpected[:3])}"] if unexpected else []) + (
            [f"missing tensors {', '.join(missing[:3])}"] if missing else []) + [
            f"{k} is {' '.join(map(str, header[k]))} in the file, {' '.join(map(str, expected[k]))} in the model"
            for k in wrong[:3]]
        stored = f" stored {scheme}" if scheme else ""
        raise ArtifactError(f"{weights_file} does not match {arch} {build_kwargs}{stored}: {'; '.join(problems)}")


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
