"""archcalc's analysis against the other counters, and whole-process start-up, measured in one run.

    python benchmarks/speed.py

Per model and batch (three CNNs, a ViT-B/16 and a bidirectional LSTM): the best wall time, run in turn for at least 3 seconds and 5 rounds, of a bare
meta-device forward pass (the floor), archcalc's full analysis (meta: every record's shapes, counts,
parameters, memory and receptive field), the same with every row's formula text written out as a
table shows it (+text), torchinfo's summary(device="meta") and torch.utils.flop_counter on meta; and
fvcore's FlopCountAnalysis on real CPU tensors (batch 1 only, once: it allocates); each as a ratio to
the floor, with the peak traced Python memory of archcalc's analysis. "paired" is archcalc's
analysis timed again in turn with the floor alone: in the five-way turns the other tools run the
floor's own forward pass between its calls, which keeps that code warm for the floor and not for
archcalc. Then the start-up time of `archcalc bottleneck 480 16 48`, `archcalc outsize 7 3` and
`archcalc --help` against `python -c "import torch"`.
"""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import time
import tracemalloc

import torch

from archcalc.analysis.engine import analyse_module, build
from archcalc.models.catalog import REGISTRY

MODELS = ("resnet152", "densenet201", "vgg16", "vit_b_16")
META, F32 = torch.device("meta"), torch.float32


class LSTMTagger(torch.nn.Module):
    """The recurrent row: a two-layer bidirectional LSTM over 100 steps of 256 features, and a tag per step."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(256, 512, num_layers=2, batch_first=True, bidirectional=True)
        self.tag = torch.nn.Linear(1024, 40)

    def forward(self, x):
        return self.tag(self.lstm(x)[0])


def cases():
    """(name, model on meta, model on the CPU (built when asked), input size without the batch)."""
    for name in MODELS:
        entry = REGISTRY.get(name)
        yield name, build(entry, META, F32), lambda entry=entry: build(entry, torch.device("cpu"), F32), \
            entry.default_input
    with torch.device("meta"):
        lstm = LSTMTagger().eval()
    yield "lstm_tagger", lstm, lambda: LSTMTagger().eval(), (100, 256)


def best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def best_of_each(fns, seconds: float = 3.0, at_least: int = 5) -> list[float]:
    """The best wall time of each function, run in turn (floor, archcalc, torchinfo, ...) for a few
    seconds: interleaving keeps a slow spell of this shared machine from landing on one of them. Each
    call starts with the young generations collected (gc.collect(1), untimed), so that no call pays for
    collecting the garbage of the one before it: measured here, a call after torch.utils.flop_counter
    otherwise spent about 0.15 ms of VGG-16's 1.7 ms collecting the counter's objects."""
    times = [[] for _ in fns]
    start = time.perf_counter()
    while len(times[0]) < at_least or time.perf_counter() - start < seconds:
        for fn, found in zip(fns, times):
            gc.collect(1)
            t = time.perf_counter()
            fn()
            found.append(time.perf_counter() - t)
    return [min(found) for found in times]


def peak_mib(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def analysis_speed() -> None:
    from fvcore.nn import FlopCountAnalysis
    from torch.utils.flop_counter import FlopCounterMode
    from torchinfo import summary

    logging.disable(logging.WARNING)
    print(f"{'model':12s} {'batch':>5s} {'floor ms':>9s} {'paired':>9s} {'archcalc':>9s} {'+text':>9s} "
          f"{'torchinfo':>9s} {'flop_ctr':>9s} {'fvcore':>9s} {'archcalc MiB':>12s}")
    for name, model, on_cpu, size in cases():
        for batch in (1, 64):
            shape = (batch, *size)
            x = torch.empty(shape, device=META)

            def bare():
                with torch.no_grad():
                    model(x)

            def ours():
                return analyse_module(model, name, shape, META, F32)

            def ours_text():
                for r in ours().records:
                    dict(r.formulas)

            def info():
                summary(model, input_size=shape, device="meta", verbose=0)

            def counter():
                with torch.no_grad(), FlopCounterMode(display=False):
                    model(x)

            floor, *row = best_of_each([bare, ours, ours_text, info, counter])
            paired_floor, paired = best_of_each([bare, ours])
            row.insert(0, paired / paired_floor * floor)  # so that its column prints paired / paired_floor
            if batch == 1:
                cpu_model = on_cpu()
                real = torch.randn(shape)

                def fv():
                    analysis = FlopCountAnalysis(cpu_model, real)
                    analysis.unsupported_ops_warnings(False)
                    analysis.uncalled_modules_warnings(False)
                    analysis.total()

                row.append(best(fv, 1))
            ratios = " ".join(f"{t / floor:8.2f}x" for t in row) + ("" if batch == 1 else f" {'-':>9s}")
            print(f"{name:12s} {batch:5d} {floor * 1000:9.1f} {ratios} {peak_mib(ours):12.1f}")


def startup() -> None:
    def run(*args: str) -> float:
        return best(lambda: subprocess.run(args, capture_output=True, check=True), 5)

    torch_import = run(sys.executable, "-c", "import torch")
    print(f"\npython -c 'import torch': {torch_import * 1000:.0f} ms")
    for command in (("bottleneck", "480", "16", "48"), ("outsize", "7", "3"), ("--help",)):
        t = run(sys.executable, "-m", "archcalc", *command)
        print(f"archcalc {' '.join(command):22s} {t * 1000:6.0f} ms   {torch_import / t:5.1f}x faster than importing torch")


if __name__ == "__main__":
    analysis_speed()
    startup()
