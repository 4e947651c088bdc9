"""Formulas for functional operations (torch.add, torch.cat, out * CA_map, F.relu, F.max_pool2d, ...).

Keys are Python-level names with dunder and in-place marks removed (``__iadd__`` and ``add_``
count as ``add``). An operation missing here is reported as not counted.
"""

from __future__ import annotations

from math import prod

from archcalc.analysis.counting import OPS, Count, OpCall
from archcalc.analysis.shapes import adaptive_formula, as_tuple, elements_text, window_formula
from archcalc.formulas.numbers import grouped


def _shape(t) -> tuple:
    return tuple(t.shape)


@OPS.register("conv1d", "conv2d", "conv3d")
def conv(call: OpCall) -> Count:
    weight = _shape(call.arg(1, "weight"))
    bias = call.arg(2, "bias")
    out = call.output
    per_output = list(weight[2:]) + [weight[1]]
    macs = prod(out) * prod(per_output)
    d = len(weight) - 2
    formulas = {"macs": f"{elements_text(out)}*({'*'.join(map(str, per_output))}) = {grouped(macs)}"}
    padding = call.arg(4, "padding", 0)
    if not isinstance(padding, str):
        formulas["output"] = window_formula(call.inputs[0][-d:], weight[2:], call.arg(3, "stride", 1),
                                            padding, call.arg(5, "dilation", 1), False)
    return Count(macs, prod(out) if bias is not None else 0, formulas)


@OPS.register("linear")
def linear(call: OpCall) -> Count:
    weight = _shape(call.arg(1, "weight"))
    rows = prod(call.inputs[0][:-1])
    macs = rows * weight[1] * weight[0]
    bias = call.arg(2, "bias")
    return Count(macs, prod(call.output) if bias is not None else 0,
                 {"macs": f"{rows}*{weight[1]}*{weight[0]} = {grouped(macs)}"})


@OPS.register("matmul", "mm", "bmm")
def matmul(call: OpCall) -> Count:
    inner = call.inputs[0][-1]
    macs = prod(call.output) * inner
    return Count(macs, 0, {"macs": f"{elements_text(call.output)}*{inner} = {grouped(macs)}"})


@OPS.register("addmm", "baddbmm")
def addmm(call: OpCall) -> Count:
    inner = call.inputs[1][-1]
    macs = prod(call.output) * inner
    return Count(macs, prod(call.output), {"macs": f"{elements_text(call.output)}*{inner} = {grouped(macs)}"})


_ELEMENTWISE = (
    "add", "sub", "rsub", "mul", "div", "truediv", "neg", "pow", "sqrt", "rsqrt", "exp", "log", "abs",
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "sigmoid", "tanh",
    "hardswish", "hardsigmoid", "hardtanh", "softplus", "clamp", "clip", "maximum", "minimum", "where",
    "softmax", "log_softmax",
)


@OPS.register(*_ELEMENTWISE)
def elementwise(call: OpCall) -> Count:
    n = prod(call.output)
    return Count(0, n, {"elementwise": f"1 per output element: {elements_text(call.output)} = {grouped(n)}"})


@OPS.register("batch_norm")
def batch_norm(call: OpCall) -> Count:
    n = 2 * prod(call.output)
    return Count(0, n, {"elementwise": f"2*{elements_text(call.output)} = {grouped(n)}"})


@OPS.register("sum", "mean", "amax", "amin", "max", "min", "prod")
def reduction(call: OpCall) -> Count:
    n = prod(call.inputs[0])
    return Count(0, n, {"elementwise": f"1 per input element: {elements_text(call.inputs[0])} = {grouped(n)}"})


def _pool(call: OpCall, dims: int, is_max: bool) -> Count:
    kernel = as_tuple(call.arg(1, "kernel_size"), dims)
    stride = call.arg(2, "stride") or kernel
    padding = call.arg(3, "padding", 0)
    if is_max:
        dilation, ceil_mode = call.arg(4, "dilation", 1), call.arg(5, "ceil_mode", False)
    else:
        dilation, ceil_mode = 1, call.arg(4, "ceil_mode", False)
    window = prod(kernel)
    out = call.output
    per = window - 1 if is_max else window
    n = per * prod(out)
    what = f"({window} - 1) comparisons" if is_max else f"{window} (adds + divide)"
    return Count(0, n, {
        "output": window_formula(call.inputs[0][-dims:], kernel, stride, padding, dilation, ceil_mode),
        "elementwise": f"{what}*{elements_text(out)} = {grouped(n)}",
    })


@OPS.register("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
              "max_pool2d_with_indices", "max_pool3d_with_indices")
def max_pool(call: OpCall) -> Count:
    return _pool(call, len(call.output) - 2, True)


@OPS.register("avg_pool1d", "avg_pool2d", "avg_pool3d")
def avg_pool(call: OpCall) -> Count:
    return _pool(call, len(call.output) - 2, False)


@OPS.register("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
              "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d")
def adaptive_pool(call: OpCall) -> Count:
    out = call.output
    d = len(out) - 2
    formula, window_elements = adaptive_formula(call.inputs[0][-d:], out[-d:])
    reads = prod(out[:-d]) * window_elements
    n = reads - prod(out) if "max" in call.name else reads
    return Count(0, n, {"output": formula, "elementwise": f"{grouped(n)} over {grouped(reads)} window elements"})


@OPS.register("cat", "concat", "concatenate", "stack")
def concatenate(call: OpCall) -> Count:
    if call.name == "stack":
        return Count(0, 0, {}, "copy, no arithmetic")
    dim = call.arg(1, "dim", 0) % len(call.output)
    parts = " + ".join(str(s[dim]) for s in call.inputs)
    axis = "channels" if dim == 1 else f"dim {dim}"
    return Count(0, 0, {"output": f"{axis}: {parts} = {call.output[dim]}"}, "copy, no arithmetic")


_SHAPE_ONLY = (
    "view", "reshape", "flatten", "unflatten", "expand", "expand_as", "squeeze", "unsqueeze", "permute",
    "transpose", "t", "contiguous", "getitem", "chunk", "split", "narrow", "select", "index_select",
    "view_as", "reshape_as", "repeat", "clone", "detach", "to", "type_as", "float", "half", "bfloat16",
    "double", "real", "imag", "T", "mT", "data", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "identity",
)


@OPS.register(*_SHAPE_ONLY)
def shape_only(call: OpCall) -> Count:
    note = "identity at inference (eval mode)" if "dropout" in call.name else "shape or copy only"
    return Count(0, 0, {}, note)
