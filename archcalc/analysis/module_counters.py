"""Formulas for PyTorch's layers and the lectures' own layers, registered by type.

Symbols: N batch, C_in/C_out channels, K kernel, g groups, H_out/W_out output size.
Convolution MACs = N*C_out*H_out*W_out * (C_in/g)*K_h*K_w; Linear MACs = N*n_in*n_out.
"""

from __future__ import annotations

from functools import partial
from math import prod

from torch import nn

from archcalc.analysis.counting import MODULES, Count, ModuleCall
from archcalc.analysis.shapes import adaptive_formula, as_tuple, elements_text, joined, window_formula
from archcalc.formulas.numbers import grouped
from archcalc.formulas.outsize import adaptive_window_total
from archcalc.formulas.params import connection_table_params, conv_params, linear_params, per_map_params
from archcalc.layers.lenet import ConnectionTableConv2d, RBFOutput, ScaledTanh, Subsampling


def _macs_text(out: tuple, per_output: list[int], value: int) -> str:
    return f"{elements_text(out)}*({'*'.join(str(x) for x in per_output)}) = {grouped(value)}"


def _bias_text(out: tuple, value: int) -> str:
    return f"bias: {elements_text(out)} adds = {grouped(value)}"


def _bias_formula(out: tuple, value: int) -> dict[str, str]:
    return {"elementwise": _bias_text(out, value)} if value else {}


# Each counter counts now and hands its text writer, with what it needs, to the record as a partial:
# the text is written only for the rows that are shown (a partial costs less to make than a closure).


