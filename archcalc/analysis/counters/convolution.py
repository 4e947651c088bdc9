"""Convolution, its transpose, and unfold / fold (the convolution's im2col and col2im).

Symbols: N batch, C_in/C_out channels, K kernel (K_h*K_w), g groups, H_out/W_out output size.
  Conv:            MACs = N*C_out*H_out*W_out * (C_in/g)*K_h*K_w   (one dot product per output)
  ConvTranspose:   MACs = N*C_in*H_in*W_in * K_h*K_w*(C_out/g)      (each input spread over a window)
  bias:            one add per output element (element-wise column)
  unfold:          a copy of the windows (0);  fold: overlapping windows summed, 1 add per input element
  conv_tbc (fairseq's ConvTBC, time first): each tap's product over the steps it reaches, padding skipped
  deform_conv2d (torchvision.ops, DCN v1/v2): the convolution's MACs (torchvision samples the input at the
                   offset positions into columns, then multiplies them by the weights: one GEMM a group), and
                   element-wise, per sample (N*C_in*K_h*K_w*H_out*W_out of them) a bilinear interpolation, 4
                   products + 3 adds, and its product by the mask: 8; the bias 1 per output. As its kernel
                   runs: a DCN v1 call (no mask) multiplies by a mask of ones, one without a bias adds zeros;
                   every sample is counted alike (one outside the map reads zeros).
This is torch.utils.flop_counter's conv_flop_count / 2 (transposed: the input's spatial size).
Backward: ∂x (a transposed convolution of ∂y, when the input needs a gradient: not for a first layer)
and ∂W (the correlation of x with ∂y) each cost the forward's MACs. (torch.utils.flop_counter counts a
grouped convolution's ∂W g times: it multiplies by all C_in channels instead of C_in/g.)
"""

from __future__ import annotations

from functools import partial
from math import prod

from torch import nn

from archcalc.analysis.counters.text import bias_formula, macs_text, tensor_shape
from archcalc.analysis.counting import (GRAD_MODULES, GRAD_OPS, MODULES, OPS, Count, ModuleCall, Needs, OpCall,
                                        bias_tangent, paired, repeated)
from archcalc.analysis.shapes import elements_text, joined, window_formula
from archcalc.formulas.numbers import grouped
from archcalc.formulas.params import conv_params


def conv_count(out: tuple, per_output: list[int], bias: bool, text) -> Count:
    """MACs = (outputs)*(K_h*K_w*C_in/g); ``text(per_output, macs, elementwise)`` writes the arithmetic."""
    n = prod(out)
    macs = n * prod(per_output)
    elementwise = n if bias else 0
    return Count(macs, elementwise, partial(text, per_output, macs, elementwise))


def transposed_count(inp: tuple, out: tuple, per_input: list[int], bias: bool, text) -> Count:
    """MACs = (inputs)*(K_h*K_w*C_out/g)."""
    macs = prod(inp) * prod(per_input)
    elementwise = prod(out) if bias else 0
    return Count(macs, elementwise, partial(text, per_input, macs, elementwise))


# -- modules -------------------------------------------------------------------------------

