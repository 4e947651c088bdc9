"""Output size of a convolution or pooling window, as the lecture writes it.

H_out = floor((H_in + 2P - D*(K - 1) - 1) / S) + 1, which for D = 1 is the lecture's
(in + 2p - k)/s + 1 ("input_size: input after padding"); PyTorch's Conv2d/MaxPool2d docs.
"""

from __future__ import annotations

from dataclasses import dataclass

from archcalc.errors import InputError


@dataclass(frozen=True)
class OutSize:
    """One spatial dimension's output size with the arithmetic that produced it."""

    input: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    ceil_mode: bool
    output: int
    exact: bool
    formula: str


def _require(value: int, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")


def conv_out_size(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> OutSize:
    """H_out = floor((H + 2P - D*(K-1) - 1)/S) + 1 (ceil with ceil_mode, as PyTorch pools)."""
    _require(size, "input size", 1)
    _require(kernel, "kernel", 1)
    _require(stride, "stride", 1)
    _require(padding, "padding", 0)
    _require(dilation, "dilation", 1)
    extent = dilation * (kernel - 1) + 1
    padded = size + 2 * padding
    numerator = padded - extent
    exact = numerator % stride == 0
    dropped = False
    if ceil_mode:
        steps = -(-numerator // stride)
        # PyTorch drops a last window that would start inside the right padding.
        if steps > 0 and steps * stride >= size + padding:
            steps -= 1
            dropped = True
    else:
        steps = numerator // stride
    output = steps + 1
    if output < 1:
        what = f"kernel {kernel}" if dilation == 1 else f"dilated kernel {dilation}*({kernel} - 1) + 1 = {extent}"
        raise InputError(
            f"{what} is larger than the padded input {size} + 2*{padding} = {padded}; "
            f"use a kernel of at most {padded} or more padding"
        )

    if dilation == 1:
        expr = f"({size} + 2*{padding} - {kernel})/{stride}"
    else:
        expr = f"({size} + 2*{padding} - {dilation}*({kernel} - 1) - 1)/{stride}"
    rounding = "ceil" if ceil_mode else "floor"
    if exact:
        formula = f"{expr} + 1"
    else:
        formula = f"{rounding}({expr}) + 1 = {rounding}({numerator / stride:g}) + 1"
    if dropped:
        formula += f" - 1 = {output} (the last window would start in the padding: dropped, as PyTorch does)"
    else:
        formula += f" = {output}"
    return OutSize(size, kernel, stride, padding, dilation, ceil_mode, output, exact, formula)


@dataclass(frozen=True)
class AdaptiveWindow:
    """Adaptive pooling along one dimension: the windows PyTorch uses for in -> out."""

    input: int
    output: int
    stride: int | None
    kernel: int | None
    window_total: int
    formula: str


def adaptive_window_total(size: int, out: int) -> int:
    """The sum of PyTorch's adaptive window sizes, [floor(i*in/out), ceil((i+1)*in/out)) for each i."""
    if size % out == 0:
        return size  # out windows of in/out each
    return sum(-(-((i + 1) * size) // out) - (i * size) // out for i in range(out))


def adaptive_window(size: int, out: int) -> AdaptiveWindow:
    """Stride = in // out, kernel = in - (out - 1)*stride (the lecture's rule, exact when out divides in).

    PyTorch's windows are [floor(i*in/out), ceil((i+1)*in/out)); when out does not divide in
    they vary in size, so no single stride/kernel exists and the sum of window sizes is given.
    """
    _require(size, "input size", 1)
    _require(out, "output size", 1)
    window_total = adaptive_window_total(size, out)
    if size % out == 0:
        stride = size // out
        kernel = size - (out - 1) * stride
        formula = (
            f"stride = {size} // {out} = {stride}, "
            f"kernel = {size} - ({out} - 1)*{stride} = {kernel}"
        )
        return AdaptiveWindow(size, out, stride, kernel, window_total, formula)
    formula = (
        f"{out} does not divide {size}: windows [floor(i*{size}/{out}), ceil((i+1)*{size}/{out})) "
        f"vary in size (no single stride/kernel)"
    )
    return AdaptiveWindow(size, out, None, None, window_total, formula)
