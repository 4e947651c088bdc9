"""Parameters and MACs of recurrent layers (nn.RNN, nn.GRU, nn.LSTM), as PyTorch lays out their weights.

Each of a cell's G gates (RNN 1, GRU 3, LSTM 4) has a weight on the layer's input (H x I), one on the hidden
state (H x H) and two biases (b_ih, b_hh): a layer and direction holds G*(H*I + H*H + 2*H). Layer l > 1 takes
the layer below's output, I_l = H*D wide (D = 2 directions when bidirectional). A forward over T steps
multiplies every weight matrix once a step and sequence: T*D*Σ G*H*(I_l + H) MACs for a batch of 1 (bias
excluded), what torch.utils.flop_counter counts (analysis/counters/recurrent.py).

Level 1: one layer's parameters; level 2: stacked (2-3 layers), bidirectional, without bias; level 3: the MACs
of a forward over T steps.
"""

from __future__ import annotations

import random

from archcalc.formulas.terms import Term, expanded
from archcalc.homework.question import Question, disagreements
from archcalc.homework.words import say

COLUMNS = ("cell", "input_size", "hidden", "layers", "bidirectional", "bias", "steps", "params", "macs")
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
INPUTS = (1, 8, 10, 16, 28, 32, 50, 64, 100, 128, 256, 300)
HIDDEN = (10, 16, 20, 32, 50, 64, 100, 128, 256, 512)


def _draw(rng: random.Random, level: int) -> dict:
    stacked = level >= 2
    return {"cell": rng.choice(("RNN", "GRU", "LSTM", "LSTM")), "input_size": rng.choice(INPUTS),
            "hidden": rng.choice(HIDDEN), "layers": rng.choice((1, 2, 2, 3)) if stacked else 1,
            "bidirectional": stacked and rng.random() < 0.5, "bias": not (stacked and rng.random() < 0.3),
            "steps": rng.choice((5, 10, 20, 50, 100)) if level == 3 else None}


def _widths(n: dict) -> list[int]:
    """I_l: each layer's input width."""
    directions = 2 if n["bidirectional"] else 1
    return [n["input_size"]] + [n["hidden"] * directions] * (n["layers"] - 1)


def params(n: dict) -> list[Term]:
    """D*G*(H*I_l + H*H + 2*H), one term a layer l."""
    g, h, d = GATES[n["cell"]], n["hidden"], 2 if n["bidirectional"] else 1
    terms = []
    for width in _widths(n):
        inner = f"{h}*{width} + {h}*{h}" + (f" + 2*{h}" if n["bias"] else "")
        value = d * g * (h * width + h * h + (2 * h if n["bias"] else 0))
        terms.append(Term(value, (f"{d}*" if d > 1 else "") + f"{g}*({inner})"))
    return terms


def macs(n: dict) -> list[Term]:
    """T*D*G*H*(I_l + H), one term a layer l (batch 1)."""
    g, h, d, t = GATES[n["cell"]], n["hidden"], 2 if n["bidirectional"] else 1, n["steps"]
    return [Term(t * d * g * h * (width + h), f"{t}*" + (f"{d}*" if d > 1 else "") + f"{g}*{h}*({width} + {h})")
            for width in _widths(n)]


def code(n: dict) -> str:
    options = (f", num_layers={n['layers']}" if n["layers"] > 1 else "") + (
        ", bidirectional=True" if n["bidirectional"] else "") + ("" if n["bias"] else ", bias=False")
    return f"nn.{n['cell']}({n['input_size']}, {n['hidden']}{options})"


def _working(n: dict, lang: str, asked: list[Term]) -> tuple[str, ...]:
    g, h, d = GATES[n["cell"]], n["hidden"], 2 if n["bidirectional"] else 1
    if n["steps"] is None:
        lines = [say(lang, "recurrent.rule" if n["bias"] else "recurrent.rule_nobias", cell=n["cell"], g=g)]
    else:
        lines = [say(lang, "recurrent.steps", cell=n["cell"], g=g, t=n["steps"])]
    if n["bidirectional"]:
        lines.append(say(lang, "recurrent.bidirectional"))
    if n["layers"] > 1:
        lines.append(say(lang, "recurrent.stacked", width=h * d))
    return (*lines, expanded(asked))


def ask(rng: random.Random, level: int, lang: str) -> Question:
    n = _draw(rng, level)
    counted = params(n)
    numbers = {**n, "params": sum(t.value for t in counted), "macs": None}
    if n["steps"] is None:
        text = say(lang, "module.ask_params", code=f"`{code(n)}`")
        return Question("recurrent", text, str(numbers["params"]), _working(n, lang, counted), numbers, ("params",))
    work = macs(n)
    numbers["macs"] = sum(t.value for t in work)
    text = say(lang, "recurrent.ask_macs", code=f"`{code(n)}`", t=n["steps"])
    return Question("recurrent", text, str(numbers["macs"]), _working(n, lang, work), numbers, ("macs",))


def check(q: Question) -> list[str]:
    """The layer built in PyTorch on the meta device: its parameters counted, and forwards of 1, 2 and 3 steps
    counted by torch.utils.flop_counter (FLOPs / 2): each step adds the same products (the two differences
    agree), so T steps cost the first step's and T - 1 more (a forward of 100 steps on the meta device would
    take a second a question)."""
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    n = q.numbers
    layer = getattr(nn, n["cell"])(n["input_size"], n["hidden"], n["layers"], bias=n["bias"],
                                   bidirectional=n["bidirectional"], device="meta")
    found = {"params": sum(p.numel() for p in layer.parameters())}
    if n["steps"] is not None:
        counted = []
        for steps in (1, 2, 3):
            with FlopCounterMode(display=False) as counter:
                layer(torch.empty(steps, 1, n["input_size"], device="meta"))
            counted.append(counter.get_total_flops() // 2)
        first, step = counted[0], counted[1] - counted[0]
        if counted[2] - counted[1] != step:
            return [f"macs: PyTorch's steps differ in cost ({counted}), so T steps cannot be had from three"]
        found["macs"] = first + (n["steps"] - 1) * step
    return disagreements(q, found)
