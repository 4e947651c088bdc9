"""Every torchvision classification network against torchvision's own published figures and against
torch.utils.flop_counter, in one run (needs torchvision, which the project does not install:
`pip install torchvision` beside a matching torch, in an environment of its own).

    python benchmarks/torchvision_zoo.py [name ...]

For each network of torchvision.models.list_models(torchvision.models), built on the meta device
(placement.construct: the CPU where its constructor reads values, as the RegNets' does) at the
input size of its default weights (their crop size), it prints archcalc's parameters and MACs beside
the weights' metadata (num_params; _ops, GMACs to 3 decimals), archcalc's MACs against flop_counter's
count / 2 on the same model, and any operation archcalc did not count. No weights are downloaded.
Then, over the whole set, the wall time of archcalc's analysis against a bare meta forward pass and
against FlopCounterMode around one (each network timed once more after the checks, the three in turn).
"""

from __future__ import annotations

import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from archcalc.analysis import placement
from archcalc.analysis.engine import analyse_module

META = torch.device("meta")


def check(name: str) -> tuple[bool, str]:
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    size = weights.transforms().crop_size[0]
    kwargs = {"image_size": size} if name.startswith("vit_") else {}
    if name.startswith("inception") or name == "googlenet":
        kwargs["init_weights"] = False
    if name == "googlenet":  # its weights' builder drops the auxiliary classifiers after loading
        kwargs["aux_logits"] = False
    model, _ = placement.construct(lambda: torchvision.models.get_model(name, **kwargs).eval(), META)
    shape = (1, 3, size, size)
    a = analyse_module(model, name, shape, META, torch.float32)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(shape, device=META))
    reference = counter.get_total_flops() // 2
    params, ops = weights.meta["num_params"], weights.meta["_ops"]
    uncounted = sorted({r.type for r in a.not_counted})
    x = torch.empty(shape, device=META)
    times = []
    runs = (lambda: model(x), lambda: analyse_module(model, name, shape, META, torch.float32), lambda: _counted(model, x))
    for run in runs:
        start = time.perf_counter()
        with torch.no_grad():
            run()
        times.append(time.perf_counter() - start)
    TIMES.append(times)
    ok = a.totals.params == params and round(a.totals.macs / 1e9, 3) == ops and a.totals.macs == reference \
        and not uncounted
    line = (f"{name:24s} {size:4d} params {a.totals.params:>12,} vs {params:>12,}  GMACs {a.totals.macs / 1e9:9.3f} vs "
            f"{ops:9.3f}  flop_counter/2 {'=' if a.totals.macs == reference else '!= ' + f'{reference:,}'}"
            + (f"  not counted: {', '.join(uncounted)}" if uncounted else ""))
    return ok, line


TIMES: list[list[float]] = []  # (bare forward, archcalc, flop_counter) seconds per network


def _counted(model, x) -> None:
    with FlopCounterMode(display=False):
        model(x)


def main(names: list[str]) -> None:
    import torchvision

    names = names or torchvision.models.list_models(module=torchvision.models)
    results = []
    for name in names:
        try:
            ok, line = check(name)
        except Exception as error:  # a network archcalc cannot analyse is a finding, not a crash of the run
            ok, line = False, f"{name:24s} error: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
        results.append(ok)
        print(("   " if ok else "XX ") + line, flush=True)
    print(f"\n{sum(results)} of {len(results)} networks: parameters, _ops and flop_counter all reproduced")
    if TIMES:
        bare, ours, counter = (sum(t[i] for t in TIMES) for i in range(3))
        print(f"over the set: bare meta forward {bare:.1f} s, archcalc {ours:.1f} s ({ours / bare:.2f}x the forward), "
              f"FlopCounterMode {counter:.1f} s (archcalc {ours / counter:.2f}x of it)")


if __name__ == "__main__":
    main(sys.argv[1:])
