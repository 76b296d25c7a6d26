"""Model zoo: every architecture of the comparison behind one registry, plus the Hub-ready ``LGGModel``.

Importing this package registers all models.
"""
from __future__ import annotations

from . import attention_unet, baselines, classifiers, segnet, smp_models, unet  # noqa: F401  (register models)
from .composite import EMPTY_LOGIT, GatedSegmenter, MajorityVote, assemble, composite_kwargs
from .hub_model import ArtifactError, LGGModel, check_artifact, check_config, read_config
from .registry import (
    TASKS,
    ModelEntry,
    count_parameters,
    create_model,
    get_entry,
    list_models,
    model_info,
    register_model,
)
from .transfer import init_encoder_from_classifier, init_from_artifact

__all__ = [
    "ArtifactError",
    "EMPTY_LOGIT",
    "TASKS",
    "GatedSegmenter",
    "LGGModel",
    "MajorityVote",
    "ModelEntry",
    "assemble",
    "check_artifact",
    "check_config",
    "composite_kwargs",
    "count_parameters",
    "create_model",
    "get_entry",
    "init_encoder_from_classifier",
    "init_from_artifact",
    "list_models",
    "model_info",
    "read_config",
    "register_model",
]
