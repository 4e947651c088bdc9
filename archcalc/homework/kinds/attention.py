"""Parameters and MACs of attention (Vaswani et al., 2017) as nn.MultiheadAttention and
F.scaled_dot_product_attention compute it.

An nn.MultiheadAttention(E, h) holds the Q, K and V projections (E x E, E x kdim, E x vdim, each with a bias of
E) and the output projection (E x E + E): 4*E*E + 4*E where kdim = vdim = E. Its h heads split E into h slices
of d = E/h and add no weights. Attention of L queries over S keys: the scores Q Kᵀ take h*L*S*d MACs and the
weighted sum P V as many, 2*L*S*E together; a whole forward adds the projections, L*E*E for Q and for the
output, S*kdim*E for K and S*vdim*E for V (batch 1, bias excluded; analysis/counters/attention.py).

Level 1: an nn.MultiheadAttention's parameters; level 2: the MACs of scaled dot-product attention itself;
level 3: a whole forward's MACs, self- or cross-attention (keys of kdim, values of vdim), with or without bias.
"""

from __future__ import annotations

import random

from archcalc.formulas.terms import Term, expanded
from archcalc.homework.question import Question, disagreements
from archcalc.homework.words import say

COLUMNS = ("counted", "embed", "heads", "kdim", "vdim", "bias", "queries", "keys", "params", "macs")
COUNTED = {1: "parameters", 2: "attention", 3: "forward"}  # what a level's question counts
EMBED = (32, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
HEADS = (1, 2, 4, 6, 8, 12, 16)
LENGTHS = (7, 10, 16, 32, 49, 50, 64, 77, 128, 196, 197, 256)


def _draw(rng: random.Random, level: int) -> dict:
    e = rng.choice(EMBED)
    n = {"counted": COUNTED[level], "embed": e, "heads": rng.choice([h for h in HEADS if e % h == 0]), "kdim": e, "vdim": e, "bias": True,
         "queries": None, "keys": None}
    if level >= 2:
        n["queries"] = rng.choice(LENGTHS)
        n["keys"] = n["queries"] if rng.random() < 0.5 else rng.choice(LENGTHS)
    if level == 3:
        if n["keys"] != n["queries"] and rng.random() < 0.6:  # cross-attention to another model's features
            n["kdim"] = n["vdim"] = rng.choice((64, 128, 256, 512, 768))
        n["bias"] = rng.random() < 0.7
    return n


def params(n: dict) -> list[Term]:
    """Q, K and V projections with their biases; the output projection with its bias."""
    e, b = n["embed"], n["bias"]

    def projection(width: int) -> Term:
        return Term(e * width + e, f"({e}*{width} + {e})") if b else Term(e * width, f"{e}*{width}")

    return [projection(e), projection(n["kdim"]), projection(n["vdim"]), projection(e)]


def attention(n: dict) -> list[Term]:
    """Q Kᵀ and P V: h*L*S*d each."""
    h, l, s, d = n["heads"], n["queries"], n["keys"], n["embed"] // n["heads"]
    return [Term(h * l * s * d, f"{h}*{l}*{s}*{d}"), Term(h * l * s * d, f"{h}*{l}*{s}*{d}")]


def forward(n: dict) -> list[Term]:
    """The projections of Q, K and V, the attention, the output projection (batch 1)."""
    e, l, s = n["embed"], n["queries"], n["keys"]
    return [Term(l * e * e, f"{l}*{e}*{e}"), Term(s * n["kdim"] * e, f"{s}*{n['kdim']}*{e}"),
            Term(s * n["vdim"] * e, f"{s}*{n['vdim']}*{e}"), *attention(n), Term(l * e * e, f"{l}*{e}*{e}")]


def code(n: dict) -> str:
    options = ("" if n["kdim"] == n["embed"] else f", kdim={n['kdim']}, vdim={n['vdim']}") + (
        "" if n["bias"] else ", bias=False")
    return f"nn.MultiheadAttention({n['embed']}, {n['heads']}{options})"


def ask(rng: random.Random, level: int, lang: str) -> Question:
    n = _draw(rng, level)
    e, h = n["embed"], n["heads"]
    numbers = {**n, "params": sum(t.value for t in params(n)), "macs": None}
    if level == 1:
        working = (say(lang, "attention.params_rule", e=e, h=h, d=e // h), expanded(params(n)))
        return Question("attention", say(lang, "module.ask_params", code=f"`{code(n)}`"), str(numbers["params"]),
                        working, numbers, ("params",))
    if level == 2:
        terms, rule = attention(n), say(lang, "attention.sdpa_rule")
        text = say(lang, "attention.ask_sdpa", h=h, d=e // h, e=e, l=n["queries"], s=n["keys"])
    else:
        terms, rule = forward(n), say(lang, "attention.forward_rule")
        text = say(lang, "attention.ask_forward", code=f"`{code(n)}`", l=n["queries"], s=n["keys"])
    numbers["macs"] = sum(t.value for t in terms)
    return Question("attention", text, str(numbers["macs"]), (rule, expanded(terms)), numbers, ("macs",))


def check(q: Question) -> list[str]:
    """Built in PyTorch on the meta device: the module's parameters counted; scaled dot-product attention, or
    the module's forward, counted by torch.utils.flop_counter (FLOPs / 2)."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    n = q.numbers
    e, h, l, s = n["embed"], n["heads"], n["queries"], n["keys"]
    module = nn.MultiheadAttention(e, h, bias=n["bias"], kdim=n["kdim"], vdim=n["vdim"], batch_first=True,
                                   device="meta")
    found = {"params": sum(p.numel() for p in module.parameters())}
    if l is not None:
        with FlopCounterMode(display=False) as counter:
            if n["counted"] == "attention":
                x = torch.empty(1, h, l, e // h, device="meta")
                F.scaled_dot_product_attention(x, torch.empty(1, h, s, e // h, device="meta"),
                                               torch.empty(1, h, s, e // h, device="meta"))
            else:
                module(torch.empty(1, l, e, device="meta"), torch.empty(1, s, n["kdim"], device="meta"),
                       torch.empty(1, s, n["vdim"], device="meta"), need_weights=False)
        found["macs"] = counter.get_total_flops() // 2
    return disagreements(q, found)

