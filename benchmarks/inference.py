"""CPU inference speed: PyTorch eager vs ONNX Runtime on the same model, batch 1 and 16, in one run.

Times the app's whole prediction path (normalize, resize, forward, sigmoid) on random uint8 slices and prints
ms per slice and the PyTorch / ONNX Runtime ratio. Both backends get the same thread count (torch's, which follows
``OMP_NUM_THREADS``). The artifact is copied to a temporary folder, so nothing is written beside the shipped weights.

Examples:
    OMP_NUM_THREADS=2 python benchmarks/inference.py artifacts/unet-mini
    python benchmarks/inference.py --arch unet-mobilenetv2      # random weights, no artifact needed
"""
from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lgg_core.models import LGGModel, get_entry
from lgg_core.serving.onnx_backend import OnnxPredictor, TorchPredictor, export_artifact

BATCHES = (1, 16)


def _prepare(args: argparse.Namespace, workdir: Path) -> Path:
    """An artifact folder in ``workdir`` with model.onnx: a copy of ``args.artifact`` or a random ``args.arch``."""
    folder = workdir / "model"
    if args.artifact:
        folder.mkdir()
        for name in ("config.json", "model.safetensors"):
            shutil.copy2(Path(args.artifact) / name, folder / name)
    else:
        config = {"task": get_entry(args.arch).task, "training": {"input_size": args.size}}
        LGGModel(args.arch).save_pretrained(folder, config=config)
    export_artifact(folder)
    return folder


def _ms_per_slice(predictor: OnnxPredictor | TorchPredictor, images: np.ndarray, repeats: int) -> float:
    predictor.predict(images, batch_size=len(images))  # warm-up: allocations, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(images, batch_size=len(images))
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / len(images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("artifact", nargs="?", help="artifact folder")
    source.add_argument("--arch", help="registry name, random weights")
    parser.add_argument("--size", type=int, default=256, help="input size with --arch (default: 256)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per batch size; the median counts")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as workdir:
        folder = _prepare(args, Path(workdir))
        backends = {"pytorch": TorchPredictor(folder, device="cpu"), "onnxruntime": OnnxPredictor(folder)}
        config = backends["pytorch"].config
        print(f"model {config['arch']} ({args.artifact or 'random weights'}), task {config['task']}, "
              f"input {backends['onnxruntime'].input_size}px, {torch.get_num_threads()} threads, "
              f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
        print(f"{'batch':>5}  {'pytorch ms/slice':>16}  {'onnxruntime ms/slice':>20}  {'pytorch/onnx':>12}")
        for batch in BATCHES:
            images = rng.integers(0, 256, (batch, 256, 256, 3), dtype=np.uint8)
            ms = {name: _ms_per_slice(p, images, args.repeats) for name, p in backends.items()}
            print(f"{batch:>5}  {ms['pytorch']:>16.2f}  {ms['onnxruntime']:>20.2f}  "
                  f"{ms['pytorch'] / ms['onnxruntime']:>11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
