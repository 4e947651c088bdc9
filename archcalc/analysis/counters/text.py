"""The arithmetic text every family writes the same way (torch-free)."""

from __future__ import annotations

from archcalc.analysis.shapes import elements_text
from archcalc.formulas.numbers import grouped


def macs_text(out: tuple, per_output, value: int) -> str:
    """'(1*16*32*32)*(3*3*3) = 442,368': outputs times the multiply-accumulates of each."""
    return f"{elements_text(out)}*({'*'.join(str(x) for x in per_output)}) = {grouped(value)}"


def bias_text(out: tuple, value: int) -> str:
    return f"bias: {elements_text(out)} adds = {grouped(value)}"


def bias_formula(out: tuple, value: int) -> dict[str, str]:
    return {"elementwise": bias_text(out, value)} if value else {}


def with_added(macs: str, out: tuple, added: int) -> dict[str, str]:
    """A product's arithmetic, and the adds of an added input (addmm's) where it has one."""
    text = {"macs": macs}
    if added:
        text["elementwise"] = f"added input: {elements_text(out)} adds = {grouped(added)}"
    return text


def per_element(what: str, per: int, shape: tuple, value: int) -> str:
    """'(5 + 2 affine) per element: 5*(1*197*768) = ...'"""
    return f"{what}: {per}*{elements_text(shape)} = {grouped(value)}" if per != 1 else \
        f"{what}: {elements_text(shape)} = {grouped(value)}"


def tensor_shape(t) -> tuple:
    """A tensor argument's shape (the counters are handed the tensors as the model passed them)."""
    return tuple(t.shape)
