"""Compare and explain brain-MRI tumor segmentation models on the LGG MRI Segmentation dataset.

The names below are the public API that scripts and model cards use; they are imported on first use, so
``import lgg_core`` is cheap and does not import torch. Subpackages, one per concern:

- :mod:`lgg_core.data`: reading and validating ``kaggle_3m``, the decoded cache, patient-level splits, transforms,
  uploads.
- :mod:`lgg_core.models`: the architecture registry and the Hub-format ``LGGModel``.
- :mod:`lgg_core.serving`: artifacts, the Hub, the catalog, prediction through PyTorch or ONNX Runtime.
- :mod:`lgg_core.explain`: class-activation maps.
- :mod:`lgg_core.evaluation`: metrics, evaluation tables, failure cases, the leaderboard.
- :mod:`lgg_core.training`: the training loop and its checkpoints.
- :mod:`lgg_core.app`: the dashboard's Streamlit state and image overlays.
"""
import os

from lgg_core._lazy import lazy_exports

# Thread policy (docs/architecture.md, "Threads and memory"): OpenMP threads that busy-wait between parallel regions make two PyTorch
# processes on the same cores 2-30x slower each. libgomp reads this once, when torch loads it, so it is set here,
# before any entry point (app, CLI, training, benchmarks) imports torch; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "DatasetError": "data.reader",
    "LGGData": "data.cache",
    "load_dataset": "data.cache",
    "make_folds": "data.splits",
    "create_model": "models",
    "list_models": "models",
    "model_info": "models",
    "LGGModel": "models",
    "load_artifact": "serving.artifacts",
    "load_predictor": "serving.onnx_backend",
    "predict": "serving.inference",
    "pull": "serving.hub",
    "push": "serving.hub",
    "evaluate": "evaluation.evaluator",
    "TrainConfig": "training.trainer",
    "train": "training.trainer",
})
