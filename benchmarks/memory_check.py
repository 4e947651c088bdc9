"""archcalc memory's estimate against a measured training step, in one run.

    python benchmarks/memory_check.py [--device cpu|cuda]

For each configuration: the estimated memory of the step (gradients + optimizer state +
activations saved for backward + backward gradients) and the measured peak growth during one real
step in a fresh process (CPU: peak RSS; CUDA: torch.cuda.max_memory_allocated), and their ratio.
"""

from __future__ import annotations

import argparse

from archcalc.training.memory import estimate, measure_peak
from archcalc.models.catalog import REGISTRY

CONFIGS = [("cnnet", 256, "adam"), ("vgg_base", 64, "adam"), ("vgg_base", 512, "momentum"),
           ("resnet18", 16, "adam"), ("resnet18", 64, "sgd"), ("densenet121", 8, "sgd")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    device = parser.parse_args().device
    print(f"{'model':12s} {'batch':>5s} {'optimizer':9s} {'estimated MiB':>13s} {'measured MiB':>12s} {'ratio':>6s}")
    for name, batch, optimizer in CONFIGS:
        entry = REGISTRY.get(name)
        e = estimate(entry, None, batch, optimizer)
        step = e.total_bytes - e.params_bytes - e.input_bytes
        measured = measure_peak(entry, None, batch, optimizer, "float32", device)["peak_bytes"]
        print(f"{name:12s} {batch:5d} {optimizer:9s} {step / 2**20:13.1f} {measured / 2**20:12.1f} {measured / step:6.2f}")


if __name__ == "__main__":
    main()
