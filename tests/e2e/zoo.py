"""A tiny model zoo for the app tests: real artifacts trained for two batches on the bundled demo set.

They are built through the public API (``lgg_core.training.trainer.train``, ``lgg_core.evaluation.evaluator.evaluate``), so the tests
never depend on the shipped zoo, and listed in a catalog that also holds the broken entries the app must survive.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from lgg_core.serving.records import DEMO_DIR
from lgg_core.data.cache import load_dataset
from lgg_core.evaluation.evaluator import evaluate
from lgg_core.training.trainer import TrainConfig, train

SPECS = {
    "cnn-encdec": {"arch": "cnn-encdec", "arch_kwargs": {"base_width": 8}},
    "unet-mini": {"arch": "unet-mini", "arch_kwargs": {"base_width": 4}},
    "resnet18": {"arch": "resnet18", "input_size": 64, "crop": None},
    # Takes FLAIR of each slice and its neighbours: the pages must build that input, and Upload say what it gets.
    "unet-mini-2.5d": {"arch": "unet-mini", "arch_kwargs": {"base_width": 4}, "inputs": "flair-2.5d"},
}
CATALOG = """
[[model]]
name = "cnn-encdec"
path = "cnn-encdec"

[[model]]
name = "unet-mini"
path = "unet-mini"

[[model]]
name = "resnet18"
path = "resnet18"

[[model]]
name = "unet-mini-2.5d"
path = "unet-mini-2.5d"

[[model]]
name = "not-evaluated"
path = "not-evaluated"

[[model]]
name = "not-trained-yet"
path = "not-trained-yet"

[[model]]
name = "from-the-hub"
repo_id = "someone/lgg-unet"
revision = "main"
"""


def build_tiny_zoo(root: Path) -> Path:
    """Train and evaluate the tiny models under ``root`` (once) and return the catalog file listing them."""
    catalog = root / "models.toml"
    if catalog.is_file():
        return catalog
    data = load_dataset(DEMO_DIR, progress=False)
    for name, spec in SPECS.items():
        # k=3 on the 3 demo patients: one test, one validation and one training patient.
        cfg = TrainConfig(**spec, k=3, epochs=1, batch_size=8, limit_train_batches=2, mixed_precision=False,
                          device="cpu")
        train(cfg, data, root / name, run_dir=root / "runs" / name, resume=False, progress=False)
        evaluate(root / name, data)
    shutil.copytree(root / "cnn-encdec", root / "not-evaluated", ignore=shutil.ignore_patterns("eval"))
    catalog.write_text(CATALOG)
    return catalog
