"""Programs torch.export made, counted against the eager models they came from (needs torchvision and timm, which
the project does not install: `bash benchmarks/other_pytorch.sh 2.14.1` makes an environment with both).

    python benchmarks/export_zoo.py [--core] [name ...]

For each network, archcalc's parameters, MACs and element-wise work of the eager model (batch 1, its input size)
beside those of the program torch.export.export(model, ...) made of it: in its default (training) form, or with
--core in the core ATen form run_decompositions() makes, where the element-wise work is what the decompositions
became (GELU's erf, Hardswish's clamp) and only parameters and MACs are expected equal. Each ratio 1.000000 is equal
to the unit; any operation left uncounted in the program is named.
"""

from __future__ import annotations

import sys
import time
import warnings

import torch

import archcalc

TORCHVISION = ["resnet18", "mobilenet_v3_small", "vit_b_16", "convnext_tiny", "efficientnet_b0", "swin_t",
               "densenet121", "googlenet", "regnet_y_400mf", "shufflenet_v2_x1_0", "maxvit_t", "inception_v3"]
TIMM = ["deit_tiny_patch16_224", "resnet50d", "convnext_atto", "efficientformer_l1", "levit_128", "mobilevit_s",
        "poolformer_s12", "coatnet_0_rw_224"]


def _made(name: str):
    if name in TORCHVISION:
        import torchvision

        extra = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
        size = 299 if name == "inception_v3" else 224
        return torchvision.models.get_model(name, **extra), (1, 3, size, size)
    import timm

    model = timm.create_model(name)
    return model, (1, *model.pretrained_cfg["input_size"])


def main() -> None:
    core = "--core" in sys.argv
    names = [a for a in sys.argv[1:] if a != "--core"] or TORCHVISION + TIMM
    print(f"{'network':26s} {'params':>9s} {'MACs':>9s} {'elem.':>9s}  uncounted  seconds  ({'core ATen' if core else 'training form'})")
    for name in names:
        start = time.perf_counter()
        try:
            model, size = _made(name)
            model.eval()
            eager = archcalc.analyze(model, size)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.export(model, (torch.randn(size),), strict=False)
                program = program.run_decompositions() if core else program
            graph = archcalc.analyze(program.module(), size)
        except Exception as error:  # noqa: BLE001 (a benchmark reports and goes on)
            print(f"{name:26s} {type(error).__name__}: {str(error).splitlines()[0][:100]}", flush=True)
            continue
        ratios = [g / e if e else float(g == e) for g, e in ((graph.totals.params, eager.totals.params),
                                                              (graph.totals.macs, eager.totals.macs),
                                                              (graph.totals.elementwise, eager.totals.elementwise))]
        uncounted = "; ".join(n for n in graph.notes if "not counted" in n) or "-"
        print(f"{name:26s} " + " ".join(f"{r:9.6f}" for r in ratios) + f"  {uncounted}  {time.perf_counter() - start:5.1f}",
              flush=True)


if __name__ == "__main__":
    main()
