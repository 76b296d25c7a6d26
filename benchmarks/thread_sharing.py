"""Two inference processes sharing the CPU: speed of each relative to running alone, per OpenMP wait policy.

    python benchmarks/thread_sharing.py [--arch unet-mini] [--threads 2] [--seconds 6] [--repeats 3]

Each worker is a separate process running batch-1 forward passes at 256² for ``--seconds`` with ``--threads`` torch
threads. For each policy the script times one worker alone, then two at once, and repeats the pair interleaved, so
both policies see the same machine noise. ``PASSIVE`` is what ``import lgg_core`` sets (docs/architecture.md, "Threads and memory");
``ACTIVE`` is what OpenMP runtimes may do otherwise (busy-wait between parallel regions). Prints medians with the
min–max and the load average before the run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

POLICIES = ("ACTIVE", "PASSIVE")


def worker(arch: str, seconds: float) -> None:
    """Print forward passes per second of ``arch`` on one random 256² slice."""
    import torch

    from lgg_core.models import create_model

    net = create_model(arch).eval()
    x = torch.randn(1, 3, 256, 256)
    with torch.inference_mode():
        net(x)  # warm-up: first-call allocations
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            net(x)
            count += 1
    print(count / (time.perf_counter() - start))


def run(policy: str, n: int, args: argparse.Namespace) -> list[float]:
    """Start ``n`` workers at once under ``policy``; their rates (passes per second)."""
    env = {**os.environ, "OMP_WAIT_POLICY": policy, "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, "--worker", "--arch", args.arch, "--seconds", str(args.seconds)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    return [float(p.communicate()[0]) for p in procs]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="unet-mini")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.arch, args.seconds)
        return
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} CPUs; "
          f"{args.arch}, batch 1 at 256², {args.threads} threads per process, {args.repeats} repeats")
    solo = {p: [] for p in POLICIES}
    shared = {p: [] for p in POLICIES}
    for _ in range(args.repeats):
        for policy in POLICIES:
            solo[policy] += run(policy, 1, args)
            shared[policy] += run(policy, 2, args)
    print("| OpenMP wait policy | alone (passes/s) | each of two at once (passes/s) | shared / alone |")
    print("|---|---:|---:|---:|")
    for policy in POLICIES:
        ratio = statistics.median(shared[policy]) / statistics.median(solo[policy])
        print(f"| {policy} | {spread(solo[policy])} | {spread(shared[policy])} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
