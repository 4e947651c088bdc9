"""The multiply-accumulates of a training step's backward pass: each layer's two gradients, and which of them
autograd computes.

  ∂x  the gradient of the layer's input: ∂y times the weights, transposed; as many MACs as the forward
  ∂W  the gradient of its weights: each weight sums input x ∂y over every position it was used at; as many MACs
      as the forward (a bias's ∂b sums ∂y: additions only, no product)
  autograd computes ∂W only for a trainable layer (requires_grad), and ∂x only where something before the layer
  trains: the network's input, the images, needs no gradient, and neither does the output of frozen layers with
  nothing trainable before them (fine-tuning the head of a frozen backbone costs the backbone no backward at all)
  a training step = forward + backward: 3 x the forward where every layer but the first needs both

Level 1: one convolution or linear layer, the network's first (∂W only) or after another (∂x and ∂W); level 2: any
stride and padding, and the layer may be frozen; level 3: two to four layers in a row at a batch, the first ones
frozen (a frozen backbone).
"""

from __future__ import annotations

import random

from archcalc.formulas.numbers import human
from archcalc.homework.layers import Layer
from archcalc.homework.question import Question
from archcalc.homework.words import say

COLUMNS = ("layers", "batch", "in", "first", "frozen", "forward_macs", "dx_macs", "dw_macs", "backward_macs",
           "step_macs")
SIZES = (8, 14, 16, 28, 32)
CHANNELS = (3, 16, 32, 64, 128)
BATCHES = (1, 8, 16, 32, 64)


