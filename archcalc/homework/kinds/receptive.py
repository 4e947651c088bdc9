"""Receptive field of a small stack of convolutions and pools: r = r + d*(k - 1)*j, j = j*s, from r = j = 1.

Level 1: two to four 3x3, 5x5 or 7x7 stride-1 convolutions and 2x2 pools; level 2: larger kernels, strided
convolutions, and "how many stacked 3x3 convolutions see a 7x7 region?" (VGG's argument); level 3: dilation,
deeper stacks, and the jump (how far apart neighbouring outputs are in the input) asked too.
"""

from __future__ import annotations

import random

from archcalc.homework import meta
from archcalc.homework.layers import Layer
from archcalc.homework.question import Question
from archcalc.homework.words import say

DEEPEST = 6
COLUMNS = ("n",) + tuple(f"{field}{i}" for i in range(1, DEEPEST + 1) for field in ("type", "k", "s", "d")) + (
    "jump", "rf")


def _name(layer: Layer) -> str:
    what = "conv" if layer.kind == "conv" else "max pool"
    dilation = f", dilation {layer.d}" if layer.d > 1 else ""
    return f"{what} {layer.k}x{layer.k}, stride {layer.s}{dilation}"


def _draw(rng: random.Random, level: int) -> list[Layer]:
    depth = rng.randint(2, 4) if level == 1 else rng.randint(3, 5) if level == 2 else rng.randint(4, DEEPEST)
    layers = []
    for _ in range(depth):
        if rng.random() < 0.3 and (not layers or layers[-1].kind == "conv"):
            k = 2 if level == 1 else rng.choice((2, 3))
            layers.append(Layer("maxpool", 1, 1, k, 2))
        else:
            k = rng.choice((3, 3, 5, 7)) if level == 1 else rng.choice((1, 3, 3, 5, 7))
            s = 1 if level == 1 else rng.choice((1, 1, 2))
            d = rng.choice((1, 1, 2, 4)) if level == 3 and k > 1 else 1
            layers.append(Layer("conv", 1, 1, k, s, 0, d))
    return layers


def field(layers) -> tuple[int, int, list[str]]:
    """(receptive field, jump, the working line by line)."""
    r, j, lines = 1, 1, []
    for layer in layers:
        grown = r + layer.d * (layer.k - 1) * j
        dilation = f"{layer.d}*" if layer.d > 1 else ""
        lines.append(f"{_name(layer)}: r = {r} + {dilation}({layer.k} - 1)*{j} = {grown}, j = {j}*{layer.s} = "
                     f"{j * layer.s}")
        r, j = grown, j * layer.s
    return r, j, lines


def _numbers(layers, r: int, j: int) -> dict:
    numbers: dict[str, object] = {"n": len(layers)}
    for i in range(1, DEEPEST + 1):
        layer = layers[i - 1] if i <= len(layers) else None
        numbers[f"type{i}"] = None if layer is None else layer.kind
        for name in ("k", "s", "d"):
            numbers[f"{name}{i}"] = None if layer is None else getattr(layer, name)
    numbers["jump"], numbers["rf"] = j, r
    return numbers


def ask(rng: random.Random, level: int, lang: str) -> Question:
    if level >= 2 and rng.random() < 0.3:
        k = rng.choice((3, 3, 5))
        n = rng.randint(2, 5 if k == 3 else 3)
        layers = [Layer("conv", 1, 1, k, 1)] * n
        r, j, _ = field(layers)
        text = say(lang, "receptive.ask_count", k=k, rf=r)
        working = (say(lang, "receptive.count", k=k, grow=k - 1, rf=r, n=n),)
        return Question("receptive", text, str(n), working, _numbers(layers, r, j), ("n",), tuple(layers))
    layers = _draw(rng, level)
    r, j, lines = field(layers)
    stack = " → ".join(_name(layer) for layer in layers)
    if level == 3:
        text, answer, asked = say(lang, "receptive.ask_jump", stack=stack), f"{r}x{r}, jump {j}", ("rf", "jump")
    else:
        text, answer, asked = say(lang, "receptive.ask", stack=stack), f"{r}x{r}", ("rf",)
    return Question("receptive", text, answer, (say(lang, "receptive.rule"), *lines), _numbers(layers, r, j),
                    asked, tuple(layers))


def check(q: Question) -> list[str]:
    """The receptive field is the smallest input the stack (without padding) still maps to one output, and the
    jump how much larger an input must be for a second output: both read from PyTorch's shapes."""
    r, j = q.numbers["rf"], q.numbers["jump"]

    def out(size: int) -> int | None:
        return meta.out_size(q.layers, size)

    problems = []
    if out(r) != 1 or (r > 1 and out(r - 1) is not None):
        problems.append(f"rf: the formula gives {r}, but PyTorch maps {r} to {out(r)} and {r - 1} to {out(r - 1)}")
    if out(r + j) != 2 or out(r + j - 1) != 1:
        problems.append(f"jump: the formula gives {j}, but PyTorch maps {r + j} to {out(r + j)} outputs")
    expected = {("rf",): f"{r}x{r}", ("rf", "jump"): f"{r}x{r}, jump {j}", ("n",): str(q.numbers["n"])}[q.asked]
    return problems + ([] if q.answer == expected else [f"answer {q.answer!r}, the numbers give {expected!r}"])