@MODULES.register(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def conv(call: ModuleCall) -> Count:
    m, out = call.module, call.output
    per_output = [*m.kernel_size, m.in_channels // m.groups]
    n = prod(out)
    macs = n * prod(per_output)
    elementwise = n if m.bias is not None else 0
    return Count(macs, elementwise, partial(_conv_text, call, per_output, macs, elementwise))


def _conv_text(call: ModuleCall, per_output: list[int], macs: int, elementwise: int) -> dict[str, str]:
    m, out = call.module, call.output
    spatial_in = call.input[-len(m.kernel_size):]
    if isinstance(m.padding, str):
        output = f"padding='{m.padding}': " + ("size kept" if m.padding == "same" else window_formula(
            spatial_in, m.kernel_size, m.stride, 0, m.dilation, False))
    else:
        output = window_formula(spatial_in, m.kernel_size, m.stride, m.padding, m.dilation, False)
    return {
        "output": output,
        "params": str(conv_params(m.kernel_size, m.in_channels, m.out_channels, m.groups, m.bias is not None)),
        "macs": _macs_text(out, per_output, macs),
        **_bias_formula(out, elementwise),
    }


@MODULES.register(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
def conv_transpose(call: ModuleCall) -> Count:
    """Each input element is spread by a K_h*K_w*(C_out/g) kernel: MACs = N*C_in*H_in*W_in*K_h*K_w*C_out/g."""
    m, inp, out = call.module, call.input, call.output
    d = len(out) - 2
    per_input = list(m.kernel_size) + [m.out_channels // m.groups]
    macs = prod(inp) * prod(per_input)
    elementwise = prod(out) if m.bias is not None else 0

    def formulas() -> dict[str, str]:
        sizes = [
            f"({h} - 1)*{s} - 2*{p} + {dl}*({k} - 1) + {op} + 1 = {o}"
            for h, s, p, dl, k, op, o in zip(inp[-d:], m.stride, m.padding, m.dilation, m.kernel_size,
                                             m.output_padding, out[-d:])
        ]
        weights = conv_params(m.kernel_size, m.out_channels, m.in_channels, m.groups, False)
        params = f"({weights.text}) + {m.out_channels}" if m.bias is not None else weights.text
        return {
            "output": joined(sizes),
            "params": f"{params} = {grouped(weights.value + (m.out_channels if m.bias is not None else 0))}",
            "macs": _macs_text(inp, per_input, macs),
            **_bias_formula(out, elementwise),
        }

    return Count(macs, elementwise, formulas)


@MODULES.register(nn.Linear)
def linear(call: ModuleCall) -> Count:
    m, out = call.module, call.output
    rows = prod(call.input[:-1])
    macs = rows * m.in_features * m.out_features
    elementwise = prod(out) if m.bias is not None else 0
    return Count(macs, elementwise, partial(_linear_text, m, out, rows, macs, elementwise))


def _linear_text(m: nn.Linear, out: tuple, rows: int, macs: int, elementwise: int) -> dict[str, str]:
    return {
        "params": str(linear_params(m.in_features, m.out_features, m.bias is not None)),
        "macs": f"{rows}*{m.in_features}*{m.out_features} = {grouped(macs)}",
        **_bias_formula(out, elementwise),
    }


@MODULES.register(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
def batch_norm(call: ModuleCall) -> Count:
    elementwise = 2 * prod(call.output)
    return Count(0, elementwise, partial(_batch_norm_text, call.module, call.output, elementwise))


def _batch_norm_text(m: nn.Module, out: tuple, elementwise: int) -> dict[str, str]:
    text = {"elementwise": f"2*{elements_text(out)} = {grouped(elementwise)} (x*γ/σ + (β - μγ/σ), folded)"}
    if m.affine:
        text["params"] = f"(γ + β)*C = {per_map_params(m.num_features, ('γ', 'β'))}"
    return text


_ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus,
    nn.Softmax, nn.LogSoftmax,
)


@MODULES.register(*_ACTIVATIONS)
def activation(call: ModuleCall) -> Count:
    n = prod(call.output)
    return Count(0, n, partial(_activation_text, call.module, call.output, n))


def _activation_text(m: nn.Module, out: tuple, n: int) -> dict[str, str]:
    text = {"elementwise": f"1 per element: {elements_text(out)} = {grouped(n)}"}
    params = list(m.parameters(recurse=False))
    if params:
        text["params"] = " + ".join(f"{p.numel()}" for p in params) + " (learned slope)"
    return text


@MODULES.register(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
def max_pool(call: ModuleCall) -> Count:
    m, out = call.module, call.output
    window = prod(as_tuple(m.kernel_size, len(out) - 2))
    elementwise = (window - 1) * prod(out)
    return Count(0, elementwise, partial(_max_pool_text, call, window, elementwise))


def _max_pool_text(call: ModuleCall, window: int, elementwise: int) -> dict[str, str]:
    m, out = call.module, call.output
    d = len(out) - 2
    stride = m.stride if m.stride is not None else m.kernel_size
    return {
        "output": window_formula(call.input[-d:], m.kernel_size, stride, m.padding, m.dilation, m.ceil_mode),
        "elementwise": f"({window} - 1) comparisons*{elements_text(out)} = {grouped(elementwise)}",
    }


@MODULES.register(nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
def avg_pool(call: ModuleCall) -> Count:
    m, out = call.module, call.output
    window = prod(as_tuple(m.kernel_size, len(out) - 2))
    elementwise = window * prod(out)
    return Count(0, elementwise, partial(_avg_pool_text, call, window, elementwise))


def _avg_pool_text(call: ModuleCall, window: int, elementwise: int) -> dict[str, str]:
    m, out = call.module, call.output
    d = len(out) - 2
    stride = m.stride if m.stride is not None else m.kernel_size
    return {
        "output": window_formula(call.input[-d:], m.kernel_size, stride, m.padding, 1, m.ceil_mode),
        "elementwise": f"{window} (adds + divide)*{elements_text(out)} = {grouped(elementwise)}",
    }


@MODULES.register(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                  nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
def adaptive_pool(call: ModuleCall) -> Count:
    out = call.output
    d = len(out) - 2
    window_elements = prod(adaptive_window_total(i, o) for i, o in zip(call.input[-d:], out[-d:]))
    planes = prod(out[:-d])
    reads = planes * window_elements
    is_max = "Max" in type(call.module).__name__
    elementwise = reads - prod(out) if is_max else reads
    what = "comparisons" if is_max else "adds and divides"
    return Count(0, elementwise, lambda: {
        "output": adaptive_formula(call.input[-d:], out[-d:])[0],
        "elementwise": f"{what}: {grouped(elementwise)} over {grouped(reads)} window elements",
    })


@MODULES.register(nn.LocalResponseNorm)
def local_response_norm(call: ModuleCall) -> Count:
    """b = a / (k + α/n Σ a²)^β over n neighbouring channels: per element n squares, n - 1 adds,
    then scale, add k, power and divide (4): 2n + 3 operations."""
    n = prod(call.output)
    size = call.module.size
    per = 2 * size + 3
    return Count(0, per * n, lambda: {"elementwise": f"(2*{size} + 3)*{elements_text(call.output)} = {grouped(per * n)}"})


@MODULES.register(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
def dropout(call: ModuleCall) -> Count:
    return Count(0, 0, {}, "identity at inference (eval mode)")


@MODULES.register(nn.Flatten, nn.Unflatten, nn.Identity)
def reshape(call: ModuleCall) -> Count:
    return Count(0, 0, {}, "shape only")


@MODULES.register(Subsampling)
def subsampling(call: ModuleCall) -> Count:
    m, out = call.module, call.output
    k = m.kernel_size
    elementwise = (k * k + 1) * prod(out)
    return Count(0, elementwise, lambda: {
        "output": window_formula(call.input[-2:], k, k, 0, 1, False),
        "params": f"(coefficient + bias)*maps = {per_map_params(m.maps, ('coefficient', 'bias'))}",
        "elementwise": f"({k}*{k} - 1 adds + 1 multiply + 1 bias)*{elements_text(out)} = {grouped(elementwise)}",
    }, "no convolution or linear work: its cost is element-wise")


@MODULES.register(ConnectionTableConv2d)
def connection_table_conv(call: ModuleCall) -> Count:
    m, out = call.module, call.output
    connections = sum(len(t) for t in m.table)
    spatial = prod(out[:1] + out[2:])
    per_output = list(m.kernel_size) + [connections]
    macs = spatial * prod(per_output)
    elementwise = prod(out)
    return Count(macs, elementwise, lambda: {
        "output": window_formula(call.input[-2:], m.kernel_size, 1, 0, 1, False),
        "params": str(connection_table_params(m.kernel_size, [len(t) for t in m.table])),
        "macs": f"{elements_text(out[:1] + out[2:])}*({'*'.join(map(str, per_output))} connections) = {grouped(macs)}",
        "elementwise": _bias_text(out, elementwise),
    })


@MODULES.register(RBFOutput)
def rbf_output(call: ModuleCall) -> Count:
    m = call.module
    rows = prod(call.input[:-1])
    macs = rows * m.in_features * m.out_features
    return Count(macs, macs, lambda: {
        "params": f"{m.in_features}*{m.out_features} = {grouped(m.in_features * m.out_features)} (fixed, not trainable)",
        "macs": f"y_i = Σ_j (x_j - w_ij)²: {rows}*{m.in_features}*{m.out_features} = {grouped(macs)}",
        "elementwise": f"subtractions: {rows}*{m.in_features}*{m.out_features} = {grouped(macs)}",
    })


@MODULES.register(ScaledTanh)
def scaled_tanh(call: ModuleCall) -> Count:
    n = prod(call.output)
    return Count(0, 3 * n, lambda: {"elementwise": f"A*tanh(S*a): 3*{elements_text(call.output)} = {grouped(3 * n)}"})
