"""Trainable parameters of one layer, with the lecture's (k*k*C_in + 1)*C_out arithmetic.

Level 1: convolutions and fully connected layers; level 2: BatchNorm, pooling, and a convolution without bias
(before a BatchNorm); level 3: grouped and depthwise convolutions, a linear layer without bias.
"""

from __future__ import annotations

import random

from archcalc.homework import meta
from archcalc.homework.layers import Layer
from archcalc.homework.question import Question
from archcalc.homework.words import say

COLUMNS = ("layer", "c_in", "c_out", "k", "groups", "bias", "params")
IN_CHANNELS = (1, 3, 16, 32, 64, 96, 128, 256)
OUT_CHANNELS = (6, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512)
FEATURES_IN = (84, 120, 256, 400, 512, 1024, 2048, 2304, 4096, 9216, 25088)
FEATURES_OUT = (10, 84, 100, 120, 256, 512, 1000, 4096)


def _draw(rng: random.Random, level: int) -> Layer:
    kinds = ["conv", "conv", "linear"] + (["batchnorm", "maxpool", "avgpool"] if level >= 2 else []) + (
        ["grouped", "depthwise"] if level == 3 else [])
    kind = rng.choice(kinds)
    if kind in ("conv", "grouped", "depthwise"):
        k = rng.choice((1, 3, 3, 5, 7))
        bias = not (level >= 2 and rng.random() < 0.3)
        if kind == "depthwise":
            c = rng.choice((32, 64, 128, 256, 512))
            return Layer("conv", c, c * rng.choice((1, 1, 2)), k, groups=c, bias=bias)
        if kind == "grouped":
            groups = rng.choice((2, 4, 8, 32))
            c_in = rng.choice([c for c in (64, 128, 256, 512) if c % groups == 0])
            return Layer("conv", c_in, rng.choice([c for c in (64, 128, 256, 512) if c % groups == 0]), k,
                         groups=groups, bias=bias)
        return Layer("conv", rng.choice(IN_CHANNELS), rng.choice(OUT_CHANNELS), k, bias=bias)
    if kind == "linear":
        return Layer("linear", rng.choice(FEATURES_IN), rng.choice(FEATURES_OUT),
                     bias=not (level == 3 and rng.random() < 0.3))
    c = rng.choice(OUT_CHANNELS)
    if kind == "batchnorm":
        return Layer("batchnorm", c, c)
    return Layer(kind, c, c, rng.choice((2, 3)), 2)


def _working(layer: Layer, lang: str) -> tuple[str, ...]:
    term = layer.params()
    if term is None:
        return (say(lang, "params.pool"),)
    if layer.kind == "conv":
        if layer.groups > 1:
            rule = say(lang, "params.conv_groups", c_in=layer.c_in, groups=layer.groups,
                       per=layer.c_in // layer.groups)
        else:
            rule = say(lang, "params.conv" if layer.bias else "params.nobias")
    elif layer.kind == "linear":
        rule = say(lang, "params.linear" if layer.bias else "params.linear_nobias")
    else:
        rule = say(lang, "params.batchnorm")
    return rule, str(term)


def count(layer: Layer) -> int:
    term = layer.params()
    return 0 if term is None else term.value


def ask(rng: random.Random, level: int, lang: str) -> Question:
    layer = _draw(rng, level)
    windowed = layer.kind != "linear" and layer.kind != "batchnorm"
    numbers = {"layer": "pool" if layer.kind in ("maxpool", "avgpool") else layer.kind, "c_in": layer.c_in,
               "c_out": layer.c_out, "k": layer.k if windowed else None,
               "groups": layer.groups if layer.kind == "conv" else None,
               "bias": layer.bias if layer.kind in ("conv", "linear") else None, "params": count(layer)}
    text = say(lang, "params.ask", layer=say(lang, layer.kind), code=f"`{layer.code()}`")
    return Question("params", text, str(numbers["params"]), _working(layer, lang), numbers, ("params",), (layer,))


def check(q: Question) -> list[str]:
    found = meta.params(q.layers[0])
    problems = [] if found == q.numbers["params"] else [f"params: the formula gives {q.numbers['params']}, "
                                                        f"PyTorch {found}"]
    return problems + ([] if q.answer == str(found) else [f"answer {q.answer}, PyTorch {found}"])
