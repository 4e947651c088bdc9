"""Analysis cost on the meta device against batch size and resolution, measured in one run.

    python benchmarks/meta_scaling.py

Prints, for the largest models, the time and peak traced memory of one full analysis at
batch 1 / 224x224 and at batch 1000 / 1024x1024, and their ratios (flat = about 1.0), then the
time of `check` over every table. Numbers vary by machine; ratios are what to read.
"""

from __future__ import annotations

import time
import tracemalloc

from archcalc.analysis.engine import analyse
from archcalc.checking.runner import check
from archcalc.models.catalog import REGISTRY


def measure(name: str, size: tuple[int, int, int], batch: int) -> tuple[float, int]:
    tracemalloc.start()
    start = time.perf_counter()
    analyse(REGISTRY.get(name), size, batch=batch)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak


def main() -> None:
    analyse(REGISTRY.get("cnnet"))  # warm imports
    print(f"{'model':14s} {'small s':>8s} {'large s':>8s} {'ratio':>6s} {'small MiB':>10s} {'large MiB':>10s} {'ratio':>6s}")
    for name in ("resnet152", "densenet264", "vgg19", "se_resnext101_32x4d"):
        t1, m1 = measure(name, (3, 224, 224), 1)
        t2, m2 = measure(name, (3, 1024, 1024), 1000)
        print(f"{name:14s} {t1:8.2f} {t2:8.2f} {t2 / t1:6.2f} {m1 / 2**20:10.1f} {m2 / 2**20:10.1f} {m2 / m1:6.2f}")
    start = time.perf_counter()
    verdicts = check()
    print(f"check: {len(verdicts)} rows in {time.perf_counter() - start:.2f} s "
          f"({sum(v.passed for v in verdicts)} reproduced)")


if __name__ == "__main__":
    main()
