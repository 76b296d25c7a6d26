"""Evaluation: per-slice and per-patient metrics, calibration, the evaluation of an artifact, failure cases, the
leaderboard, paired tests between models (``stats``), and int8 weights kept only where the held-out scores
hold (``quantize``).

May import :mod:`lgg_core.data`, :mod:`lgg_core.models`, :mod:`lgg_core.serving` and :mod:`lgg_core.explain`.
"""
from lgg_core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "ReliabilityStats": "calibration",
    "evaluate": "evaluator",
    "failure_cases": "failures",
    "markdown_tables": "leaderboard",
    "batch_slice_metrics": "metrics",
    "bootstrap_ci": "metrics",
    "slice_metrics": "metrics",
    "volume_dice": "metrics",
    "quantize_artifact": "quantize",
    "holm": "stats",
    "largest_differences": "stats",
    "most_different_slices": "stats",
    "pairwise": "stats",
    "pairs_markdown": "stats",
    "patient_values": "stats",
})
