"""Activation memory of a layer's output, or of a small network's outputs, for a batch and a dtype.

bytes = N*C_out*H_out*W_out*(bytes per element), each output's size by (in + 2p - k)/s + 1.
Level 1: one layer, float32; level 2: float16, bfloat16 and float64 too; level 3: a network of two to four
layers, all of whose outputs are kept for the backward pass.
"""

from __future__ import annotations

import random

from archcalc.formulas.numbers import human_bytes
from archcalc.homework import meta
from archcalc.homework.layers import Layer
from archcalc.homework.question import Question
from archcalc.homework.words import say

DEEPEST = 4
BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
COLUMNS = ("batch", "dtype", "bytes_per_element", "c_in", "in", "n") + tuple(
    f"{field}{i}" for i in range(1, DEEPEST + 1) for field in ("layer", "c", "k", "s", "p", "out")) + (
    "elements", "bytes")
SIZES = (28, 32, 56, 64, 112, 224)
BATCHES = (1, 8, 16, 32, 64, 100, 128, 256)


def _layer(rng: random.Random, c_in: int) -> Layer:
    if rng.random() < 0.3:
        return Layer("maxpool", c_in, c_in, 2, 2)
    k = rng.choice((1, 3, 3, 5))
    return Layer("conv", c_in, rng.choice((16, 32, 64, 128, 256)), k, rng.choice((1, 1, 2)), k // 2)


def ask(rng: random.Random, level: int, lang: str) -> Question:
    batch, dtype = rng.choice(BATCHES), "float32" if level == 1 else rng.choice(tuple(BYTES))
    c_in, size = rng.choice((3, 16, 32, 64)), rng.choice(SIZES)
    layers, channels = [], c_in
    for _ in range(rng.randint(2, DEEPEST) if level == 3 else 1):
        layer = _layer(rng, channels)
        layers.append(layer)
        channels = layer.c_out
    bpe = BYTES[dtype]
    numbers: dict[str, object] = {"batch": batch, "dtype": dtype, "bytes_per_element": bpe, "c_in": c_in,
                                  "in": size, "n": len(layers)}
    working, h, elements, parts = [say(lang, "memory.rule", bpe=bpe, dtype=dtype)], size, 0, []
    for i in range(1, DEEPEST + 1):
        layer = layers[i - 1] if i <= len(layers) else None
        if layer is None:
            numbers.update({f"{field}{i}": None for field in ("layer", "c", "k", "s", "p", "out")})
            continue
        out = layer.out_size(h)
        h = out.output
        count = batch * layer.c_out * h * h
        elements += count
        parts.append(count * bpe)
        numbers.update({f"layer{i}": layer.kind, f"c{i}": layer.c_out, f"k{i}": layer.k, f"s{i}": layer.s,
                        f"p{i}": layer.p, f"out{i}": h})
        working.append(f"`{layer.code()}`: {layer.c_out}x{h}x{h} ({out.formula}); "
                       f"{batch}*{layer.c_out}*{h}*{h}*{bpe} = {count * bpe:,}")
    numbers["elements"], numbers["bytes"] = elements, elements * bpe
    if len(parts) > 1:
        working.append(" + ".join(f"{p:,}" for p in parts) + f" = {elements * bpe:,}")
    working.append(f"= {human_bytes(elements * bpe)}")
    values = {"batch": batch, "c_in": c_in, "size": size, "dtype": dtype}
    if len(layers) == 1:
        text = say(lang, "memory.ask", code=f"`{layers[0].code()}`", **values)
    else:
        text = say(lang, "memory.ask_net", stack=" → ".join(f"`{layer.code()}`" for layer in layers), **values)
    return Question("memory", text, str(elements * bpe), tuple(working), numbers, ("bytes",), tuple(layers), size)


def check(q: Question) -> list[str]:
    n = q.numbers
    rows = meta.run(q.layers, (n["batch"], n["c_in"], q.size, q.size), n["dtype"])
    found = sum(row["bytes"] for row in rows)
    problems = [] if found == n["bytes"] else [f"bytes: the formula gives {n['bytes']}, PyTorch's tensors {found}"]
    sizes = [row["shape"][-1] for row in rows]
    if sizes != [n[f"out{i}"] for i in range(1, len(rows) + 1)]:
        problems.append(f"output sizes: PyTorch {sizes}")
    return problems + ([] if q.answer == str(found) else [f"answer {q.answer}, PyTorch {found}"])
