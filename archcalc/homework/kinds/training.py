"""The memory a layer or a small network holds to train, beside its activations: its parameters, their
gradients and the optimizer's state, as PyTorch's own optimizers keep them (archcalc/training/optimizers.py).

parameters     P*(bytes per element)            P = every layer's (k*k*C_in + 1)*C_out or (inputs + 1)*outputs
gradients      P*(bytes per element)            one per trainable parameter, in its dtype
state          buffers*P*(bytes per element) + 4*T    SGD with momentum and Nesterov: 1 buffer; Adam and AdamW:
               2 (exp_avg, exp_avg_sq); RMSprop, Adagrad: 1; plain SGD: none; and, but for SGD, a step counter
               per parameter tensor (T tensors: a weight and a bias a layer), a 0-dim float32 tensor of 4 bytes
Level 1: one conv or linear layer in float32, SGD with momentum; level 2: any of the seven optimizers, step
counters included; level 3: two to four convolutions in a row, cast whole to float16 or bfloat16 (its gradients
and state in that dtype too, the step counters still float32) or kept in float32, with Adam or AdamW.
"""

from __future__ import annotations

import random

from archcalc.formulas.numbers import human_bytes
from archcalc.homework.layers import Layer
from archcalc.homework.question import Question
from archcalc.homework.words import say

COLUMNS = ("layers", "optimizer", "dtype", "bytes_per_element", "params", "tensors", "buffers", "counters",
           "params_bytes", "grads_bytes", "state_bytes", "total_bytes")
BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")
COUNTER = 4  # a step counter: a 0-dim float32 tensor
IN_CHANNELS = (3, 16, 32, 64, 128, 256)
OUT_CHANNELS = (16, 32, 64, 96, 128, 256, 512)
FEATURES_IN = (84, 256, 512, 1024, 2048, 4096)
FEATURES_OUT = (10, 100, 256, 512, 1000, 4096)


def _layer(rng: random.Random, c_in: int | None) -> Layer:
    if c_in is None and rng.random() < 0.35:
        return Layer("linear", rng.choice(FEATURES_IN), rng.choice(FEATURES_OUT))
    k = rng.choice((1, 3, 3, 5))
    return Layer("conv", c_in or rng.choice(IN_CHANNELS), rng.choice(OUT_CHANNELS), k, p=k // 2)


def _draw(rng: random.Random, level: int) -> tuple[list[Layer], str, str]:
    if level < 3:
        return [_layer(rng, None)], "momentum" if level == 1 else rng.choice(OPTIMIZERS), "float32"
    layers = [_layer(rng, rng.choice(IN_CHANNELS))]
    for _ in range(rng.randint(1, 3)):
        layers.append(_layer(rng, layers[-1].c_out))
    return layers, rng.choice(("adam", "adamw")), rng.choice(tuple(BYTES))


def ask(rng: random.Random, level: int, lang: str) -> Question:
    from archcalc.training.optimizers import state_of

    layers, optimizer, dtype = _draw(rng, level)
    bpe = BYTES[dtype]
    terms = [layer.params() for layer in layers]
    params = sum(t.value for t in terms)
    tensors = 2 * len(layers)  # (a weight and a bias each)
    names, counter = state_of(optimizer)
    buffers, counters = len(names), tensors if counter else 0
    weights, grads = params * bpe, params * bpe
    state = buffers * params * bpe + COUNTER * counters
    numbers = {"layers": len(layers), "optimizer": optimizer, "dtype": dtype, "bytes_per_element": bpe,
               "params": params, "tensors": tensors, "buffers": buffers, "counters": counters,
               "params_bytes": weights, "grads_bytes": grads, "state_bytes": state,
               "total_bytes": weights + grads + state}
    code = " → ".join(f"`{layer.code()}`" for layer in layers)
    text = say(lang, "training.ask", code=code, optimizer=say(lang, f"optimizer.{optimizer}"), dtype=dtype)
    p_text = (" + ".join(str(t).rsplit(" = ", 1)[0] for t in terms) + f" = {params:,}" if len(terms) > 1 else
              str(terms[0]))
    state_terms = ([f"{' + '.join(names)}: {buffers}*{params:,}*{bpe}"] if names else []) + (
        [f"{say(lang, 'training.counters')} {COUNTER}*{counters}"] if counters else [])
    working = [say(lang, "training.rule", dtype=dtype, bpe=bpe) + (say(lang, "training.rule_counter") if counters
                                                                     else ""),
               f"P = {p_text}",
               f"{say(lang, 'training.params')}: {params:,}*{bpe} = {weights:,}",
               f"{say(lang, 'training.grads')}: {params:,}*{bpe} = {grads:,}",
               f"{say(lang, 'training.state')}: " + (" + ".join(state_terms) + f" = {state:,}" if state_terms else
                                                     say(lang, "training.no_state")),
               f"{weights:,} + {grads:,} + {state:,} = {weights + grads + state:,} "
               f"({human_bytes(weights + grads + state)})"]
    return Question("training", text, f"{weights}; {grads}; {state}; {weights + grads + state}", tuple(working),
                    numbers, ("params_bytes", "grads_bytes", "state_bytes", "total_bytes"), tuple(layers))


def check(q: Question) -> list[str]:
    """The layers built in PyTorch on the CPU in the question's dtype, one step of PyTorch's optimizer taken
    on zero gradients, and the bytes of the parameters, their gradients and the optimizer's state read back."""
    n = q.numbers
    found = _held(q.layers, n["optimizer"], n["dtype"])
    problems = [f"{name}: the formula gives {n[name]}, PyTorch {value}" for name, value in found.items()
                if n[name] != value]
    answer = "; ".join(str(found[name]) for name in q.asked)
    return problems + ([] if q.answer == answer else [f"answer {q.answer}, PyTorch {answer}"])


def _held(layers: tuple[Layer, ...], optimizer: str, dtype: str) -> dict[str, int]:
    import torch
    from torch import nn

    from archcalc.training.optimizers import optimizer_for

    def made(layer: Layer) -> nn.Module:
        if layer.kind == "conv":
            return nn.Conv2d(layer.c_in, layer.c_out, layer.k, padding=layer.p, bias=layer.bias)
        return nn.Linear(layer.c_in, layer.c_out, bias=layer.bias)

    model = nn.ModuleList(made(layer) for layer in layers).to(getattr(torch, dtype))
    params = list(model.parameters())
    for p in params:
        p.grad = torch.zeros_like(p)
    opt = optimizer_for(params, optimizer)
    opt.step()
    state = [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]

    def size(tensors) -> int:
        return sum(t.numel() * t.element_size() for t in tensors)

    weights, grads, held = size(params), size(p.grad for p in params), size(state)
    return {"params": sum(p.numel() for p in params), "tensors": len(params), "params_bytes": weights,
            "grads_bytes": grads, "state_bytes": held, "total_bytes": weights + grads + held}
