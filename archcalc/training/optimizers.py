"""The training step's optimizers, one table for every command that runs or simulates a step."""

from __future__ import annotations

import torch

from archcalc.errors import InputError

OPTIMIZERS = ("sgd", "momentum", "adam")


def check(name: str) -> str:
    """The name, if it is one of OPTIMIZERS; else one line saying which are."""
    if name not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")
    return name


def optimizer_for(parameters, name: str, foreach: bool | None = None) -> torch.optim.Optimizer:
    """Plain SGD (lr 0.01), SGD with momentum 0.9, or Adam (lr 1e-3). ``foreach`` None is PyTorch's own
    choice: one operation over every tensor on CUDA (its temporaries for all at once), a loop on the CPU."""
    check(name)
    parameters = list(parameters)
    if not parameters:
        raise InputError("the model has no trainable parameters: there is no training step (a quantized network is "
                         "not trained; quantization-aware training trains its float form, made by "
                         "torch.ao.quantization.prepare_qat)")
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=0.01, foreach=foreach)
    if name == "momentum":
        return torch.optim.SGD(parameters, lr=0.01, momentum=0.9, foreach=foreach)
    return torch.optim.Adam(parameters, lr=1e-3, foreach=foreach)
