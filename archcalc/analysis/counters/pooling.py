"""Pooling: max, average and adaptive pooling, as modules and as F.* calls.

No multiply-accumulates; element-wise work per output element, with K the window's elements:
  max pooling       K - 1 comparisons
  average pooling   K (K - 1 adds and a divide)
  adaptive pooling  the windows' elements (adaptive_window_total), less one per output for max
  fractional max    K - 1 comparisons, as max pooling
  LP pooling        x^p per input element, then K per output (K - 1 adds and the p-th root)
"""

from __future__ import annotations

import re
from functools import partial
from math import prod

from torch import nn

from archcalc.analysis.counting import MODULES, OPS, Count, ModuleCall, OpCall
from archcalc.analysis.shapes import adaptive_formula, as_tuple, elements_text, window_formula
from archcalc.formulas.numbers import grouped
from archcalc.formulas.outsize import adaptive_window_total


def window_count(out: tuple, window: int, is_max: bool, text) -> Count:
    """(K - 1) comparisons or K adds-and-divide per output."""
    elementwise = (window - 1 if is_max else window) * prod(out)
    return Count(0, elementwise, partial(text, window, elementwise))


def adaptive_count(spatial_in: tuple, out: tuple, is_max: bool) -> Count:
    d = len(spatial_in)
    reads = prod(out[:-d]) * prod(adaptive_window_total(i, o) for i, o in zip(spatial_in, out[-d:]))
    elementwise = reads - prod(out) if is_max else reads
    return Count(0, elementwise, partial(_adaptive_text, spatial_in, out, is_max, reads, elementwise))


def _adaptive_text(spatial_in, out, is_max, reads, elementwise) -> dict[str, str]:
    what = "comparisons" if is_max else "adds and divides"
    return {
        "output": adaptive_formula(spatial_in, out[-len(spatial_in):])[0],
        "elementwise": f"{what}: {grouped(elementwise)} over {grouped(reads)} window elements",
    }


# -- modules -------------------------------------------------------------------------------

def spatial(name: str) -> int:
    """The spatial dimensions a pooling works over, from its name (MaxPool2d, adaptive_avg_pool3d: 2, 3): not
    from the output's rank, which an unbatched C x H x W input makes one less."""
    return int(re.search(r"([123])d", name).group(1))


def module_spatial(m: nn.Module) -> int:
    """spatial() of the torch.nn class a pooling module is (a subclass may be named anything)."""
    return spatial(next(c.__name__ for c in type(m).__mro__ if re.search(r"Pool[123]d$", c.__name__)))


def _module_pool(call: ModuleCall, is_max: bool) -> Count:
    m, out = call.module, call.output
    d = module_spatial(m)
    stride = m.stride if m.stride is not None else m.kernel_size
    output = partial(window_formula, call.input[-d:], m.kernel_size, stride, m.padding, m.dilation if is_max else 1,
                     m.ceil_mode)
    return window_count(out, prod(as_tuple(m.kernel_size, d)), is_max, partial(_pool_text, out, is_max, output))


@MODULES.register(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
def max_pool(call: ModuleCall) -> Count:
    return _module_pool(call, True)


@MODULES.register(nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
def avg_pool(call: ModuleCall) -> Count:
    return _module_pool(call, False)


_ADAPTIVE_MAX = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


@MODULES.register(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                  nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
def adaptive_pool(call: ModuleCall) -> Count:
    out = call.output
    return adaptive_count(call.input[-module_spatial(call.module):], out, isinstance(call.module, _ADAPTIVE_MAX))


# -- functional ----------------------------------------------------------------------------

def _pool(call: OpCall, is_max: bool) -> Count:
    dims = spatial(call.name)
    kernel = as_tuple(call.arg(1, "kernel_size"), dims)
    stride = call.arg(2, "stride") or kernel
    padding = call.arg(3, "padding", 0)
    if is_max:
        dilation, ceil_mode = call.arg(4, "dilation", 1), call.arg(5, "ceil_mode", False)
    else:
        dilation, ceil_mode = 1, call.arg(4, "ceil_mode", False)
    output = partial(window_formula, call.inputs[0][-dims:], kernel, stride, padding, dilation, ceil_mode)
    return window_count(call.output, prod(kernel), is_max, partial(_pool_text, call.output, is_max, output))


def _pool_text(out, is_max, output, window, elementwise) -> dict[str, str]:
    """``output`` writes the output-size arithmetic."""
    what = f"({window} - 1) comparisons" if is_max else f"{window} (adds + divide)"
    return {"output": output(), "elementwise": f"{what}*{elements_text(out)} = {grouped(elementwise)}"}


@OPS.register("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
              "max_pool2d_with_indices", "max_pool3d_with_indices")
def max_pool_op(call: OpCall) -> Count:
    return _pool(call, True)


@OPS.register("fractional_max_pool2d", "fractional_max_pool3d", "fractional_max_pool2d_with_indices",
              "fractional_max_pool3d_with_indices")
def fractional_max_pool(call: OpCall) -> Count:
    """Windows of the kernel's size at pseudo-random places: (K - 1) comparisons per output, as max pooling."""
    kernel = as_tuple(call.arg(1, "kernel_size"), spatial(call.name))
    window = prod(kernel)
    return window_count(call.output, window, True,
                        lambda w, n: {"elementwise": f"({w} - 1) comparisons*{elements_text(call.output)} = "
                                                     f"{grouped(n)}"})


@OPS.register("lp_pool1d", "lp_pool2d", "lp_pool3d")
def lp_pool(call: OpCall) -> Count:
    """F.lp_pool (nn.LPPool): x^p for every input element, each window's K powers summed, the p-th root:
    (input elements) + K per output."""
    window = prod(as_tuple(call.arg(2, "kernel_size"), spatial(call.name)))
    powers, sums = prod(call.inputs[0]), window * prod(call.output)
    n = powers + sums
    return Count(0, n, {"elementwise": f"powers {elements_text(call.inputs[0])} + ({window - 1} adds + 1 root)*"
                                       f"{elements_text(call.output)} = {grouped(n)}"})


@OPS.register("avg_pool1d", "avg_pool2d", "avg_pool3d")
def avg_pool_op(call: OpCall) -> Count:
    return _pool(call, False)


@OPS.register("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
              "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
              "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices",
              "adaptive_max_pool3d_with_indices")
def adaptive_pool_op(call: OpCall) -> Count:
    out = call.output
    return adaptive_count(call.inputs[0][-spatial(call.name):], out, "max" in call.name)
