"""Measure a device's peaks for the roofline: a large matrix multiply (FLOP/s) and a large copy (bytes/s)."""

from __future__ import annotations

import time

import torch


def _best(fn, device: torch.device, repeat: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def measure_peaks(device: torch.device, dtype: torch.dtype = torch.float32) -> tuple[float, float, str]:
    """(FLOP/s, bytes/s, how): an n x n matmul (2n^3 FLOPs) and a copy of a large tensor (read + write)."""
    n = 4096 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    flops = 2 * n**3 / _best(lambda: torch.mm(a, b), device)
    elements = (256 if device.type == "cuda" else 32) * 2**20
    src = torch.empty(elements, device=device, dtype=dtype)
    dst = torch.empty_like(src)
    moved = 2 * elements * src.element_size() / _best(lambda: dst.copy_(src), device)
    how = f"measured: {n}x{n} matmul and a {elements * src.element_size() // 2**20} MiB copy on {device}, best of 5"
    return flops, moved, how
