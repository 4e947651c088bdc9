"""The training step's optimizers, one table for every command that runs or simulates a step: how each is made
(PyTorch's own implementation, its usual settings) and the state it keeps for every trainable parameter.

  sgd       torch.optim.SGD, lr 0.01: no state
  momentum  SGD with momentum 0.9: a momentum buffer per trainable element
  nesterov  SGD with Nesterov momentum 0.9: likewise
  adam      torch.optim.Adam, lr 1e-3: exp_avg and exp_avg_sq per element, a step counter per tensor
  adamw     torch.optim.AdamW, lr 1e-3, weight decay 0.01 (decoupled): as Adam
  rmsprop   torch.optim.RMSprop, lr 0.01: square_avg per element, a step counter per tensor
  adagrad   torch.optim.Adagrad, lr 0.01: the sum of squared gradients per element, a step counter per tensor
            (made with the optimizer, before the first step)

A step counter is a 0-dim float32 tensor (4 bytes), kept where PyTorch keeps it: on the CPU unless the
optimizer is fused or capturable (neither is asked for here).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from archcalc.errors import InputError


class Optimizer(NamedTuple):
    make: Callable[..., torch.optim.Optimizer]  # (parameters, foreach=) -> the optimizer
    buffers: tuple[str, ...]  # its state's tensors of each parameter's size
    counter: bool  # a 0-dim float32 step counter per parameter tensor


_TABLE = {
    "sgd": Optimizer(lambda p, foreach: torch.optim.SGD(p, lr=0.01, foreach=foreach), (), False),
    "momentum": Optimizer(lambda p, foreach: torch.optim.SGD(p, lr=0.01, momentum=0.9, foreach=foreach),
                          ("momentum_buffer",), False),
    "nesterov": Optimizer(lambda p, foreach: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True,
                                                             foreach=foreach), ("momentum_buffer",), False),
    "adam": Optimizer(lambda p, foreach: torch.optim.Adam(p, lr=1e-3, foreach=foreach), ("exp_avg", "exp_avg_sq"),
                      True),
    "adamw": Optimizer(lambda p, foreach: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01, foreach=foreach),
                       ("exp_avg", "exp_avg_sq"), True),
    "rmsprop": Optimizer(lambda p, foreach: torch.optim.RMSprop(p, lr=0.01, foreach=foreach), ("square_avg",), True),
    "adagrad": Optimizer(lambda p, foreach: torch.optim.Adagrad(p, lr=0.01, foreach=foreach), ("sum",), True),
}
OPTIMIZERS = tuple(_TABLE)
COUNTER_BYTES = 4  # a step counter: a 0-dim float32 tensor


def state_of(name: str) -> tuple[tuple[str, ...], bool]:
    """The optimizer's state: its buffers of each parameter's size, and whether it keeps a step counter."""
    table = _TABLE[check(name)]
    return table.buffers, table.counter


def check(name: str) -> str:
    """The name, if it is one of OPTIMIZERS; else one line saying which are."""
    if name not in _TABLE:
        raise InputError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")
    return name


def optimizer_for(parameters, name: str, foreach: bool | None = None) -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``parameters`` (the table above). ``foreach`` None is PyTorch's own choice:
    one operation over every tensor on CUDA (its temporaries for all at once), a loop on the CPU."""
    check(name)
    parameters = list(parameters)
    if not parameters:
        raise InputError("the model has no trainable parameters: there is no training step (a quantized network is "
                         "not trained; quantization-aware training trains its float form, made by "
                         "torch.ao.quantization.prepare_qat)")
    return _TABLE[name].make(parameters, foreach=foreach)


def state_bytes(trainable: list[torch.Tensor], name: str) -> tuple[int, str]:
    """The optimizer's state for these trainable parameters, in bytes, with its arithmetic: each buffer the
    size and dtype of its parameter, and the step counters."""
    table = _TABLE[check(name)]
    if not table.buffers:
        return 0, f"{name} keeps no state: 0"
    each = sum(p.numel() * p.element_size() for p in trainable)  # (one buffer's bytes over all the parameters)
    buffers = len(table.buffers) * each
    counters = COUNTER_BYTES * len(trainable) if table.counter else 0
    terms = [f"{' + '.join(table.buffers)}: " + (f"{len(table.buffers)}*{each:,}" if len(table.buffers) > 1
                                                    else f"{each:,}")]
    if counters:
        terms.append(f"step counters {COUNTER_BYTES}*{len(trainable)}")
    return buffers + counters, " + ".join(terms) + (f" = {buffers + counters:,}" if len(terms) > 1 or
                                                   len(table.buffers) > 1 else "")
