"""Quantized networks (torch.ao.quantization: dynamic, static and fused int8 layers, the quantized embedding).

Symbols: s a scale, z a zero point; q = clamp(round(x/s) + z) quantises, x̂ = (q - z)*s dequantises.
A quantized layer does the float layer's multiply-accumulates, each on int8 operands accumulated in int32:
  MACs            the float layer's formula (linear.py, convolution.py, recurrent.py), read through its unpacked
                  weights (packed.py): quantization changes the width of each MAC, not their number
  parameters      the unpacked weights, int8 at 1 byte each (float16 at 2 for dynamic quantization's float16
                  kind), the bias float32; the weights' scales and zero points are buffers
The element-wise work is the float layer's (its bias, a fused activation or addition: 1 per output element)
plus what quantization adds, by a declared rule, counting a scale-and-shift as 2 (BatchNorm's folded form):
  quantise, dequantise            2 per element (x/s + z; (q - z)*s): QuantStub, DeQuantStub, .dequantize()
  requantise                      2 per output element for every kernel given its output's scale and zero point
                                  (static Linear, Conv, the quantized add, cat, Hardswish, LayerNorm, ...); one
                                  that keeps its input's (ReLU, ReLU6, max pooling, dropout) adds none
  dynamic (DynamicQuantizedLinear, the dynamic convolutions, LSTM, GRU and cells): each product's input is
                                  quantised per tensor on the fly, its range (min and max, 2 per element) then
                                  the quantisation (2): 4 per input element; its int32 output dequantised, 2
                                  per output element (a recurrent layer: for each of its products W·v, every row)
  the quantized Embedding         each row read dequantised: 2 per output element (EmbeddingBag: + its reduction)
  cat                             a copy; each input whose scale or zero point is not the output's requantised,
                                  2 per element (read from the tensors)
The operations themselves (quantized::linear, conv2d, their dynamic and fused forms), where a GraphModule calls them
with a packed weight it holds (FX's lowering of F.linear, F.conv2d), count as their layers do, over that weight.
The zero-point corrections of an asymmetric integer product (FBGEMM's row and column offsets: a few operations per
output) are not counted. None of fvcore, torchinfo, thop, ptflops and torch.utils.flop_counter has a formula for
a quantized kernel (they count 0, and torchinfo, thop and ptflops see no parameters in a quantized layer).
"""

from __future__ import annotations

from functools import partial
from math import prod
from types import SimpleNamespace

import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.intrinsic.quantized.dynamic as nniqd
import torch.ao.nn.quantized as nnq
import torch.ao.nn.quantized.dynamic as nnqd

from archcalc.analysis.counters import convolution, linear, movement, normalisation, recurrent
from archcalc.analysis.counters.text import bias_formula, macs_text
from archcalc.analysis.counting import MODULES, OPS, Count, ModuleCall, OpCall, counter_for_type
from archcalc.analysis.packed import QUANTIZED, object_weights, packed_weights
from archcalc.analysis.shapes import elements_text
from archcalc.formulas.numbers import grouped

# -- the quantization steps' element-wise work -------------------------------------------------------

QUANTISE = 2  # x/s + z (rounding and clamping into the integer range are the store's)
DEQUANTISE = 2  # (q - z)*s
REQUANTISE = 2  # the int32 accumulator (or the float result) scaled and shifted into the output's int8
RANGE = 2  # a dynamic quantisation's min and max over its input


def added(count: Count, terms: list[tuple[str, int]]) -> Count:
    """The float layer's count with quantization's element-wise terms (what, operations) added to it."""
    terms = [(what, n) for what, n in terms if n]
    if not terms:
        return count
    own = count.elementwise or 0
    total = own + sum(n for _, n in terms)
    writer = count.formulas

    def text() -> dict[str, str]:
        base = dict(writer() if callable(writer) else writer)
        parts = [base["elementwise"].rsplit(" = ", 1)[0]] if own and "elementwise" in base else []
        parts += [what for what, _ in terms]
        base["elementwise"] = " + ".join(parts) + f" = {grouped(total)}"
        return base

    return count._replace(elementwise=total, formulas=text)


