"""The CPU serving paths of one artifact side by side: what ``lgg export-onnx`` measures to choose the served path.

    OMP_NUM_THREADS=2 python benchmarks/serving_paths.py artifacts/unet --data-dir /path/to/kaggle_3m [--rounds 15]

Copies the artifact (weights, config, split) to a temporary folder, exports model.onnx, quantizes model.int8.onnx on
training slices, checks bf16 and int8 against fp32 on the held-out patients, then times every path at batch 1
through the app's whole prediction path (uint8 slice in, 256² probabilities out), interleaved round by round so that
load changes hit every path alike: :func:`lgg_core.evaluation.serving_choice.choose_serving_path`. Prints the
median ms per slice with the min–max over rounds, the ratio to PyTorch eager fp32, the held-out quality difference
(mean per-patient Dice for segmenters) and the path the export would serve, with the load average before and after.
Nothing is written beside the artifact.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lgg_core.data.cache import load_dataset
from lgg_core.data.reader import DATA_DIR_ENV
from lgg_core.evaluation.serving_choice import choose_serving_path, record_table
from lgg_core.serving.onnx_backend import export_artifact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("artifact", help="artifact folder (read only; a copy is measured)")
    parser.add_argument("--data-dir", default=os.environ.get(DATA_DIR_ENV),
                        help="kaggle_3m with the artifact's patients; without it only fp32 paths qualify")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds (median, min-max)")
    parser.add_argument("--calls", type=int, default=3, help="batch-1 predictions per path and round")
    args = parser.parse_args(argv)

    data = load_dataset(args.data_dir, progress=False) if args.data_dir else None
    with tempfile.TemporaryDirectory() as workdir:
        folder = Path(workdir) / Path(args.artifact).name
        folder.mkdir()
        for name in ("config.json", "model.safetensors", "split.json"):
            shutil.copy2(Path(args.artifact) / name, folder / name)
        export_artifact(folder)
        start = time.perf_counter()
        record = choose_serving_path(folder, data, rounds=args.rounds, calls_per_round=args.calls)
        seconds = time.perf_counter() - start
    host, quality, load = record["host"], record["quality"], record["load_average"]
    print(f"{args.artifact}: {host['cpu']} ({', '.join(host['cpu_flags'])}), {record['threads']} thread(s), "
          f"torch {host['torch']}, onnxruntime {host['onnxruntime']}")
    print(f"batch 1, {record['rounds']} interleaved rounds x {record['calls_per_round']} calls; quality on "
          f"{quality['patients']} held-out patients (tolerance {quality['tolerance']}); {seconds:.0f} s in all")
    print(f"load average before {' '.join(f'{v:.2f}' for v in load['before'])}, "
          f"after {' '.join(f'{v:.2f}' for v in load['after'])}; {os.cpu_count()} CPUs")
    print(record_table(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
