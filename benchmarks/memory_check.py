"""archcalc memory's predictions against a measured training step, in one run.

    python benchmarks/memory_check.py [--device cpu|cuda] [--quick]

For each configuration: the CPU model's estimate of the step (gradients + optimizer state + activations saved
for backward + backward gradients), the CUDA peak simulated on the meta device (training/peak.py: the step's
own part, beyond the model and the input), and the measured peak growth during one real step in a fresh
process (CPU: peak RSS; CUDA: torch.cuda.max_memory_allocated), with measured / predicted for the device's
model (cpu: the estimate; cuda: the simulation). --quick leaves out the three large configurations.
"""

from __future__ import annotations

import argparse

from archcalc.models.catalog import REGISTRY
from archcalc.training.memory import estimate, measure_peak
from archcalc.training.peak import simulate

CONFIGS = [("cnnet", 256, "adam"), ("vgg_base", 64, "adam"), ("vgg_base", 512, "momentum"),
           ("resnet18", 16, "adam"), ("resnet18", 64, "sgd"), ("densenet121", 8, "sgd"),
           ("vgg16", 32, "adam"), ("resnet50", 64, "adam"), ("densenet121", 32, "sgd")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    cuda = options.device.startswith("cuda")
    print(f"{'model':12s} {'batch':>5s} {'optimizer':9s} {'CPU est. MiB':>12s} {'CUDA sim. MiB':>13s} "
          f"{'measured MiB':>12s} {'ratio':>6s}")
    for name, batch, optimizer in CONFIGS[:6] if options.quick else CONFIGS:
        entry = REGISTRY.get(name)
        e = estimate(entry, None, batch, optimizer)
        step = e.total_bytes - e.params_bytes - e.input_bytes
        simulated = simulate(entry, None, batch, optimizer).step
        measured = measure_peak(entry, None, batch, optimizer, "float32", options.device)["peak_bytes"]
        ratio = measured / (simulated if cuda else step)
        print(f"{name:12s} {batch:5d} {optimizer:9s} {step / 2**20:12.1f} {simulated / 2**20:13.1f} "
              f"{measured / 2**20:12.1f} {ratio:6.2f}")


if __name__ == "__main__":
    main()