def _per(per: int, what: str, shape: tuple) -> tuple[str, int]:
    return f"{what} {per}*{elements_text(shape)}" if per != 1 else f"{what} {elements_text(shape)}", per * prod(shape)


# -- layers with packed weights: the float formula through a view of the unpacked weights ------------

_LINEAR_ATTRIBUTES = ("in_features", "out_features")
_CONV_ATTRIBUTES = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                    "padding_mode", "output_padding")


def _view(module, attributes: tuple[str, ...]) -> SimpleNamespace:
    """The float layer the quantized one stands for, as its counter reads it: hyperparameters and a bias or None."""
    bias = dict(packed_weights(module)).get("bias")
    return SimpleNamespace(bias=bias, **{a: getattr(module, a) for a in attributes if hasattr(module, a)})


_FUSED = {  # a fused layer's own operation after its product, 1 per output element
    nniq.LinearReLU: "ReLU", nniq.LinearLeakyReLU: "LeakyReLU", nniq.LinearTanh: "Tanh", nniq.ConvReLU1d: "ReLU",
    nniq.ConvReLU2d: "ReLU", nniq.ConvReLU3d: "ReLU", nniq.ConvAdd2d: "add", nniqd.LinearReLU: "ReLU",
}
_FUSED_TWO = {nniq.ConvAddReLU2d: "add, ReLU"}  # (2 per output element)
_DYNAMIC = ("torch.ao.nn.quantized.dynamic", "torch.ao.nn.intrinsic.quantized.dynamic")


def _fused(module, out: tuple) -> list[tuple[str, int]]:
    kind = type(module)
    if kind in _FUSED:
        return [_per(1, f"fused {_FUSED[kind]}", out)]
    if kind in _FUSED_TWO:
        return [_per(2, f"fused {_FUSED_TWO[kind]}", out)]
    return []


def _steps(module, inp: tuple, out: tuple) -> list[tuple[str, int]]:
    return _around(type(module).__module__.startswith(_DYNAMIC), _weight(module).is_quantized, inp, out)


def _around(dynamic: bool, int8: bool, inp: tuple, out: tuple) -> list[tuple[str, int]]:
    """What quantization adds around a product: a dynamic one quantises its input and dequantises its output (not
    dynamic quantization's float16 kind, ``int8`` False: a float product); a static one requantises its output."""
    if not dynamic:
        return [_per(REQUANTISE, "requantise", out)]
    if not int8:
        return []
    return [_per(RANGE + QUANTISE, "quantise the input (range, x/s + z)", inp), _per(DEQUANTISE, "dequantise", out)]


def _weight(module):
    slots = packed_weights(module)
    return next(t for name, t in slots if name.startswith("weight"))


@MODULES.register(nnq.Linear, nnqd.Linear, nniq.LinearReLU, nniq.LinearLeakyReLU, nniq.LinearTanh, nniqd.LinearReLU)
def quantized_linear(call: ModuleCall) -> Count:
    m = call.module
    count = linear.linear(call._replace(module=_view(m, _LINEAR_ATTRIBUTES)))
    return _noted(added(count, _fused(m, call.output) + _steps(m, call.input, call.output)), m)


@MODULES.register(nnq.Conv1d, nnq.Conv2d, nnq.Conv3d, nnqd.Conv1d, nnqd.Conv2d, nnqd.Conv3d, nniq.ConvReLU1d,
                  nniq.ConvReLU2d, nniq.ConvReLU3d, nniq.ConvAdd2d, nniq.ConvAddReLU2d)
def quantized_conv(call: ModuleCall) -> Count:
    m = call.module
    count = convolution.conv(call._replace(module=_view(m, _CONV_ATTRIBUTES)))
    return _noted(added(count, _fused(m, call.output) + _steps(m, call.input, call.output)), m)


