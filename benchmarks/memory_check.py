"""archcalc memory's predictions against a measured training step, in one run.

    python benchmarks/memory_check.py [--device cpu|cuda] [--quick] [--no-amp]

For each configuration, beyond the model and the input: the sum of the parts (gradients + optimizer state +
activations saved for backward + backward gradients, every part as if alive at once), the peak of the first
step and of the second simulated on the meta device for the device's allocator (training/peak.py), and the
peak growth measured during two real steps in a fresh process (CPU: peak RSS; CUDA:
torch.cuda.max_memory_allocated); ratio: the larger measured over the larger simulated. On the CPU, "held":
what the first step left resident that no tensor holds (the math libraries' caches for these shapes), and
"without": the ratio without it. Then the same under
mixed precision (--amp: float16 and bfloat16 on CUDA, bfloat16 on the CPU). --quick leaves out the four large
float32 configurations, --no-amp the mixed-precision ones.
"""

from __future__ import annotations

import argparse

from archcalc.models.user import lookup
from archcalc.training.memory import estimate, measure_peak

CONFIGS = [("cnnet", 256, "adam", None), ("vgg_base", 64, "adam", None), ("vgg_base", 512, "momentum", None),
           ("resnet18", 16, "adam", None), ("resnet18", 64, "sgd", None), ("densenet121", 8, "sgd", None),
           ("vgg16", 32, "adam", None), ("resnet50", 64, "adam", None), ("densenet121", 32, "sgd", None),
           ("vit_b_16", 16, "adamw", None), ("examples/tiny_gpt.py:TinyGPT", 32, "adamw", None)]
# a model of one's own and what it takes: a language model on token ids (int64 below its vocabulary)
INPUTS = {"examples/tiny_gpt.py:TinyGPT": ((128,), ["int64:1000"])}
# mixed precision: float16 on CUDA (the AMP recipe), bfloat16 on the CPU (the only one its autocast speeds up)
AMP = {"cuda": [("resnet18", 16, "adam", "float16"), ("resnet50", 64, "adam", "float16"),
                ("vit_b_16", 16, "adam", "float16"), ("vit_b_16", 16, "adam", "bfloat16")],
       "cpu": [("resnet18", 16, "adam", "bfloat16"), ("vgg_base", 64, "adam", "bfloat16")]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-amp", action="store_true")
    parser.add_argument("names", nargs="*", help="only these configurations' models (TinyGPT for the example's)")
    options = parser.parse_args()
    cuda = options.device.startswith("cuda")
    print(f"{'model':12s} {'batch':>5s} {'optimizer':9s} {'amp':8s} {'sum of parts':>12s} "
          f"{'simulated MiB (1, 2)':>20s} {'measured MiB (1, 2)':>19s} {'ratio':>6s}"
          + ("" if cuda else f" {'held MiB':>8s} {'without':>7s}"))
    mixed = [] if options.no_amp else AMP["cuda" if cuda else "cpu"]
    for name, batch, optimizer, amp in (CONFIGS[:6] if options.quick else CONFIGS) + mixed:
        if options.names and name not in options.names and name.split(":")[-1] not in options.names:
            continue
        size, dtypes = INPUTS.get(name, (None, None))
        entry = lookup(name, size)
        e = estimate(entry, size, batch, optimizer, device="cuda" if cuda else "cpu", amp=amp, input_dtypes=dtypes)
        parts = e.total_bytes - e.params_bytes - e.input_bytes
        simulated = [s - e.peak.before for s in e.peak.steps]
        measured = measure_peak(entry, size, batch, optimizer, "float32", options.device, amp=amp, input_dtypes=dtypes)
        ratio = measured["peak_bytes"] / e.predicted_step_bytes
        held = measured.get("held_bytes")  # the CPU: what step 1 left resident that no tensor holds
        without = "" if held is None else \
            f" {held / 2**20:8.1f} {(measured['peak_bytes'] - held) / e.predicted_step_bytes:7.2f}"
        short = name.split(":")[-1]  # (a model of one's own: its class's name)
        print(f"{short:12s} {batch:5d} {optimizer:9s} {amp or '-':8s} {parts / 2**20:12.1f} {_pair(simulated):>20s} "
              f"{_pair(measured['steps']):>19s} {ratio:6.2f}{without}", flush=True)


def _pair(values) -> str:
    return ", ".join(f"{v / 2**20:.1f}" for v in values)


if __name__ == "__main__":
    main()