@MODULES.register(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def conv(call: ModuleCall) -> Count:
    m = call.module
    return conv_count(call.output, [*m.kernel_size, m.in_channels // m.groups], m.bias is not None,
                      partial(_conv_text, call))


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
        "macs": macs_text(out, per_output, macs),
        **bias_formula(out, elementwise),
    }


@MODULES.register(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
def conv_transpose(call: ModuleCall) -> Count:
    m = call.module
    return transposed_count(call.input, call.output, [*m.kernel_size, m.out_channels // m.groups],
                            m.bias is not None, partial(_conv_transpose_text, call))


def _conv_transpose_text(call: ModuleCall, per_input: list[int], macs: int, elementwise: int) -> dict[str, str]:
    m, inp, out = call.module, call.input, call.output
    d = len(m.kernel_size)  # (not the output's rank: an unbatched input has one less)
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
        "macs": macs_text(inp, per_input, macs),
        **bias_formula(out, elementwise),
    }


@MODULES.register(nn.Unfold)
def unfold_module(call: ModuleCall) -> Count:
    return Count(0, 0, {}, "im2col: a copy of every window, no arithmetic")


@MODULES.register(nn.Fold)
def fold_module(call: ModuleCall) -> Count:
    return _fold(call.input)


# -- functional ----------------------------------------------------------------------------

@OPS.register("conv1d", "conv2d", "conv3d")
def conv_op(call: OpCall) -> Count:
    weight = tensor_shape(call.arg(1, "weight"))
    return conv_count(call.output, [*weight[2:], weight[1]], call.arg(2, "bias") is not None,
                      partial(_conv_op_text, call, weight))


def _conv_op_text(call: OpCall, weight: tuple, per_output: list[int], macs: int, elementwise: int) -> dict[str, str]:
    d = len(weight) - 2
    formulas = {"macs": f"{elements_text(call.output)}*({'*'.join(map(str, per_output))}) = {grouped(macs)}"}
    padding = call.arg(4, "padding", 0)
    if isinstance(padding, str):
        formulas["output"] = f"padding='{padding}': " + ("size kept" if padding == "same" else window_formula(
            call.inputs[0][-d:], weight[2:], call.arg(3, "stride", 1), 0, call.arg(5, "dilation", 1), False))
    else:
        formulas["output"] = window_formula(call.inputs[0][-d:], weight[2:], call.arg(3, "stride", 1),
                                            padding, call.arg(5, "dilation", 1), False)
    return formulas


@OPS.register("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def conv_transpose_op(call: OpCall) -> Count:
    """F.conv_transpose2d(input, weight (C_in, C_out/g, K...), bias, stride, padding, output_padding, groups)."""
    weight = tensor_shape(call.arg(1, "weight"))
    return transposed_count(call.inputs[0], call.output, [*weight[2:], weight[1]], call.arg(2, "bias") is not None,
                            partial(_transposed_op_text, call.inputs[0]))


def _transposed_op_text(inp: tuple, per_input: list[int], macs: int, elementwise: int) -> dict[str, str]:
    return {"macs": macs_text(inp, per_input, macs)}


@OPS.register("deform_conv2d")
def deform_conv_op(call: OpCall) -> Count:
    """torch.ops.torchvision.deform_conv2d(input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w,
    dil_h, dil_w, n_weight_grps, n_offset_grps, use_mask), as torchvision.ops.deform_conv2d calls it."""
    weight, out = tensor_shape(call.args[1]), call.output
    samples = out[0] * call.inputs[0][1] * prod(weight[2:]) * prod(out[2:])
    macs = prod(out) * prod(weight[1:])
    elementwise = 8 * samples + prod(out)
    return Count(macs, elementwise, partial(_deform_text, out, weight, samples, macs, elementwise))


def _deform_text(out, weight, samples, macs, elementwise) -> dict[str, str]:
    return {"macs": f"{elements_text(out)}*({'*'.join(map(str, weight[2:]))}*{weight[1]}) = {grouped(macs)}",
            "elementwise": f"8*{grouped(samples)} samples (bilinear: 4 products + 3 adds; the mask's product) + "
                           f"bias {elements_text(out)} = {grouped(elementwise)}"}


@OPS.register("conv_tbc")
def conv_tbc(call: OpCall) -> Count:
    """torch.conv_tbc(x (T, B, C_in), weight (K, C_in, C_out), bias, pad): fairseq's time-first convolution, as
    its kernel runs it: the output starts as the bias, then each tap k adds the product of the t_k steps it
    reaches (those in the padding are skipped): MACs = Σ_k t_k*B*C_in*C_out, t_k = min(T + p - k, T_out) -
    max(0, p - k); the bias 1 per output, as a convolution's."""
    (t, b, c_in), (k, _, c_out) = call.inputs[0], call.inputs[1]
    pad, out = call.arg(3, "pad", 0), call.output
    steps = [max(0, min(t + pad - j, out[0]) - max(0, pad - j)) for j in range(k)]
    macs = sum(steps) * b * c_in * c_out
    bias = prod(out)
    return Count(macs, bias, {"macs": f"({'+'.join(map(str, steps))}) steps of the taps*{b}*{c_in}*{c_out} = "
                                      f"{grouped(macs)}",
                              "elementwise": f"bias {elements_text(out)} = {grouped(bias)}"})


@OPS.register("unfold")
def unfold_op(call: OpCall) -> Count:
    if len(call.output) == len(call.inputs[0]) + 1:  # Tensor.unfold(dim, size, step): a strided view
        return Count(0, 0, {}, "a view of sliding windows, no arithmetic")
    return Count(0, 0, {}, "im2col: a copy of every window, no arithmetic")


@OPS.register("fold")
def fold_op(call: OpCall) -> Count:
    return _fold(call.inputs[0])


def _fold(inp: tuple) -> Count:
    n = prod(inp)
    return Count(0, n, {"elementwise": f"col2im, overlapping windows summed: 1 add per input element: "
                                       f"{elements_text(inp)} = {grouped(n)}"})


# -- backward ------------------------------------------------------------------------------

@GRAD_MODULES.register(nn.Conv1d, nn.Conv2d, nn.Conv3d)
@paired((0, None), (None, 0))
@bias_tangent
def conv_backward(call: ModuleCall, needs: Needs) -> Count:
    return repeated(conv(call), ("∂x", needs.input(0)), ("∂W", needs.weight()))


@GRAD_MODULES.register(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
@paired((0, None), (None, 0))
@bias_tangent
def conv_transpose_backward(call: ModuleCall, needs: Needs) -> Count:
    return repeated(conv_transpose(call), ("∂x", needs.input(0)), ("∂W", needs.weight()))


@GRAD_OPS.register("conv1d", "conv2d", "conv3d")
@paired((0, 1), (1, 0))
@bias_tangent
def conv_op_backward(call: OpCall, needs: Needs) -> Count:
    return repeated(conv_op(call), ("∂x", needs.input(0)), ("∂W", needs.input(1)))


@GRAD_OPS.register("deform_conv2d")
def deform_conv_op_backward(call: OpCall, needs: Needs) -> Count:
    """torchvision's backward computes every gradient at once: the columns' (Wᵀ·∂y, from which ∂x, ∂offset and
    ∂mask are scattered) and ∂W (∂y·columnsᵀ, on the columns sampled again), each the forward's MACs."""
    flows = needs.weights or any(needs.inputs)
    return repeated(deform_conv_op(call), ("∂columns", flows), ("∂W", flows))


@GRAD_OPS.register("conv_tbc")
def conv_tbc_backward(call: OpCall, needs: Needs) -> Count:
    """conv_tbc_backward computes ∂x and ∂W (tap by tap, the same steps) whichever is needed."""
    flows = needs.weights or any(needs.inputs)
    return repeated(conv_tbc(call), ("∂x", flows), ("∂W", flows))


@GRAD_OPS.register("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
@paired((0, 1), (1, 0))
def conv_transpose_op_backward(call: OpCall, needs: Needs) -> Count:
    return repeated(conv_transpose_op(call), ("∂x", needs.input(0)), ("∂W", needs.input(1)))
