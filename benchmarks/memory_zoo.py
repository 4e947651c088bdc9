"""The simulated training peak against the real tensors of the same two steps, on many networks, on the CPU.

    python benchmarks/memory_zoo.py [--amp bfloat16 | --dtype bfloat16] [MODEL ...]

For each network (registered names, or your own as path/to/net.py:NAME or package.module:NAME): two real training
steps on the CPU (SGD with momentum), followed by the simulation's own tracker (training/peak.py), against
the same steps simulated on the meta device; the two peaks in bytes and their ratio (1.000000: to the byte).
This is not the process's memory (benchmarks/memory_check.py measures that): it checks that what the meta
device's kernels, the fused attention choice and the autocast policy make is what the CPU's kernels make.
"""

from __future__ import annotations

import argparse
import time

import torch

from archcalc.analysis.engine import build, entry_inputs
from archcalc.models.user import lookup
from archcalc.training.batch import made
from archcalc.training.peak import _optimizer, follow, simulate, tracker

ZOO = ["lenet5", "cnnet", "vgg_dense_ca", "vgg_skip_dense_ca", "alexnet", "vgg11_lrn_bn", "vgg16_cifar",
       "resnet50_cifar", "googlenet", "bn_inception", "se_resnet50", "resnext50_32x4d", "se_resnext50_32x4d",
       "densenet121", "inception_resnet_v2", "vdsr", "srdensenet", "vit_b_32"]


def real_peak(entry, batch: int, amp: str | None, size=None, input_dtypes=None, optimizer: str = "momentum",
              dtype: str = "float32") -> int:
    """Two real training steps on the CPU followed by the simulation's tracker: the real tensors' peak."""
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    model = build(entry, cpu, getattr(torch, dtype)).train()
    x = made(entry_inputs(entry, size, batch, input_dtypes), cpu, getattr(torch, dtype))
    opt = _optimizer(list(model.parameters()), optimizer, "cpu")
    live = tracker(model, x, opt, "cpu", frozenset({"cpu"}))
    follow(model, x, opt, live, lambda: torch.autocast("cpu", dtype=getattr(torch, amp or "bfloat16"),
                                                      enabled=amp is not None))
    return live.peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*")
    parser.add_argument("--amp", default=None)
    parser.add_argument("--dtype", default="float32", help="the model's and the input's (bfloat16: a whole bfloat16 step)")
    parser.add_argument("--batch", type=int, default=2)
    options = parser.parse_args()
    print(f"{'model':40s} {'simulated':>14s} {'real tensors':>14s} {'ratio':>9s} {'seconds':>8s}")
    for name in options.models or ZOO:
        start = time.perf_counter()
        try:
            entry = lookup(name, None)
            simulated = simulate(entry, None, options.batch, "momentum", dtype=options.dtype, device="cpu",
                                 amp=options.amp).allocated
            real = real_peak(entry, options.batch, options.amp, dtype=options.dtype)
        except Exception as error:  # noqa: BLE001 (a benchmark reports and goes on)
            print(f"{name:40s} {str(error).splitlines()[0][:90]}", flush=True)
            continue
        print(f"{name:40s} {simulated:14,d} {real:14,d} {real / simulated:9.6f} "
              f"{time.perf_counter() - start:8.1f}", flush=True)


if __name__ == "__main__":
    main()
