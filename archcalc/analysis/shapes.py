"""Small shape helpers shared by the counters (torch-free)."""

from __future__ import annotations

from math import prod

from archcalc.analysis.records import Shape
from archcalc.formulas.outsize import adaptive_window, conv_out_size


def as_tuple(value, dims: int) -> tuple:
    """A kernel, stride or padding for each of ``dims`` dimensions: 3 -> (3, 3), (3,) -> (3, 3)."""
    if isinstance(value, (tuple, list)):
        return tuple(value) * dims if len(value) == 1 else tuple(value)
    return (value,) * dims


def joined(formulas: list[str], labels: str = "HWD") -> str:
    """One formula when every spatial dimension has the same arithmetic, else one per dimension."""
    if len(set(formulas)) == 1:
        return formulas[0]
    return "; ".join(f"{labels[i] if i < len(labels) else i}: {f}" for i, f in enumerate(formulas))


def window_formula(spatial_in: Shape, kernel, stride, padding, dilation, ceil_mode: bool) -> str:
    """The lecture's output-size arithmetic for each spatial dimension of a conv or pooling window."""
    d = len(spatial_in)
    parts = [
        conv_out_size(size, k, s, p, dl, ceil_mode).formula
        for size, k, s, p, dl in zip(spatial_in, as_tuple(kernel, d), as_tuple(stride, d),
                                     as_tuple(padding, d), as_tuple(dilation, d))
    ]
    return joined(parts)


def adaptive_formula(spatial_in: Shape, spatial_out: Shape) -> tuple[str, int]:
    """The adaptive-pooling rule per dimension, and the total number of window elements."""
    windows = [adaptive_window(i, o) for i, o in zip(spatial_in, spatial_out)]
    return joined([w.formula for w in windows]), prod(w.window_total for w in windows)


def elements_text(shape: Shape) -> str:
    """'(1*16*32*32)': an output's element count written as its dimensions."""
    return "(" + "*".join(str(s) for s in shape) + ")"
