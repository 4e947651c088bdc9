"""Per-layer forward time on a real device: hooks around every layer with a formula."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from archcalc.analysis.counting import module_counter


def layer_times(model: nn.Module, x: torch.Tensor, repeat: int = 5) -> dict[str, float]:
    """Median seconds per layer call, labelled as the tables label them, synchronising on CUDA."""
    cuda = x.device.type == "cuda"
    names = {id(m): n for n, m in model.named_modules()}
    starts: dict[int, float] = {}
    samples: dict[str, list[float]] = {}
    layers = [m for m in model.modules() if module_counter(m) is not None]

    def before(module, args):
        if cuda:
            torch.cuda.synchronize(x.device)
        starts[id(module)] = time.perf_counter()

    def after(module, args, output):
        if cuda:
            torch.cuda.synchronize(x.device)
        samples.setdefault(names[id(module)], []).append(time.perf_counter() - starts.pop(id(module)))

    handles = [h for m in layers for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    try:
        with torch.inference_mode():
            model(x)  # warm-up
            samples.clear()
            for _ in range(repeat):
                model(x)
    finally:
        for handle in handles:
            handle.remove()
    # A module called k times per pass leaves k samples per pass, in call order: the i-th call of a
    # pass is labelled as the tables label it, "name" then "name (2)", "name (3)", ...
    times: dict[str, float] = {}
    for name, values in samples.items():
        calls = len(values) // repeat
        for i in range(calls):
            label = name if i == 0 else f"{name} ({i + 1})"
            times[label] = statistics.median(values[i::calls])
    return times
