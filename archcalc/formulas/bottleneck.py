"""The bottleneck layer of the lecture (GoogLeNet's 1x1 reduction), 002 "Bottleneck Layer".

Direct K x K convolution of an S x S x C_in input to C_out maps, against a 1x1 convolution to
C_mid maps followed by the K x K convolution. Spatial size is kept (padding 'same'), as on the slide.

  memory      = parameters [(K*K*C_in) + 1]*C_out + activations S*S*C_out
  multiplies  = (S*S*C_out)*(K*K*C_in)
Example: 14x14x480 -> 5x5 conv -> 48 maps: 585,456 values and 112.9M multiplications; with a
1x1 conv to 16 maps first: 39,488 values and 5.3M multiplications.
"""

from __future__ import annotations

from dataclasses import dataclass

from archcalc.errors import COMMAND_LINE, InputError, option
from archcalc.formulas.terms import Term, expanded, product, total


@dataclass(frozen=True)
class Design:
    """One way of computing the layer: its parameters, activations and multiplications."""

    name: str
    params: list[Term]
    activations: list[Term]
    mults: list[Term]

    @property
    def memory(self) -> Term:
        return total(self.params + self.activations)

    def as_dict(self) -> dict:
        return {
            "params": total(self.params).value,
            "activations": total(self.activations).value,
            "memory": self.memory.value,
            "mults": total(self.mults).value,
        }


@dataclass(frozen=True)
class BottleneckComparison:
    c_in: int
    c_mid: int
    c_out: int
    size: int
    kernel: int
    direct: Design
    bottleneck: Design

    @property
    def memory_ratio(self) -> float:
        return self.direct.memory.value / self.bottleneck.memory.value

    @property
    def mults_ratio(self) -> float:
        return total(self.direct.mults).value / total(self.bottleneck.mults).value


def _conv(k: int, c_in: int, c_out: int, s: int) -> tuple[Term, Term, Term]:
    params = Term((k * k * c_in + 1) * c_out, f"[({k}*{k}*{c_in}) + 1]*{c_out}")
    activations = product(s, s, c_out)
    weights = product(k, k, c_in)
    mults = Term(activations.value * weights.value, f"({activations.text})*({weights.text})")
    return params, activations, mults


def compare(c_in: int, c_mid: int, c_out: int, size: int = 14, kernel: int = 5) -> BottleneckComparison:
    """The lecture's comparison; every term is kept so the sums can be printed term by term."""
    for name, value in (("c_in", c_in), ("c_mid", c_mid), ("c_out", c_out), ("size", size), ("kernel", kernel)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            said = option(name) if name in ("size", "kernel") or not COMMAND_LINE.get() else name.upper()
            raise InputError(f"{said} must be a positive integer, got {value!r}")
    p, a, m = _conv(kernel, c_in, c_out, size)
    direct = Design(f"direct {kernel}x{kernel} conv", [p], [a], [m])
    p1, a1, m1 = _conv(1, c_in, c_mid, size)
    p2, a2, m2 = _conv(kernel, c_mid, c_out, size)
    reduced = Design(f"1x1 conv to {c_mid}, then {kernel}x{kernel}", [p1, p2], [a1, a2], [m1, m2])
    return BottleneckComparison(c_in, c_mid, c_out, size, kernel, direct, reduced)


def as_dict(result: BottleneckComparison) -> dict:
    """The JSON contract: inputs, both designs, the ratios, and the arithmetic."""
    def formulas(d: Design) -> dict:
        return {"memory": expanded(d.params + d.activations), "mults": expanded(d.mults)}

    return {
        "c_in": result.c_in,
        "c_mid": result.c_mid,
        "c_out": result.c_out,
        "size": result.size,
        "kernel": result.kernel,
        "direct": result.direct.as_dict() | {"formulas": formulas(result.direct)},
        "bottleneck": result.bottleneck.as_dict() | {"formulas": formulas(result.bottleneck)},
        "ratio": {"memory": round(result.memory_ratio, 4), "mults": round(result.mults_ratio, 4)},
        "units": {"memory": "values (parameters + output activations)", "mults": "multiplications"},
    }