@MODULES.register(nnq.ConvTranspose1d, nnq.ConvTranspose2d, nnq.ConvTranspose3d, nnqd.ConvTranspose1d,
                  nnqd.ConvTranspose2d, nnqd.ConvTranspose3d)
def quantized_conv_transpose(call: ModuleCall) -> Count:
    m = call.module
    count = convolution.conv_transpose(call._replace(module=_view(m, _CONV_ATTRIBUTES)))
    return _noted(added(count, _steps(m, call.input, call.output)), m)


def _noted(count: Count, module) -> Count:
    weight = _weight(module)
    if weight.is_quantized:
        return count._replace(note=f"{str(weight.dtype).removeprefix('torch.')} weights: the float layer's MACs, "
                                   f"on integers")
    return count._replace(note="float16 weights: the float product, its input not quantised")


@MODULES.register(nnqd.LSTM, nnqd.GRU)
def quantized_recurrent(call: ModuleCall) -> Count:
    """The float formula over the unpacked weights; each product W·v (W r x c) quantises v (4 per element) and
    dequantises W·v (2 per element), every row."""
    m = call.module
    weights = [(name, t) for name, t in packed_weights(m) if name.startswith("weight_")]
    view = SimpleNamespace(mode=m.mode, bidirectional=m.bidirectional, num_layers=m.num_layers,
                           hidden_size=m.hidden_size, bias=m.bias, training=False, dropout=0.0,
                           named_parameters=lambda recurse=False: weights)
    count = recurrent.recurrent(call._replace(module=view))
    return _noted(added(count, _products(recurrent.sequence_rows(call.input), weights)), m)


@MODULES.register(nnqd.LSTMCell, nnqd.GRUCell, nnqd.RNNCell)
def quantized_cell(call: ModuleCall) -> Count:
    m = call.module
    slots = dict(packed_weights(m))
    weights = [("weight_ih", slots["weight_ih"]), ("weight_hh", slots["weight_hh"])]
    view = SimpleNamespace(hidden_size=m.hidden_size, bias=m.bias, weight_ih=slots["weight_ih"],
                           weight_hh=slots["weight_hh"])
    count = recurrent.recurrent_cell(call._replace(module=view))
    return _noted(added(count, _products(recurrent.sequence_rows(call.input), weights)), m)


def _products(rows: int, weights: list) -> list[tuple[str, int]]:
    if not weights or not weights[0][1].is_quantized:
        return []
    per_row = sum((RANGE + QUANTISE) * t.shape[1] + DEQUANTISE * t.shape[0] for _, t in weights)
    sizes = " + ".join(f"4*{t.shape[1]} + 2*{t.shape[0]}" for _, t in weights)
    return [(f"quantise each product's input, dequantise its output {rows} rows*({sizes})", rows * per_row)]


@MODULES.register(nnq.Embedding)
def quantized_embedding(call: ModuleCall) -> Count:
    count = movement.embedding(call._replace(module=_embedding_view(call.module)))
    return added(count, [_per(DEQUANTISE, "dequantise each row read", call.output)])


@MODULES.register(nnq.EmbeddingBag)
def quantized_embedding_bag(call: ModuleCall) -> Count:
    m = call.module
    count = movement.embedding_bag(call._replace(module=_embedding_view(m, m.mode)))
    looked_up = (*call.input, m.embedding_dim)
    return added(count, [_per(DEQUANTISE, "dequantise each row read", looked_up)])


