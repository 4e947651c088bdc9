"""Output size of a convolution or pooling layer from (in, k, s, p, d, ceil), sometimes asked backwards.

Level 1: exact divisions only; level 2: floor, and "which padding keeps the size?", "which stride halves it?";
level 3: dilation and ceil_mode (PyTorch's pools drop a last window that would start in the padding).
"""

from __future__ import annotations

import random
from dataclasses import replace

from archcalc.homework import meta
from archcalc.homework.layers import Layer
from archcalc.homework.question import Question
from archcalc.homework.words import say

COLUMNS = ("in", "k", "s", "p", "d", "ceil", "out")
SIZES = (5, 7, 8, 13, 14, 15, 16, 27, 28, 31, 32, 55, 56, 64, 112, 224, 227)
CONV = ((1, (0,), (1, 2)), (3, (0, 1), (1, 2)), (5, (0, 2), (1, 2)), (7, (0, 3), (1, 2)), (11, (0, 2), (4,)))
POOL = ((2, (0,), (2,)), (3, (0, 1), (1, 2)))


def _settings(layer: Layer, size: int | None = None, hide: str = "") -> str:
    shown = [f"kernel_size={layer.k}"]
    if hide != "s":
        shown.append(f"stride={layer.s}")
    if hide != "p":
        shown.append(f"padding={layer.p}")
    if layer.d != 1:
        shown.append(f"dilation={layer.d}")
    if layer.ceil:
        shown.append("ceil_mode=True")
    return ", ".join(shown)


def _draw(rng: random.Random, level: int) -> tuple[Layer, int]:
    """A layer and an input size whose output exists (and divides exactly at level 1)."""
    while True:
        pool = rng.random() < 0.35
        k, pads, strides = rng.choice(POOL if pool else CONV)
        kind = rng.choice(("maxpool", "avgpool")) if pool else "conv"
        d = rng.choice((1, 1, 2, 3)) if level == 3 and kind != "avgpool" and k > 1 else 1
        ceil = level == 3 and pool and rng.random() < 0.6
        layer = Layer(kind, 1, 1, k, rng.choice(strides), rng.choice(pads), d, ceil=ceil)
        size = rng.choice(SIZES)
        extent = d * (k - 1) + 1
        if size + 2 * layer.p < extent:
            continue
        exact = (size + 2 * layer.p - extent) % layer.s == 0
        if level == 1 and not exact:
            continue
        if level >= 2 and exact and rng.random() < 0.6:
            continue  # more of the sizes that need the floor (or the ceiling)
        return layer, size


def ask(rng: random.Random, level: int, lang: str) -> Question:
    form = "forward"
    if level >= 2:
        form = rng.choice(("forward", "forward", "padding", "stride"))
    layer, size = _draw(rng, level)
    if form == "padding":
        k, d = rng.choice(((3, 1), (5, 1), (7, 1), (3, 2)) if level == 3 else ((3, 1), (5, 1), (7, 1)))
        layer = Layer("conv", 1, 1, k, 1, d * (k - 1) // 2, d)
        size = rng.choice(SIZES)
    elif form == "stride":
        size = rng.choice([n for n in SIZES if n % 2 == 0])
        k, p = rng.choice(((3, 1), (1, 0), (2, 0), (4, 1), (7, 3)))
        layer = Layer("maxpool" if k == 2 else "conv", 1, 1, k, 2, p)
    result = layer.out_size(size)
    numbers = {"in": size, "k": layer.k, "s": layer.s, "p": layer.p, "d": layer.d, "ceil": layer.ceil,
               "out": result.output}
    text_values = {"layer": say(lang, layer.kind), "size": size}
    working = [say(lang, "outsize.rule" if layer.d == 1 else "outsize.rule_dilated")]
    if layer.ceil:
        working.append(say(lang, "outsize.ceil"))
    elif not result.exact:
        working.append(say(lang, "outsize.floor"))
    working.append(result.formula)
    if form == "forward":
        text = say(lang, "outsize.forward", settings=_settings(layer), **text_values)
        answer, asked = f"{result.output}x{result.output}", ("out",)
    elif form == "padding":
        text = say(lang, "outsize.padding", settings=_settings(layer, hide="p"), **text_values)
        answer, asked = str(layer.p), ("p",)
        working.insert(1, say(lang, "outsize.keeps") + f" = {layer.d}*({layer.k} - 1)/2 = {layer.p}")
    else:
        half = size // 2
        strides = [s for s in range(1, size + 1) if replace(layer, s=s).out_size(size).output == half]
        if strides != [2]:
            raise AssertionError(f"stride question with answers {strides}")
        text = say(lang, "outsize.stride", settings=_settings(layer, hide="s"), half=half, **text_values)
        answer, asked = str(layer.s), ("s",)
        working.append(say(lang, "outsize.halves", s=layer.s, half=half))
    return Question("outsize", text, answer, tuple(working), numbers, asked, (layer,), size)


def check(q: Question) -> list[str]:
    n = q.numbers
    out = meta.out_size(q.layers, q.size)
    if out is None:
        return [f"PyTorch refuses a {q.size}x{q.size} input"]
    problems = [] if out == n["out"] else [f"out: the formula gives {n['out']}, PyTorch {out}"]
    if q.asked == ("out",) and q.answer != f"{out}x{out}":
        problems.append(f"answer {q.answer!r}, PyTorch {out}x{out}")
    layer = q.layers[0]
    if q.asked == ("p",) and (out != q.size or q.answer != str(layer.p)):
        problems.append(f"answer p = {q.answer}: PyTorch gives {out} for {q.size} with padding {layer.p}")
    if q.asked == ("s",) and (out != q.size // 2 or q.answer != str(layer.s)):
        problems.append(f"answer s = {q.answer}: PyTorch gives {out} for {q.size} with stride {layer.s}")
    return problems

