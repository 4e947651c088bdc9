"""A small random CNN, as a table of layers and as PyTorch code, whose every row's output shape, parameters
and MACs the student fills in. answers.csv has a row per layer (id "3.2": network 3, row 2) and a total.

Level 1: convolutions (stride 1), ReLU, max pooling, one linear layer; level 2: BatchNorm after bias-free
convolutions, strided convolutions, average pooling, a hidden linear layer; level 3: depthwise and grouped
convolutions too.
"""

from __future__ import annotations

import random

from archcalc.homework import meta
from archcalc.homework.kinds.params import count as params_of
from archcalc.homework.layers import Layer
from archcalc.homework.question import Question
from archcalc.homework.words import say

COLUMNS = ("row", "layer", "c_in", "h_in", "c_out", "h_out", "k", "s", "p", "groups", "bias", "params", "macs")


def _draw(rng: random.Random, level: int) -> tuple[int, int, list[Layer]]:
    c_in, size = rng.choice(((1, 28), (3, 32), (3, 32), (3, 64)))
    layers, c, h = [], c_in, size
    for block in range(rng.randint(2, 3)):
        c_out = rng.choice((8, 16, 32)) * (2 ** block)
        k = rng.choice((3, 3, 5))
        s = 2 if level >= 2 and h >= 16 and rng.random() < 0.3 else 1
        norm = level >= 2 and rng.random() < 0.5
        if level == 3 and block > 0 and rng.random() < 0.5:
            layers.append(Layer("conv", c, c, 3, 1, 1, groups=c, bias=not norm))  # depthwise, then pointwise
            layers.append(Layer("conv", c, c_out, 1, bias=not norm))
        else:
            layers.append(Layer("conv", c, c_out, k, s, rng.choice((0, k // 2)) if h > 8 else k // 2, bias=not norm))
        h = layers[-1].out_size(h).output
        c = c_out
        if norm:
            layers.append(Layer("batchnorm", c, c))
        layers.append(Layer("relu", c, c))
        if h >= 4:
            layers.append(Layer(rng.choice(("maxpool", "avgpool")) if level >= 2 else "maxpool", c, c, 2, 2))
            h = layers[-1].out_size(h).output
    features = c * h * h
    layers.append(Layer("flatten", c, features))
    if level >= 2:
        hidden = rng.choice((64, 128, 256))
        layers += [Layer("linear", features, hidden), Layer("relu", hidden, hidden)]
        features = hidden
    layers.append(Layer("linear", features, 10))
    return c_in, size, layers


def _sum(values: list[int]) -> str:
    """The rows' values that are not 0, added up as written: '608 + 2,336 + 9,216'."""
    return " + ".join(f"{v:,}" for v in values if v) or "0"


def _shape(c: int, h: int | None) -> str:
    return f"{c}" if h is None else f"{c}x{h}x{h}"


def ask(rng: random.Random, level: int, lang: str) -> Question:
    c_in, size, layers = _draw(rng, level)
    rows, h, table = [], size, []
    total_params = total_macs = 0
    for i, layer in enumerate(layers, 1):
        h_in = h
        working = []
        if layer.windowed:
            out = layer.out_size(h)
            h = out.output
            working.append(f"H: {out.formula}")
        elif layer.kind in ("flatten", "linear"):
            h = None
        if layer.kind == "flatten":
            working.append(f"{layer.c_in}*{h_in}*{h_in} = {layer.c_out}")
        term = layer.params()
        params = params_of(layer)
        if term is not None:
            working.append(f"params: {term}")
        macs, macs_text = layer.macs(h)
        if macs:
            working.append(f"MACs: {macs_text}")
        if not working:
            working.append(say(lang, "network.same"))
        total_params += params
        total_macs += macs
        numbers = {"row": i, "layer": layer.kind, "c_in": layer.c_in, "h_in": h_in, "c_out": layer.c_out,
                   "h_out": h, "k": layer.k if layer.windowed else None, "s": layer.s if layer.windowed else None,
                   "p": layer.p if layer.windowed else None, "groups": layer.groups if layer.kind == "conv" else None,
                   "bias": layer.bias if layer.kind in ("conv", "linear") else None, "params": params, "macs": macs}
        shape_in = _shape(layer.c_in, h_in)
        text = say(lang, "network.row", net="{net}", row=i, code=f"`{layer.code()}`", shape=shape_in)
        answer = f"{_shape(layer.c_out, h)}; {params}; {macs}"
        rows.append(Question("network", text, answer, tuple(working), numbers, ("h_out", "params", "macs"),
                             (layer,), h_in or 0))
        table.append((i, layer.code(), _shape(layer.c_out, h), params, macs))
    code = ["```python", "import torch", "from torch import nn", "", "net = nn.Sequential("]
    code += [f"    {layer.code()},  # {i}" for i, layer in enumerate(layers, 1)]
    code += [")", f"y = net(torch.randn(1, {c_in}, {size}, {size}))", "```"]
    blank = [f"| {i} | `{c}` |  |  |  |" for i, c, _, _, _ in table]
    head = (f"| # | {say(lang, 'column.layer')} | {say(lang, 'column.shape')} | {say(lang, 'column.params')} | "
            f"{say(lang, 'column.macs')} |\n|---|---|---|---|---|")
    figure = "\n".join([head, *blank, "", *code])
    filled = [f"| {i} | `{c}` | {shape} | {params:,} | {macs:,} |" for i, c, shape, params, macs in table]
    filled.append(f"| | {say(lang, 'network.total')} | | {total_params:,} | {total_macs:,} |")
    totals = {name: None for name in COLUMNS} | {"layer": "total", "params": total_params, "macs": total_macs}
    rows.append(Question("network", say(lang, "network.total"), f"{total_params}; {total_macs}",
                         (f"params: {_sum([r.numbers['params'] for r in rows])} = {total_params:,}",
                          f"MACs: {_sum([r.numbers['macs'] for r in rows])} = {total_macs:,}"),
                         totals, ("params", "macs")))
    answer = "\n".join([head, *filled])
    return Question("network", say(lang, "network.ask", c_in=c_in, size=size), answer, (), {}, (), tuple(layers),
                    size, figure, tuple(rows))


def check(q: Question) -> list[str]:
    first = q.layers[0]
    found = meta.run(q.layers, (1, first.c_in, q.size, q.size))
    problems = []
    for row, layer, seen in zip(q.rows, q.layers, found):
        n = row.numbers
        shape = seen["shape"][1:]
        expected = (n["c_out"],) if n["h_out"] is None else (n["c_out"], n["h_out"], n["h_out"])
        if shape != expected:
            problems.append(f"row {n['row']}: output {expected}, PyTorch {shape}")
        if meta.params(layer) != n["params"]:
            problems.append(f"row {n['row']}: params {n['params']}, PyTorch {meta.params(layer)}")
        if seen["macs"] != n["macs"]:
            problems.append(f"row {n['row']}: MACs {n['macs']}, PyTorch's flop counter {seen['macs']}")
    total = q.rows[-1].numbers
    if total["params"] != sum(r.numbers["params"] for r in q.rows[:-1]):
        problems.append("the total of the parameters is not the sum of the rows")
    return problems
