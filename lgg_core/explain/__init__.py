"""Explanations: class-activation maps (pytorch-grad-cam) and how much of them falls on the tumor; TTA uncertainty.

May import :mod:`lgg_core.data` and :mod:`lgg_core.models`.
"""
from lgg_core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "CAM_METHODS": "cam",
    "ExplainError": "cam",
    "Explanation": "cam",
    "energy_inside": "cam",
    "describe_layer": "cam",
    "explain": "cam",
    "layer_options": "cam",
    "road_faithfulness": "cam",
    "tta_uncertainty": "uncertainty",
    "uncertainty_vs_dice": "uncertainty",
})
