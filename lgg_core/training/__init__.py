"""Training: any registry entry on one patient-level fold, with resumable safetensors checkpoints.

May import every other subpackage except :mod:`lgg_core.app`.
"""
from lgg_core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "TrainConfig": "trainer",
    "train": "trainer",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
})
