"""Trainable parameters of the lectures' layers, written as LeNet-5's slide writes them.

Convolution: (weights * input maps + bias) * feature maps = (K_h*K_w*C_in/g + 1)*C_out.
Fully connected: (inputs + bias) * outputs = (n_in + 1)*n_out.
"""

from __future__ import annotations

from math import prod

from archcalc.formulas.numbers import product_text
from archcalc.formulas.terms import Term


def conv_params(kernel: tuple[int, ...], c_in: int, c_out: int, groups: int = 1, bias: bool = True) -> Term:
    """(K_h*K_w*C_in/g + 1)*C_out: LeNet-5 C1 (5*5*1 + 1)*6 = 156."""
    per_filter = list(kernel) + [c_in // groups]
    weights = prod(per_filter)
    text = product_text(per_filter)
    if bias:
        return Term((weights + 1) * c_out, f"({text} + 1)*{c_out}")
    return Term(weights * c_out, f"({text})*{c_out}")


def linear_params(n_in: int, n_out: int, bias: bool = True) -> Term:
    """(n_in + 1)*n_out: LeNet-5 F6 (120 + 1)*84 = 10164."""
    if bias:
        return Term((n_in + 1) * n_out, f"({n_in} + 1)*{n_out}")
    return Term(n_in * n_out, f"{n_in}*{n_out}")


def per_map_params(maps: int, per_map: tuple[str, ...]) -> Term:
    """One value of each kind per feature map: BatchNorm (γ + β)*C, LeNet-5 S2 (1 + 1)*6 = 12."""
    return Term(len(per_map) * maps, f"({' + '.join('1' for _ in per_map)})*{maps}")


def connection_table_params(kernel: tuple[int, ...], fan_ins: list[int], bias: bool = True) -> Term:
    """Sum over output maps of (K_h*K_w*|inputs of map j| + 1): LeNet-5 C3 = 1516.

    Maps with the same number of inputs are grouped: (5*5*3 + 1)*6 + (5*5*4 + 1)*9 + (5*5*6 + 1)*1.
    """
    k = product_text(kernel)
    groups: dict[int, int] = {}
    for n in fan_ins:
        groups[n] = groups.get(n, 0) + 1
    b = 1 if bias else 0
    parts = [f"({k}*{n}{' + 1' if bias else ''})*{count}" for n, count in groups.items()]
    value = sum((prod(kernel) * n + b) * count for n, count in groups.items())
    return Term(value, " + ".join(parts))


def tensor_params(shapes: list[tuple[str, tuple[int, ...]]]) -> Term:
    """Any layer's parameters, tensor by tensor: 'weight 6*1*5*5 + bias 6'."""
    parts = [f"{name} {product_text(shape) if shape else '1'}" for name, shape in shapes]
    return Term(sum(prod(shape) for _, shape in shapes), " + ".join(parts) if parts else "0")
