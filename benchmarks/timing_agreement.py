"""Does archcalc's timing loop agree with torch.utils.benchmark? Measured in one run.

    python benchmarks/timing_agreement.py [--device cpu|cuda]

For a few models, prints archcalc's median and torch.utils.benchmark's median (blocked_autorange)
on the same model object and input, and their ratio (1.00 = agreement).
"""

from __future__ import annotations

import argparse

import torch
import torch.utils.benchmark as benchmark

from archcalc.analysis.engine import build
from archcalc.models.catalog import REGISTRY
from archcalc.timing.measure import Options, _timed_runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    device = torch.device(parser.parse_args().device)
    print(f"{'model':12s} {'archcalc ms':>12s} {'torch ms':>10s} {'ratio':>6s}")
    for name, batch in (("cnnet", 8), ("vgg_base", 8), ("resnet18", 1), ("densenet121", 1)):
        entry = REGISTRY.get(name)
        model = build(entry, device, torch.float32)
        x = torch.randn(batch, *entry.default_input, device=device)
        times = sorted(_timed_runs(model, x, device, Options(warmup=5, repeat=30), lambda: None))
        ours = times[len(times) // 2]
        with torch.inference_mode():
            timer = benchmark.Timer("model(x)", globals={"model": model, "x": x}, num_threads=torch.get_num_threads())
            theirs = timer.blocked_autorange(min_run_time=2.0).median * 1000
        print(f"{name:12s} {ours:12.3f} {theirs:10.3f} {ours / theirs:6.2f}")


if __name__ == "__main__":
    main()
