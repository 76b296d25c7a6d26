"""Training throughput on this machine: a naive fp32 loop vs the optimised CPU loop, side by side in one run.

The optimised loop is what ``python -m train`` does on a CPU: channels_last memory format and bf16 autocast
(when the CPU has native bf16). Both loops train the same model on the same batches; their steps are interleaved
so that machine noise hits both alike, and the table reports images/s and the ratio.

    python benchmarks/train_throughput.py --models unet-mini,unet-mobilenetv2 --size 128 --steps 8
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from lgg_core.serving.device import autocast, cpu_has_fast_bf16
from lgg_core.models import create_model


def step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, fast: bool) -> float:
    """One training step; returns its wall time in seconds."""
    start = time.perf_counter()
    if fast:
        x = x.to(memory_format=torch.channels_last)
    with autocast(torch.device("cpu"), enabled=fast):
        logits = model(x)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - start


def measure(name: str, size: int, batch: int, steps: int, warmup: int) -> dict[str, float]:
    torch.manual_seed(0)
    naive = create_model(name)
    fast = copy.deepcopy(naive).to(memory_format=torch.channels_last)
    opts = {False: torch.optim.AdamW(naive.parameters()), True: torch.optim.AdamW(fast.parameters())}
    models = {False: naive, True: fast}
    x = torch.randn(batch, 3, size, size)
    y = (torch.rand(batch, 1, size, size) > 0.9).float()
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(warmup + steps):
        for mode in (False, True) if i % 2 == 0 else (True, False):
            t = step(models[mode], opts[mode], x, y, mode)
            if i >= warmup:
                times[mode].append(t)
    naive_ips = batch / statistics.median(times[False])
    fast_ips = batch / statistics.median(times[True])
    return {"naive": naive_ips, "fast": fast_ips, "ratio": fast_ips / naive_ips}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="unet-mini,unet-mobilenetv2")
    p.add_argument("--size", type=int, default=128, help="crop size (training uses 128)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=8, help="timed steps per loop (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {cpu_has_fast_bf16()}, "
          f"batch {args.batch} at {args.size}x{args.size}, median of {args.steps} steps\n")
    print("| model | naive fp32 (img/s) | channels_last + bf16 (img/s) | ratio |\n|---|---|---|---|")
    for name in args.models.split(","):
        r = measure(name, args.size, args.batch, args.steps, args.warmup)
        print(f"| {name} | {r['naive']:.1f} | {r['fast']:.1f} | {r['ratio']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