def _conv(rng: random.Random, c_in: int, level: int) -> Layer:
    k = rng.choice((1, 3, 3, 5))
    s = rng.choice((1, 2)) if level >= 2 else 1
    p = rng.choice((0, k // 2)) if level >= 2 else k // 2
    return Layer("conv", c_in, rng.choice(CHANNELS[1:]), k, s, p)


def _draw(rng: random.Random, level: int) -> tuple[list[Layer], int, int, bool, int]:
    """(layers, batch, input size, whether the first layer is the network's first, how many lead frozen)."""
    size = rng.choice(SIZES)
    if level < 3:
        if rng.random() < 0.3:
            layers = [Layer("linear", rng.choice((84, 120, 256, 512)), rng.choice((10, 84, 100, 256)))]
        else:
            layers = [_conv(rng, rng.choice(CHANNELS), level)]
        first = rng.random() < 0.5
        frozen = 1 if level == 2 and not first and rng.random() < 0.4 else 0
        return layers, rng.choice(BATCHES) if level == 2 else 1, size, first, frozen
    layers, count = [_conv(rng, rng.choice((1, 3)), level)], rng.randint(2, 4)
    while len(layers) < count and _side(layers, size) >= 5:
        layers.append(_conv(rng, layers[-1].c_out, level))
    if len(layers) == 1:
        layers.append(Layer("conv", layers[-1].c_out, rng.choice(CHANNELS[1:]), 1))
    return layers, rng.choice(BATCHES), size, True, rng.randint(0, len(layers) - 1)


def _side(layers: list[Layer], size: int) -> int:
    for layer in layers:
        size = layer.out_size(size).output
    return size


def needs_input_gradient(i: int, first: bool, frozen: int) -> bool:
    """Whether autograd computes ∂x of layer i: where something before it trains (a layer after the frozen ones, or,
    for a layer that is not the network's first, the trainable layer it follows)."""
    return not first or i > frozen


def ask(rng: random.Random, level: int, lang: str) -> Question:
    layers, batch, size, first, frozen = _draw(rng, level)
    side, forward, rows, dxs, dws = size, [], [], [], []
    for i, layer in enumerate(layers):
        out = layer.out_size(side).output if layer.kind == "conv" else None
        macs, text = layer.macs(out)
        f = batch * macs
        forward.append(f)
        trainable, needs_dx = i >= frozen, needs_input_gradient(i, first, frozen)
        dx, dw = f if needs_dx else 0, f if trainable else 0
        dxs.append(dx)
        dws.append(dw)
        what = f"{batch}*{text.rsplit(' = ', 1)[0]} = {f:,}" if batch > 1 else text
        rows.append(say(lang, "backward.row", i=i + 1, code=f"`{layer.code()}`", forward=what,
                        dx=say(lang, "backward.dx_yes" if needs_dx else "backward.dx_no", n=f"{dx:,}"),
                        dw=say(lang, "backward.dw_yes" if trainable else "backward.dw_no", n=f"{dw:,}")))
        side = out or side
    total_forward, dx_total, dw_total = sum(forward), sum(dxs), sum(dws)
    backward = dx_total + dw_total
    numbers = {"layers": len(layers), "batch": batch, "in": size if layers[0].kind == "conv" else None, "first": first, "frozen": frozen,
               "forward_macs": total_forward, "dx_macs": dx_total, "dw_macs": dw_total, "backward_macs": backward,
               "step_macs": total_forward + backward}
    code = " → ".join(f"`{layer.code()}`" for layer in layers)
    shape = f"{batch}x{layers[0].c_in}" + (f"x{size}x{size}" if layers[0].kind == "conv" else "")
    if len(layers) == 1:
        text = say(lang, "backward.ask_one", code=code, shape=shape,
                   where=say(lang, "backward.first" if first else "backward.after"),
                   frozen=say(lang, "backward.frozen_one") if frozen else "")
    else:
        text = say(lang, "backward.ask_net", code=code, shape=shape,
                   frozen=say(lang, "backward.frozen", n=frozen, which="layer" if frozen == 1 else f"{frozen} layers") if frozen else say(lang, "backward.none_frozen"))
    ratio = f"{(total_forward + backward) / total_forward:.2f}" if total_forward else "-"
    sums = (f"∂x: {' + '.join(f'{n:,}' for n in dxs)} = {dx_total:,}; ∂W: {' + '.join(f'{n:,}' for n in dws)} = "
            f"{dw_total:,}",) if len(layers) > 1 else ()
    working = (say(lang, "backward.rule"), *rows, *sums,
               say(lang, "backward.total", backward=f"{backward:,}", human=human(backward),
                   step=f"{total_forward:,} + {backward:,} = {total_forward + backward:,}", ratio=ratio))
    return Question("backward", text, f"{backward}; {total_forward + backward}", working, numbers,
                    ("backward_macs", "step_macs"), tuple(layers), size)


def check(q: Question) -> list[str]:
    """The layers built in PyTorch on the meta device, the first ``frozen`` with requires_grad off, a batch of the
    question's input (with a gradient where a layer comes before: a stand-in that trains), one forward and
    backward pass under torch.utils.flop_counter: its FLOPs / 2 against the formulas'."""
    n = q.numbers
    forward, backward = _counted(q.layers, n["batch"], q.size, n["first"], n["frozen"])
    found = {"forward_macs": forward, "backward_macs": backward, "step_macs": forward + backward}
    problems = [f"{name}: the formula gives {n[name]}, PyTorch's flop counter {value}" for name, value in found.items()
                if n[name] != value]
    answer = f"{backward}; {forward + backward}"
    return problems + ([] if q.answer == answer else [f"answer {q.answer}, PyTorch's flop counter {answer}"])


def _counted(layers, batch: int, size: int, first: bool, frozen: int) -> tuple[int, int]:
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from archcalc.homework import meta

    modules = [meta.module(layer) for layer in layers]
    for i, m in enumerate(modules):
        m.requires_grad_(i >= frozen)
    shape = (batch, layers[0].c_in) + ((size, size) if layers[0].kind == "conv" else ())
    x = torch.empty(shape, device="meta", requires_grad=not first)
    with FlopCounterMode(display=False) as counter:
        y = nn.Sequential(*modules)(x)
        forward = counter.get_total_flops()
        y.sum().backward()
    return forward // 2, (counter.get_total_flops() - forward) // 2
