"""Does archcalc's timing loop agree with torch.utils.benchmark? Measured in one run.

    python benchmarks/timing_agreement.py [--device cpu|cuda] [--training]

For a few models (the lab's and the lectures' CNNs, and examples/tiny_gpt.py on token ids; run from the
repository's root), prints archcalc's median and torch.utils.benchmark's median (blocked_autorange)
on the same model object and input, and their ratio (1.00 = agreement); with --training, of the
same training step (archcalc.timing.measure.training_step: zero_grad, forward, loss, backward, SGD step).
"""

from __future__ import annotations

import argparse

import torch
import torch.utils.benchmark as benchmark

from archcalc.analysis.engine import build, entry_inputs
from archcalc.models.user import lookup
from archcalc.timing.measure import Options, _timed_runs, forward_pass, optimizer_for, training_step
from archcalc.training.batch import made

# (model, batch, its input size and dtypes where not the model's own): the lab's, the lectures', and a
# language model on token ids
MODELS = [("cnnet", 8, None, None), ("vgg_base", 8, None, None), ("resnet18", 2, None, None),
          ("densenet121", 2, None, None), ("examples/tiny_gpt.py:TinyGPT", 8, (128,), ["int64:1000"])]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--training", action="store_true")
    options = parser.parse_args()
    device = torch.device(options.device)
    what = "training step" if options.training else "forward"
    print(f"{'model':12s} {'archcalc ms':>12s} {'torch ms':>10s} {'ratio':>6s}   ({what})")
    for name, batch, size, dtypes in MODELS:
        entry = lookup(name, size)
        model = build(entry, device, torch.float32)
        x = made(entry_inputs(entry, size, batch, dtypes), device, torch.float32)
        if options.training:
            run = training_step(model.train(), x, optimizer_for(model.parameters(), "sgd"))
        else:
            run = forward_pass(model, x)
        times = sorted(_timed_runs(run, device, Options(warmup=5, repeat=30), lambda: None, grad=options.training))
        ours = times[len(times) // 2]
        with torch.inference_mode(not options.training):
            timer = benchmark.Timer("run()", globals={"run": run}, num_threads=torch.get_num_threads())
            theirs = timer.blocked_autorange(min_run_time=2.0).median * 1000
        print(f"{name.split(':')[-1]:12s} {ours:12.3f} {theirs:10.3f} {ours / theirs:6.2f}")


if __name__ == "__main__":
    main()
