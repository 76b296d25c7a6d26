"""``LGGModel``: any registered model wrapped for saving to / loading from a folder or the Hugging Face Hub.

An artifact is ``config.json`` (``arch``, ``arch_kwargs`` and any extra keys such as training
metadata), ``model.safetensors`` and a ``README.md`` model card. Loading reads safetensors only,
so nothing is ever unpickled.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.constants import CONFIG_NAME, SAFETENSORS_SINGLE_FILE
from safetensors.torch import load_file, save_file
from torch import nn

from .registry import create_model, get_entry


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
        model = cls(**model_kwargs)
        # load_state_dict copies into the existing float32 parameters, so fp16 files come back as float32.
        model.load_state_dict(load_file(weights_file), strict=strict)
        return model.to(map_location).eval()


def read_config(path_or_repo_id: str | Path, revision: str | None = None) -> dict:
    """Return the whole ``config.json`` of a saved model folder or Hub repo, extra keys included."""
    if os.path.isdir(path_or_repo_id):
        config_file = os.path.join(path_or_repo_id, CONFIG_NAME)
    else:
        config_file = hf_hub_download(str(path_or_repo_id), CONFIG_NAME, revision=revision)
    return json.loads(Path(config_file).read_text())
