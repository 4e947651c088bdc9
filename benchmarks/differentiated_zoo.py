"""Forwards that differentiate, on public networks, against torch.utils.flop_counter's formulas over every aten kernel
that runs (tests/aten_flops.py), in one run (needs torchvision and timm, which the project does not install: run it
beside torch 2.14.1 and torchvision 0.29.1, in an environment of its own, with the project on PYTHONPATH):

    PYTHONPATH=. python benchmarks/differentiated_zoo.py [--size 32] [NAME ...]

For each network (torchvision's or timm's, random weights, eval mode, 10 classes, 2 images of SIZE x SIZE; a timm
ViT built for that size), wrapped five ways: ``saliency``, the input gradient made with create_graph=True
(torch.autograd.grad); ``hvp``, a Hessian-vector product along the input, jvp(grad(f)); ``hvp-params``, one in
parameter space (functional_call); ``jvp``, forward-mode AD along the input; and ``penalty``, a gradient penalty
((‖∂f/∂x‖ - 1)², trained: its training step, forward and backward). archcalc's MACs on the meta device against the
aten count of the same call on the CPU, with attention on PyTorch's math kernel (its fused ones have no forward-mode
AD); a network PyTorch itself cannot run so (hardsigmoid's backward has no forward-mode AD: GhostNet, MobileViT)
is reported as it fails, and one whose count archcalc says it has no formula for as "not counted" (with the note),
apart from a count that differs without one: "DIFFERENT", which makes the run fail.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import func, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

import archcalc
from tests.aten_flops import AtenMacs, step_macs

NETWORKS = ["resnet18", "resnet50", "mobilenet_v2", "densenet121", "efficientnet_b0", "vgg11_bn", "squeezenet1_0",
            "shufflenet_v2_x0_5", "regnet_x_400mf", "convnext_tiny", "googlenet", "mnasnet0_5", "resnext50_32x4d",
            "vit_tiny_patch16_224", "deit_tiny_patch16_224", "convnext_atto", "resnet10t", "dla34", "cspresnet50",
            "repvgg_a0", "poolformer_s12", "regnetx_002"]
MODES = ["saliency", "hvp", "hvp-params", "jvp", "penalty"]


class Differentiating(nn.Module):
    """A network differentiated in its forward (MODES)."""

    def __init__(self, net: nn.Module, mode: str):
        super().__init__()
        self.net, self.mode = net, mode

    def logits(self, x):
        out = self.net(x)
        return out[0] if isinstance(out, tuple) else out  # (GoogLeNet in train mode: its logits and aux heads')

    def loss(self, x):
        return self.logits(x).pow(2).sum()

    def forward(self, x):
        if self.mode == "jvp":
            return func.jvp(self.logits, (x,), (torch.ones_like(x),))[1]
        if self.mode == "hvp":
            return func.jvp(func.grad(self.loss), (x,), (torch.ones_like(x),))[1]
        if self.mode == "hvp-params":
            params = {k: v.detach() for k, v in self.net.named_parameters()}
            buffers = dict(self.net.named_buffers())

            def loss(p):
                out = func.functional_call(self.net, {**p, **buffers}, (x,))
                return (out[0] if isinstance(out, tuple) else out).pow(2).sum()

            tangents = {k: torch.ones_like(v) for k, v in params.items()}
            return torch.cat([g.flatten() for g in func.jvp(func.grad(loss), (params,), (tangents,))[1].values()])
        x = x.detach().requires_grad_(True)
        gradient = torch.autograd.grad(self.loss(x), x, create_graph=True)[0]
        if self.mode == "saliency":
            return gradient
        return ((gradient.flatten(1).norm(dim=1) - 1) ** 2).mean()


def build(name: str, size: int) -> nn.Module:
    import timm
    import torchvision

    if name in timm.list_models():
        extra = {"img_size": size} if "vit" in name or "deit" in name else {}
        return timm.create_model(name, pretrained=False, num_classes=10, **extra)
    return getattr(torchvision.models, name)(num_classes=10)


def check(name: str, mode: str, size: int) -> str:
    model = Differentiating(build(name, size).eval(), mode)
    shape = (2, 3, size, size)
    trained = mode == "penalty"
    try:
        a = archcalc.analyze(model, [shape], device="meta", backward=trained)
        with sdpa_kernel(SDPBackend.MATH):
            if trained:
                model.train()  # (archcalc counts a training step in train mode)
                reference = step_macs(model, shape)
            else:
                torch.manual_seed(0)
                with AtenMacs() as counter:
                    model(torch.randn(shape))
                reference = (counter.macs, None)
    except Exception as error:  # (PyTorch's own refusals: reported, the sweep goes on)
        return f"{name:26} {mode:11} fails: {str(error).splitlines()[0][:110]}"
    ours = (a.totals.macs, a.totals.backward_macs if trained else None)
    ratio = ours[0] / reference[0] if reference[0] else float("nan")
    step = f"  step {ours[1]:,} / {reference[1]:,}" if trained else ""
    unknown = [f"{r.name}: {r.note[:70]}" for r in a.not_counted] + [n[:110] for n in a.notes if "not counted" in n]
    verdict = "equal" if ours == reference else "not counted" if unknown else "DIFFERENT"
    notes = "; ".join(unknown[:1])
    return f"{name:26} {mode:11} {ours[0]:>15,} / {reference[0]:>15,} = {ratio:.6f}{step}  {verdict} {notes}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=NETWORKS)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--modes", nargs="*", default=MODES, choices=MODES)
    options = parser.parse_args()
    different = 0
    for name in options.names:
        for mode in options.modes:
            line = check(name, mode, options.size)
            different += "DIFFERENT" in line
            print(line, flush=True)
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
