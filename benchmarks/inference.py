"""CPU inference speed: PyTorch eager vs ONNX Runtime fp32 on the same model, batch 1 and 16, side by side.

Times the app's whole prediction path (normalize, resize, forward, sigmoid) on random uint8 slices. The backends are
interleaved call by call, their order alternating from round to round, so that a load change on a shared machine
hits both alike; prints the median ms per slice with the min–max over rounds, the PyTorch / ONNX Runtime ratio of
the medians, and the load average before and after. Both backends get the same thread count (torch's, which follows
``OMP_NUM_THREADS``). The artifact is copied to a temporary folder, so nothing is written beside the shipped weights.
For the int8 and bf16 paths and held-out quality, see ``benchmarks/serving_paths.py``.

Examples:
    OMP_NUM_THREADS=2 python benchmarks/inference.py artifacts/unet-mini
    python benchmarks/inference.py --arch unet-mobilenetv2      # random weights, no artifact needed
"""
from __future__ import annotations

import argparse
import os
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


Predictor = OnnxPredictor | TorchPredictor


def _interleaved_ms(backends: dict[str, Predictor], images: np.ndarray, rounds: int) -> dict[str, list[float]]:
    """ms per slice of every backend in every round, backends alternating their order round by round."""
    for predictor in backends.values():
        predictor.predict(images, batch_size=len(images))  # warm-up: allocations, kernel selection
    ms: dict[str, list[float]] = {name: [] for name in backends}
    for r in range(rounds):
        for name in (list(backends) if r % 2 == 0 else list(reversed(backends))):
            start = time.perf_counter()
            backends[name].predict(images, batch_size=len(images))
            ms[name].append(1000 * (time.perf_counter() - start) / len(images))
    return ms


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("artifact", nargs="?", help="artifact folder")
    source.add_argument("--arch", help="registry name, random weights")
    parser.add_argument("--size", type=int, default=256, help="input size with --arch (default: 256)")
    parser.add_argument("--rounds", type=int, default=15,
                        help="timed calls per backend and batch size, interleaved (default: 15)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as workdir:
        folder = _prepare(args, Path(workdir))
        backends = {"pytorch": TorchPredictor(folder, device="cpu"), "onnxruntime": OnnxPredictor(folder)}
        config = backends["pytorch"].config
        print(f"model {config['arch']} ({args.artifact or 'random weights'}), task {config['task']}, "
              f"input {backends['onnxruntime'].input_size}px, {torch.get_num_threads()} threads, "
              f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
        print(f"load average before: {os.getloadavg()[0]:.1f}; ms per slice, median (min–max) of {args.rounds}")
        print("| batch | PyTorch | ONNX Runtime | PyTorch / ORT |\n|---:|---:|---:|---:|")
        for batch in BATCHES:
            images = rng.integers(0, 256, (batch, 256, 256, 3), dtype=np.uint8)
            ms = _interleaved_ms(backends, images, args.rounds)
            ratio = statistics.median(ms["pytorch"]) / statistics.median(ms["onnxruntime"])
            print(f"| {batch} | {_cell(ms['pytorch'])} | {_cell(ms['onnxruntime'])} | {ratio:.2f}x |")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