def _embedding_view(m, mode: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(num_embeddings=m.num_embeddings, embedding_dim=m.embedding_dim, mode=mode)


# -- layers without packed weights: the float layer's count, requantised ---------------------------------

_FLOAT_FORM = (nnq.BatchNorm2d, nnq.BatchNorm3d, nniq.BNReLU2d, nniq.BNReLU3d, nnq.LayerNorm, nnq.GroupNorm,
               nnq.InstanceNorm1d, nnq.InstanceNorm2d, nnq.InstanceNorm3d, nnq.Hardswish, nnq.ELU, nnq.LeakyReLU,
               nnq.ReLU6, nnq.Sigmoid, nnq.Softmax, nnq.Dropout)


@MODULES.register(*_FLOAT_FORM)
def quantized_float_form(call: ModuleCall) -> Count:
    """Its float class's formula; requantised where it is given its output's scale (ReLU6, Dropout and max
    pooling keep their input's)."""
    m = call.module
    count = _float_counter(type(m))(call)
    terms = [_per(1, "fused ReLU", call.output)] if isinstance(m, (nniq.BNReLU2d, nniq.BNReLU3d)) else []
    if hasattr(m, "scale") or hasattr(m, "output_scale"):
        terms.append(_per(REQUANTISE, "requantise", call.output))
    return added(count, terms)


def _float_counter(cls: type):
    return next(counter_for_type(base) for base in cls.__mro__[1:]
                if not base.__module__.startswith(QUANTIZED) and counter_for_type(base) is not None)


@MODULES.register(nnq.Quantize)
def quantise(call: ModuleCall) -> Count:
    return Count(0, *_one_step(QUANTISE, "quantise (x/s + z)", call.output))


@MODULES.register(nnq.DeQuantize)
def dequantise(call: ModuleCall) -> Count:
    return Count(0, *_one_step(DEQUANTISE, "dequantise ((q - z)*s)", call.output))


def _one_step(per: int, what: str, shape: tuple) -> tuple[int, object]:
    text, n = _per(per, what, shape)
    return n, {"elementwise": f"{text} = {grouped(n)}"}


@OPS.register("quantize_per_tensor", "quantize_per_channel", "quantize_per_tensor_dynamic")
def quantise_op(call: OpCall) -> Count:
    per = QUANTISE + (RANGE if call.name == "quantize_per_tensor_dynamic" else 0)
    return Count(0, *_one_step(per, "quantise" if per == QUANTISE else "range and quantise", call.output))


@OPS.register("dequantize")
def dequantise_op(call: OpCall) -> Count:
    return Count(0, *_one_step(DEQUANTISE, "dequantise", call.output))


# -- the quantized namespace's functional operations (QFunctional, and FX's converted graphs) ------------------

@OPS.register("quantized::add", "quantized::mul", "quantized::add_relu", "quantized::mul_relu")
def quantized_arithmetic(call: OpCall) -> Count:
    """qa + qb (or *) with the output's scale and zero point: 1 (+ 1 a fused ReLU) and the requantisation."""
    out = call.output
    terms = [_per(2 if call.name.endswith("_relu") else 1, call.name.removeprefix("quantized::"), out),
             _per(REQUANTISE, "requantise", out)]
    return added(Count(0, 0, {}), terms)


@OPS.register("quantized::add_scalar", "quantized::mul_scalar", "quantized::add_scalar_relu",
              "quantized::mul_scalar_relu")
def quantized_scalar(call: OpCall) -> Count:
    """qa + b (or *): the scalar folded into the output's scale or zero point where it can be, 1 per element (+ 1
    a fused ReLU)."""
    per = 2 if call.name.endswith("_relu") else 1
    return added(Count(0, 0, {}), [_per(per, call.name.removeprefix("quantized::"), call.output)])


@OPS.register("quantized::cat", "quantized::cat_relu")
def quantized_cat(call: OpCall) -> Count:
    """A copy; the inputs whose scale or zero point differ from the output's are requantised (2 per element)."""
    tensors, scale, zero = call.arg(0, "qx"), call.arg(2, "scale"), call.arg(3, "zero_point")
    moved = [t for t in tensors if t.is_quantized and (scale is None or t.q_scale() != scale or
                                                        t.q_zero_point() != zero)]
    terms = [_per(REQUANTISE, "requantise an input", tuple(t.shape)) for t in moved]
    if call.name.endswith("_relu"):
        terms.append(_per(1, "fused ReLU", call.output))
    return added(Count(0, 0, {}), terms)


@OPS.register("quantized::hardswish", "quantized::elu", "quantized::celu", "quantized::leaky_relu",
              "quantized::sigmoid", "quantized::softmax", "quantized::threshold", "quantized::prelu")
def quantized_activation(call: OpCall) -> Count:
    out = call.output
    return added(Count(0, 0, {}), [_per(1, call.name.removeprefix("quantized::"), out),
                                   _per(REQUANTISE, "requantise", out)])


@OPS.register("quantized::batch_norm1d", "quantized::batch_norm2d", "quantized::batch_norm3d",
              "quantized::batch_norm", "quantized::batch_norm1d_relu", "quantized::batch_norm2d_relu",
              "quantized::batch_norm3d_relu", "quantized::batch_norm_relu")
def quantized_batch_norm(call: OpCall) -> Count:
    """Running statistics folded, 2 per element (as BatchNorm in eval), + 1 a fused ReLU, then requantised."""
    out = call.output
    terms = [_per(2, "x*γ/σ + (β - μγ/σ)", out)]
    if call.name.endswith("_relu"):
        terms.append(_per(1, "fused ReLU", out))
    return added(Count(0, 0, {}), [*terms, _per(REQUANTISE, "requantise", out)])


@OPS.register("quantized::layer_norm", "quantized::group_norm", "quantized::instance_norm")
def quantized_norm(call: OpCall) -> Count:
    """Each group's statistics and the scale by 1/σ, 5 per element (+ 1 for γ, + 1 for β), as normalisation.py
    counts the float norm, then requantised. (input, normalized_shape | groups, weight, bias, eps, scale, zero
    point); instance_norm (input, weight, bias, eps, scale, zero point)."""
    weight, bias = (call.arg(1, "weight"), call.arg(2, "bias")) if call.name.endswith("instance_norm") else \
        (call.arg(2, "weight"), call.arg(3, "bias"))
    affine = (weight is not None) + (bias is not None)
    count = normalisation.norm_count(call.inputs[0], 5, affine, call.name.removeprefix("quantized::"))
    return added(count, [_per(REQUANTISE, "requantise", call.output)])


# -- quantization-aware training: fake quantization in the float network ------------------------------------

FAKE_QUANTISE = QUANTISE + DEQUANTISE  # q, then (q - z)*s: the float value the int8 network will compute
OBSERVE = RANGE  # the observer's running min and max (a moving average of them: per tensor, not per element)


@OPS.register("fake_quantize_per_tensor_affine", "fake_quantize_per_channel_affine",
              "_fake_quantize_learnable_per_tensor_affine", "_fake_quantize_learnable_per_channel_affine")
def fake_quantise(call: OpCall) -> Count:
    """Quantise and dequantise each element, in float: 4 per element."""
    return Count(0, *_one_step(FAKE_QUANTISE, "fake-quantise (quantise, dequantise)", call.output))


@OPS.register("fused_moving_avg_obs_fake_quant")
def observed_fake_quantise(call: OpCall) -> Count:
    """(x, observer_on, fake_quant_on, running_min, running_max, scale, zero_point, ...): the observer's min and
    max over x (2 per element) where it is on, then the fake quantisation (4 per element) where that is on; the
    switches are read from their tensors (on the meta device, which has no values: both on, as prepare_qat
    leaves them)."""
    terms = []
    observer, fake = call.arg(1, "observer_on"), call.arg(2, "fake_quant_on")
    if _on(observer):
        terms.append(_per(OBSERVE, "observe (min, max)", call.inputs[0]))
    if _on(fake):
        terms.append(_per(FAKE_QUANTISE, "fake-quantise (quantise, dequantise)", call.output))
    return added(Count(0, 0, {}), terms)


def _on(switch) -> bool:
    return switch is None or switch.device.type == "meta" or bool(switch.reshape(-1)[0].item())


# -- the weighted operations themselves, given a packed weight (FX's lowering of F.linear and F.conv2d) -------

_LINEAR_OPS = ("quantized::linear", "quantized::linear_relu", "quantized::linear_leaky_relu",
               "quantized::linear_tanh")
_DYNAMIC_LINEAR_OPS = ("quantized::linear_dynamic", "quantized::linear_relu_dynamic",
                       "quantized::linear_dynamic_fp16", "quantized::linear_relu_dynamic_fp16")
_CONV_OPS = tuple(f"quantized::conv{d}d{relu}" for d in (1, 2, 3) for relu in ("", "_relu"))
_TRANSPOSED_OPS = tuple(f"quantized::conv_transpose{d}d" for d in (1, 2, 3))


@OPS.register(*_LINEAR_OPS, *_DYNAMIC_LINEAR_OPS)
def quantized_linear_op(call: OpCall) -> Count:
    """(x, packed weight, [output scale, zero point]): the float product's MACs over the unpacked weight (N x K),
    rows*K*N; a bias, a fused activation (1 per output each); requantised (static) or the input quantised and the
    output dequantised (dynamic, not its float16 kind)."""
    weight, bias = object_weights_of(call)
    n_out, n_in = weight.shape
    out = call.output
    count = linear.linear_count(prod(call.inputs[0][:-1]), n_in, n_out, out, bias is not None, _op_text)
    activation = next((a for a in ("leaky_relu", "relu", "tanh") if f"_{a}" in call.name), None)
    fused = [_per(1, f"fused {activation}", out)] if activation else []
    steps = _around(call.name in _DYNAMIC_LINEAR_OPS, not call.name.endswith("_fp16"), call.inputs[0], out)
    return added(count, fused + steps)


@OPS.register(*_CONV_OPS)
def quantized_conv_op(call: OpCall) -> Count:
    """(x, packed weight, output scale, zero point): the float convolution's MACs, (outputs)*(K_h*K_w*C_in/g), over the
    unpacked weight; a bias and a fused ReLU 1 per output each; requantised."""
    weight, bias = object_weights_of(call)
    out = call.output
    count = convolution.conv_count(out, list(weight.shape[1:]), bias is not None, partial(_conv_op_text, out, out))
    fused = [_per(1, "fused ReLU", out)] if call.name.endswith("_relu") else []
    return added(count, fused + [_per(REQUANTISE, "requantise", out)])


@OPS.register(*_TRANSPOSED_OPS)
def quantized_conv_transpose_op(call: OpCall) -> Count:
    """The float transposed convolution's MACs, (inputs)*(K_h*K_w*C_out/g), over the unpacked weight
    (C_in, C_out/g, K_h, K_w); a bias; requantised."""
    weight, bias = object_weights_of(call)
    out = call.output
    count = convolution.transposed_count(call.inputs[0], out, list(weight.shape[1:]), bias is not None,
                                         partial(_conv_op_text, call.inputs[0], out))
    return added(count, [_per(REQUANTISE, "requantise", out)])


def object_weights_of(call: OpCall) -> tuple:
    """The (weight, bias) of the packed weight an operation is given, its second argument."""
    slots = dict(object_weights(call.args[1]))
    return slots["weight"], slots.get("bias")


def _op_text(rows, n_in, n_out, out, macs, elementwise) -> dict[str, str]:
    return {"macs": f"{rows}*{n_in}*{n_out} = {grouped(macs)}", **bias_formula(out, elementwise)}


def _conv_op_text(counted: tuple, out: tuple, per: list[int], macs: int, elementwise: int) -> dict[str, str]:
    """``counted``: the shape whose elements each do ``per`` MACs (a convolution's output, a transposed one's
    input)."""
    return {"macs": macs_text(counted, per, macs), **bias_formula(out, elementwise)}
