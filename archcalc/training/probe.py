"""Measure the peak memory of one real training step, in a fresh process.

    python -m archcalc.training.probe MODEL BATCH OPTIMIZER DTYPE DEVICE [CxHxW]

Prints one JSON object: {"peak_bytes", "method"}. On CUDA the peak is
torch.cuda.max_memory_allocated over the step. On CPU it is the growth of the process's peak
resident set size from just before the step (model and input in memory) to
just after it (forward, backward, optimizer step): the memory the step itself needed. The peak is
the process's VmHWM, reset just before the step through /proc/self/clear_refs (getrusage's ru_maxrss
would carry over the peak of the parent the probe was forked from).
"""

from __future__ import annotations

import ctypes
import gc
import json
import resource
import sys

import torch

from archcalc.analysis.engine import build, entry_shape, resolve_dtype
from archcalc.models.user import lookup


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    """The process's own high-water mark (VmHWM). Unlike getrusage's ru_maxrss, which a child
    inherits from the parent it was forked from, it starts afresh with the process."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> None:
    """Lower the high-water mark to the current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def _step(model, make_optimizer, x) -> None:
    opt = make_optimizer(model.parameters())
    out = model(x)
    (out[0] if isinstance(out, tuple) else out).float().sum().backward()
    opt.step()


def main(argv: list[str]) -> None:
    name, batch, optimizer, dtype, device = argv[:5]
    size = tuple(int(s) for s in argv[5].split("x")) if len(argv) > 5 else None
    entry = lookup(name, size)
    torch_device, torch_dtype = torch.device(device), resolve_dtype(dtype)
    make_optimizer = {"sgd": lambda p: torch.optim.SGD(p, lr=0.01),
                      "momentum": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
                      "adam": lambda p: torch.optim.Adam(p, lr=0.001)}[optimizer]
    # A one-sample step on a throw-away copy loads the backward kernels' code and workspaces, which
    # would otherwise be counted; the measured model then allocates its own gradients and state.
    _step(build(entry, torch_device, torch_dtype).train(), make_optimizer,
          torch.randn(entry_shape(entry, size, 1), device=torch_device, dtype=torch_dtype))
    gc.collect()
    if torch_device.type == "cpu":  # hand the copy's freed memory back, so the step cannot hide in it
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    model = build(entry, torch_device, torch_dtype).train()
    x = torch.randn(entry_shape(entry, size, int(batch)), device=torch_device, dtype=torch_dtype)
    opt = make_optimizer(model.parameters())
    if torch_device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        _reset_peak()
        before = _rss_bytes()
    out = model(x)
    loss = (out[0] if isinstance(out, tuple) else out).float().sum()
    loss.backward()
    opt.step()
    if torch_device.type == "cuda":
        torch.cuda.synchronize()
        peak, method = torch.cuda.max_memory_allocated() - before, "torch.cuda.max_memory_allocated - allocated before"
    else:
        peak = _peak_rss_bytes() - before
        method = "peak RSS (VmHWM, reset before the step) - RSS before it"
    print(json.dumps({"peak_bytes": peak, "method": method}))


if __name__ == "__main__":
    main(sys.argv[1:])
