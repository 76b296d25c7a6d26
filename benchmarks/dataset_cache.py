"""Dataset load times: decoding every slice vs computing the cache key vs a first and a second ``load_dataset``.

    OMP_NUM_THREADS=1 python benchmarks/dataset_cache.py /path/to/kaggle_3m [--repeats 3]

Each first load starts from an empty temporary cache folder (decode + write the cache folder); second loads map that
cache. The files are read once before timing, so every row runs on a warm OS page cache: the numbers compare CPU
cost, not disk speed (a cache hit is then served from memory too). Prints the median of ``--repeats`` runs per row.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lgg_core.data.cache import fingerprint, load_dataset
from lgg_core.data.reader import find_root, scan


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def first_load(root: Path) -> None:
    with tempfile.TemporaryDirectory() as cache_dir:
        load_dataset(root, cache_dir=cache_dir, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", help="kaggle_3m folder or a parent of it")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = find_root(args.data_dir)
    index = scan(root)
    files = [root / p for p in index[["image", "mask"]].to_numpy().ravel()]
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    for f in files:  # warm the page cache so the first timed row is not the only one paying for the disk
        f.read_bytes()
    rows = [
        ("scan (list and name-check files)", lambda: scan(root)),
        ("cache key (fingerprint)", lambda: fingerprint(root, index)),
        ("decode all slices, no cache", lambda: load_dataset(root, use_cache=False, progress=False)),
        ("first load (decode + write cache)", lambda: first_load(root)),
    ]
    with tempfile.TemporaryDirectory() as cache_dir:
        load_dataset(root, cache_dir=cache_dir, progress=False)
        rows.append(("second load (cache hit)", lambda: load_dataset(root, cache_dir=cache_dir, progress=False)))
        # A hit maps the arrays without reading them: this row pays for reading every slice once.
        rows.append(("second load, then every slice read", lambda: int(
            load_dataset(root, cache_dir=cache_dir, progress=False).images.sum(dtype=np.uint64))))
        results = [(name, median_seconds(run, args.repeats)) for name, run in rows]
    print(f"{root}: {len(index)} slices, {len(files)} files, {megabytes:.0f} MB; median of {args.repeats} runs\n")
    print("| step | seconds |\n|---|---:|")
    for name, seconds in results:
        print(f"| {name} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
