"""Device and precision choices shared by training and inference."""
from __future__ import annotations

import contextlib
import ctypes
import platform
from functools import cache
from pathlib import Path

import torch


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then CPU; any other value is passed to :class:`torch.device`."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@cache
def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 math (AVX512-BF16 or AMX), where bf16 autocast beats fp32 (see benchmarks)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Mixed precision for ``device``: bf16 on CPUs that have it and on recent GPUs, fp16 on older GPUs."""
    if not enabled:
        return contextlib.nullcontext()
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@cache
def retain_freed_memory() -> bool:
    """Have glibc keep freed buffers for reuse instead of handing them back to the OS; True where it applied.

    glibc serves large blocks (above its mmap threshold, at most 32 MB) with fresh mappings and unmaps them on free,
    so every batch of a long inference loop faults its activation buffers in again: half of ``lgg evaluate``'s time
    went to page faults. With both thresholds at 1 GiB the buffers stay in the heap and are reused; the process keeps
    its peak memory instead of shrinking between batches. Outputs are unchanged.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
