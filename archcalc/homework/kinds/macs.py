"""Multiply-accumulates of one layer, and of a layer pair against the direct convolution, with the ratio.

MACs = (H_out*W_out*C_out)*(K*K*C_in/groups) for a convolution, n_in*n_out for a linear layer, bias
excluded: the lecture's 연산횟수 (112.9M against 5.3M for its bottleneck), and fvcore's count.
Level 1: one convolution (stride 1) or linear layer; level 2: strided convolutions and the bottleneck layer
(a 1x1 reduction first); level 3: grouped and depthwise convolutions and the depthwise separable pair.
"""

from __future__ import annotations

import random

from archcalc.formulas import bottleneck as bottleneck_rule
from archcalc.formulas.numbers import human
from archcalc.formulas.terms import expanded, total
from archcalc.homework import meta
from archcalc.homework.layers import Layer
from archcalc.homework.question import Question
from archcalc.homework.words import say

COLUMNS = ("layer", "in", "c_in", "c_mid", "c_out", "k", "s", "p", "groups", "out", "macs", "direct", "reduced",
           "ratio")
SIZES = (7, 14, 28, 32, 56, 112)
CHANNELS = (3, 16, 32, 64, 96, 128, 192, 256, 512)


def _numbers(**given) -> dict:
    return {name: given.get(name) for name in COLUMNS}


def _single(rng: random.Random, level: int, lang: str) -> Question:
    if rng.random() < 0.25:
        layer = Layer("linear", rng.choice((256, 512, 1024, 2304, 4096, 9216)), rng.choice((10, 100, 1000, 4096)))
        value, text = layer.macs(None)
        numbers = _numbers(layer="linear", c_in=layer.c_in, c_out=layer.c_out, macs=value)
        ask_text = say(lang, "macs.ask_linear", code=f"`{layer.code()}`")
        return Question("macs", ask_text, str(value), (text + f" ≈ {human(value)}",), numbers, ("macs",), (layer,))
    k = rng.choice((1, 3, 3, 5, 7) if level >= 2 else (1, 3, 5))
    s = rng.choice((1, 2)) if level >= 2 else 1
    c_in, c_out = rng.choice(CHANNELS), rng.choice(CHANNELS[1:])
    groups = 1
    if level == 3 and rng.random() < 0.5:
        c_in = rng.choice((32, 64, 128, 256))
        groups = c_in if rng.random() < 0.5 else rng.choice((2, 4, 8))
        c_out = c_in if groups == c_in else rng.choice((64, 128, 256))
    layer = Layer("conv", c_in, c_out, k, s, rng.choice((0, k // 2)), groups=groups)
    size = rng.choice([n for n in SIZES if n + 2 * layer.p >= k])
    out = layer.out_size(size)
    value, text = layer.macs(out.output)
    numbers = _numbers(layer="conv", **{"in": size}, c_in=c_in, c_out=c_out, k=k, s=s, p=layer.p, groups=groups,
                       out=out.output, macs=value)
    ask_text = say(lang, "macs.ask", layer=say(lang, "conv"), code=f"`{layer.code()}`", size=size, c_in=c_in)
    working = (say(lang, "macs.conv", rule=out.formula), text + f" ≈ {human(value)}")
    return Question("macs", ask_text, str(value), working, numbers, ("macs",), (layer,), size)


def _pair(rng: random.Random, level: int, lang: str) -> Question:
    size, k = rng.choice((7, 14, 28, 56)), rng.choice((3, 5))
    if level == 3 and rng.random() < 0.5:
        form = "separable"
        c_in, c_out = rng.choice((32, 64, 128, 256, 512)), rng.choice((64, 128, 256, 512))
        c_mid = None
        first = Layer("conv", c_in, c_in, k, p=k // 2, groups=c_in)
        second = Layer("conv", c_in, c_out, 1)
    else:
        form = "bottleneck"
        c_in = rng.choice((192, 256, 480, 512, 832))
        c_mid, c_out = rng.choice((16, 24, 32, 48, 64, 96)), rng.choice((32, 48, 64, 128))
        first, second = Layer("conv", c_in, c_mid, 1), Layer("conv", c_mid, c_out, k, p=k // 2)
    direct_layer = Layer("conv", c_in, c_out, k, p=k // 2)
    direct, direct_text = direct_layer.macs(size)
    if form == "bottleneck":
        designs = bottleneck_rule.compare(c_in, c_mid, c_out, size, k)
        reduced = total(designs.bottleneck.mults).value
        reduced_text = expanded(designs.bottleneck.mults)
    else:
        (a, a_text), (b, b_text) = first.macs(size), second.macs(size)
        reduced, reduced_text = a + b, f"{a_text.rsplit(' = ', 1)[0]} + {b_text.rsplit(' = ', 1)[0]} = {a + b:,}"
    ratio = round(direct / reduced, 2)
    numbers = _numbers(layer=form, **{"in": size}, c_in=c_in, c_mid=c_mid, c_out=c_out, k=k, s=1, p=k // 2,
                       groups=c_in if form == "separable" else 1, out=size, direct=direct, reduced=reduced,
                       ratio=ratio)
    text = say(lang, f"macs.{form}", size=size, c_in=c_in, c_mid=c_mid, c_out=c_out, k=k)
    second_name = say(lang, "macs.reduced" if form == "bottleneck" else "macs.factored")
    answer = f"{say(lang, 'macs.direct')} {direct}; {second_name} {reduced}; {say(lang, 'macs.ratio')} {ratio}"
    working = (f"{say(lang, 'macs.direct')}: {direct_text} ≈ {human(direct)}",
               f"{second_name}: {reduced_text} ≈ {human(reduced)}",
               f"{say(lang, 'macs.ratio')}: {direct:,}/{reduced:,} = {ratio}")
    return Question("macs", text, answer, working, numbers, ("direct", "reduced", "ratio"),
                    (direct_layer, first, second), size)


def ask(rng: random.Random, level: int, lang: str) -> Question:
    if level >= 2 and rng.random() < 0.4:
        return _pair(rng, level, lang)
    return _single(rng, level, lang)


def check(q: Question) -> list[str]:
    n, problems = q.numbers, []

    def counted(layers) -> int:
        first = layers[0]
        shape = (1, first.c_in) if first.kind == "linear" else (1, first.c_in, q.size, q.size)
        return sum(row["macs"] for row in meta.run(layers, shape))

    if n["layer"] in ("conv", "linear"):
        found = counted(q.layers)
        if found != n["macs"] or q.answer != str(found):
            problems.append(f"macs: the formula gives {n['macs']}, PyTorch's flop counter {found}")
        return problems
    direct, reduced = counted(q.layers[:1]), counted(q.layers[1:])
    if (direct, reduced) != (n["direct"], n["reduced"]):
        problems.append(f"the formula gives {n['direct']} and {n['reduced']}, PyTorch's flop counter {direct} "
                        f"and {reduced}")
    if round(direct / reduced, 2) != n["ratio"]:
        problems.append(f"ratio {n['ratio']}, PyTorch's counts give {direct / reduced:.4f}")
    return problems
