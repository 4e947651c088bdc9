"""The generator's check: each layer or network rebuilt in PyTorch and run on the meta device (shapes,
parameter tensors, torch.utils.flop_counter's count), independently of archcalc's formulas."""

from __future__ import annotations

from typing import Sequence

from archcalc.homework.layers import Layer


def module(layer: Layer):
    from torch import nn

    if layer.kind == "conv":
        return nn.Conv2d(layer.c_in, layer.c_out, layer.k, layer.s, layer.p, layer.d, layer.groups, layer.bias,
                         device="meta")
    if layer.kind == "maxpool":
        return nn.MaxPool2d(layer.k, layer.s, layer.p, layer.d, ceil_mode=layer.ceil)
    if layer.kind == "avgpool":
        if layer.d != 1:
            raise ValueError("AvgPool2d has no dilation")
        return nn.AvgPool2d(layer.k, layer.s, layer.p, ceil_mode=layer.ceil)
    if layer.kind == "batchnorm":
        return nn.BatchNorm2d(layer.c_out, device="meta")
    if layer.kind == "relu":
        return nn.ReLU()
    if layer.kind == "flatten":
        return nn.Flatten()
    if layer.kind == "linear":
        return nn.Linear(layer.c_in, layer.c_out, layer.bias, device="meta")
    raise ValueError(f"no PyTorch layer for {layer.kind!r}")


def params(layer: Layer) -> int:
    return sum(p.numel() for p in module(layer).parameters() if p.requires_grad)


def run(layers: Sequence[Layer], shape: tuple[int, ...], dtype: str = "float32", macs: bool = True) -> list[dict]:
    """Each layer's output shape, bytes and (with ``macs``) MACs, flop_counter's FLOPs / 2, for an input of
    ``shape`` (batch first); raises RuntimeError where PyTorch refuses a size, as for an input too small."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.empty(shape, device="meta", dtype=getattr(torch, dtype))
    found = []
    for layer in layers:
        m = module(layer).to(dtype=x.dtype)
        if macs:
            with FlopCounterMode(display=False) as counter:
                x = m(x)
        else:
            x = m(x)
        found.append({"shape": tuple(x.shape), "bytes": x.numel() * x.element_size(),
                      "macs": counter.get_total_flops() // 2 if macs else None})
    return found


def out_size(layers: Sequence[Layer], size: int) -> int | None:
    """The last output's width for a size x size input of one channel; None where PyTorch refuses it (a map
    smaller than a kernel on the way)."""
    try:
        return run(layers, (1, 1, size, size), macs=False)[-1]["shape"][-1]
    except RuntimeError:
        return None
