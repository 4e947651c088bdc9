"""One network of each of timm's model modules (its smallest-named: atto, femto, pico, nano, tiny, small, ...)
against torch.utils.flop_counter and timm's own parameter count, in one run (needs timm, which the project does not
install: `pip install timm` beside a matching torch, in an environment of its own):

    python benchmarks/timm_families.py [module ...]

For each, at its pretrained configuration's input size and batch 2, built with random weights (nothing downloaded):
archcalc's parameters against the model's own, its forward FLOPs (2 x MACs) and a training step's (forward + backward,
the loss the sum of the output) against flop_counter's on the meta device (hf_zoo._flop_counter: the CPU where the
model reads a value; its grouped-convolution ∂W corrected), the types archcalc did not count, and the analysis' notes.
"""

from __future__ import annotations

import sys
import time

import torch

import archcalc
from hf_zoo import _flop_counter

_SMALL = ("atto", "femto", "pico", "nano", "xxtiny", "xxs", "xtiny", "tiny", "xs", "small", "s", "t", "b0", "18")


def smallest(module: str) -> str | None:
    """The module's model whose name says it is the smallest (the first such word in _SMALL's order), else its first."""
    import timm

    def rank(name: str) -> tuple:
        words = name.split("_")
        return next(((i, len(name), name) for i, word in enumerate(_SMALL) if word in words or word in name),
                    (len(_SMALL), len(name), name))

    names = timm.list_models(module=module)
    return min(names, key=rank) if names else None


def check(module: str) -> str:
    import timm

    name = smallest(module)
    if name is None:
        return f"{module:26s} (no model)"
    start = time.perf_counter()

    def make():
        return timm.create_model(name, pretrained=False)

    torch.manual_seed(0)
    model = make()
    sizes = [(2, *model.pretrained_cfg.get("input_size", (3, 224, 224)))]
    a = archcalc.analyze(model, sizes, backward=True)
    forward, train = _flop_counter(make, sizes, None)
    theirs = sum(p.numel() for p in model.parameters())
    uncounted = sorted({r.type for r in a.not_counted})
    return (f"{module:26s} {name:34s} {sizes[0][-1]:4d} params {a.totals.params / theirs:.6f} "
            f"forward {a.totals.flops / forward:.6f} train {2 * (a.totals.macs + a.totals.backward_macs) / train:.6f}"
            f"{' not counted: ' + ', '.join(uncounted) if uncounted else ''} {time.perf_counter() - start:5.1f} s")


def main() -> None:
    import timm

    for module in sys.argv[1:] or sorted(timm.list_modules()):
        try:
            print(check(module), flush=True)
        except Exception as error:  # (one family's failure is a line of the report, not the end of it)
            print(f"{module:26s} failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}", flush=True)


if __name__ == "__main__":
    main()
