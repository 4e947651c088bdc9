"""archcalc's analysis against the bare meta forward pass, in machine instructions rather than seconds.

    python benchmarks/instructions.py [model ...]      (default: vgg16; needs valgrind)

Wall time on a shared machine moves by 0.05-0.1 in these ratios from one run to the next
(benchmarks/speed.py); the count of instructions executed moves by about 0.5%, and on this
single-threaded work it tracks time: what the analysis adds to the forward pass is Python, whose
cost is the instructions it runs. Each count is valgrind's (cachegrind, no cache simulation) for a
process that builds the model, warms up, then runs N calls with the garbage collector off; the
difference between N = 10 and N = 0, over 10, is one call's. OpenBLAS and OpenMP run one thread, and
the processes run one at a time: run side by side on this 2-core machine, their counts moved by
several percent (threads that wait count the instructions of their waiting).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

CALLS = 10


def child(name: str, what: str, calls: int) -> None:
    """Build the model, warm both paths up, then run ``calls`` of one of them."""
    import gc

    import torch

    from archcalc.analysis.engine import analyse_module, build
    from archcalc.models.catalog import REGISTRY

    meta = torch.device("meta")
    entry = REGISTRY.get(name)
    model = build(entry, meta, torch.float32)
    shape = (1, *entry.default_input)
    x = torch.empty(shape, device=meta)

    def bare():
        with torch.no_grad():
            model(x)

    def ours():
        analyse_module(model, name, shape, meta, torch.float32)

    for _ in range(2):
        bare()
        ours()
    run = bare if what == "floor" else ours
    gc.collect()
    gc.disable()
    for _ in range(calls):
        run()


def instructions(name: str, what: str, calls: int) -> int:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    done = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                           sys.executable, __file__, "--child", name, what, str(calls)],
                          capture_output=True, text=True, env=env, check=False)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or not found:
        said = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("==")]
        raise SystemExit(f"the {what} run of {name} under valgrind failed: {said[-1] if said else done.returncode}")
    return int(found.group(1).replace(",", ""))


def main(models: list[str]) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt install valgrind); benchmarks/speed.py measures wall time")
    from archcalc.models.catalog import REGISTRY

    unknown = [name for name in models if name not in REGISTRY]
    if unknown:
        raise SystemExit(f"unknown model {', '.join(unknown)}; `archcalc models` lists them")
    print(f"{'model':12s} {'floor instr/call':>17s} {'archcalc instr/call':>20s} {'ratio':>7s}")
    for name in models:
        base, floor, ours = (instructions(name, *job) for job in [("floor", 0), ("floor", CALLS), ("analysis", CALLS)])
        per_floor, per_ours = (floor - base) / CALLS, (ours - base) / CALLS
        print(f"{name:12s} {per_floor:17,.0f} {per_ours:20,.0f} {per_ours / per_floor:6.3f}x")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main(sys.argv[1:] or ["vgg16"])
