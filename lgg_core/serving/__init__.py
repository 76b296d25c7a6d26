"""Serving: Hub-format artifacts, push/pull, the model catalog and prediction through PyTorch or ONNX Runtime.

May import :mod:`lgg_core.data` and :mod:`lgg_core.models`.
"""
from lgg_core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "load_artifact": "artifacts",
    "write_artifact": "artifacts",
    "CatalogEntry": "catalog",
    "load_catalog": "catalog",
    "resolve_entry": "catalog",
    "pick_device": "device",
    "HubError": "hub",
    "pull": "hub",
    "push": "hub",
    "predict": "inference",
    "export_artifact": "onnx_backend",
    "load_predictor": "onnx_backend",
    "ModelRecord": "records",
    "resolve_models": "records",
})
