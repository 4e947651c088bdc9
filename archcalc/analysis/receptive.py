"""Receptive fields, propagated tensor by tensor through the traced forward pass.

For each spatial dimension a tensor carries (r, j, c): the receptive field size r in input pixels,
the jump j (the distance in input pixels between neighbouring output units: the effective stride)
and the centre c of the first unit's field, in input coordinates (pixel centres at 0.5, 1.5, ...).
A window of kernel K, stride S, padding P and dilation D (K' = D*(K - 1) + 1) gives
    r_out = r_in + (K' - 1)*j_in,   j_out = j_in*S,   c_out = c_in + ((K' - 1)/2 - P)*j_in
(Araujo et al., Distill 2019; Dumoulin & Visin 2016). Element-wise layers pass the field through;
where paths merge (add, multiply, concatenation) the field is the largest over the incoming paths;
a linear layer on (N, features), global pooling, attention, recurrence and a normalisation over the whole map
(GroupNorm, InstanceNorm, a LayerNorm over more than the channels) see the whole input. A
transposed convolution's, an upsampling's and a fold's field are not propagated.
"""

from __future__ import annotations

from typing import NamedTuple

from archcalc.analysis.shapes import as_tuple
from archcalc.formulas.numbers import shape_text

WHOLE = -1  # r for "the whole input"


class Field(NamedTuple):
    size: tuple[int, ...]  # r per spatial dimension (WHOLE: the whole input)
    jump: tuple[float, ...]
    centre: tuple[float, ...]

    @classmethod
    def of_input(cls, dims: int) -> Field:
        return cls((1,) * dims, (1.0,) * dims, (0.5,) * dims)

    @property
    def whole(self) -> bool:
        return WHOLE in self.size

    def text(self) -> str:
        if self.whole:
            return "whole input"
        size = shape_text(self.size)
        jump = "x".join(f"{j:g}" for j in self.jump)
        return f"{size} (jump {jump})"


def window(field: Field, kernel, stride, padding, dilation) -> Field:
    """A conv or pooling window applied to a field, dimension by dimension."""
    size, jump, centre = field
    if WHOLE in size:
        return field
    d = len(size)
    # (A tuple per dimension, as convolutions keep them, or an int, as pooling does, without a call.)
    if type(kernel) is not tuple or len(kernel) != d:
        kernel = (kernel,) * d if type(kernel) is int else as_tuple(kernel, d)
    if type(stride) is not tuple or len(stride) != d:
        stride = (stride,) * d if type(stride) is int else as_tuple(stride, d)
    if type(padding) is not tuple or len(padding) != d:
        padding = (padding,) * d if type(padding) is int else as_tuple(padding, d)
    if type(dilation) is not tuple or len(dilation) != d:
        dilation = (dilation,) * d if type(dilation) is int else as_tuple(dilation, d)
    if d == 2:  # the usual case, written out: the loop below costs twice as much
        (r0, r1), (j0, j1), (c0, c1) = size, jump, centre
        span0, span1 = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)  # K' - 1
        return _new_field(Field, ((round(r0 + span0 * j0), round(r1 + span1 * j1)), (j0 * stride[0], j1 * stride[1]),
                                  (c0 + (span0 / 2 - padding[0]) * j0, c1 + (span1 / 2 - padding[1]) * j1)))
    sizes, jumps, centres = [], [], []
    for r, j, c, k, s, p, dl in zip(size, jump, centre, kernel, stride, padding, dilation):
        span = dl * (k - 1)  # K' - 1
        sizes.append(round(r + span * j))
        jumps.append(j * s)
        centres.append(c + (span / 2 - p) * j)
    return _new_field(Field, (tuple(sizes), tuple(jumps), tuple(centres)))


_new_field = tuple.__new__  # a Field from its three fields, without the named tuple's Python __new__


def whole(dims: int) -> Field:
    return Field((WHOLE,) * dims, (0.0,) * dims, (0.0,) * dims)


def merge(fields: list[Field]) -> Field:
    """Where paths meet, the largest field (a whole-input field wins)."""
    fields = [f for f in fields if f is not None]
    if not fields:
        raise ValueError("nothing to merge")
    for f in fields:
        if f.whole:
            return f
    return max(fields, key=lambda f: f.size)


# -- which layers and operations move the field how --------------------------------------------

def _conv(m, field, fields, inputs, outputs):
    padding = m.padding
    if isinstance(padding, str):
        padding = tuple((d * (k - 1)) // 2 for k, d in zip(m.kernel_size, m.dilation)) if padding == "same" else 0
    return window(field, m.kernel_size, m.stride, padding, m.dilation)


def _adaptive(m, field, fields, inputs, outputs):
    dims = len(field.size)
    return adaptive(field, inputs[0][-dims:], outputs[0][-dims:])


def rule_for(module):
    """How a layer type moves the field: rule(module, field, fields, input shapes, output shapes), with
    ``field`` the first input's (worked out once per type, then found in RULES)."""
    RULES[type(module)] = rule = _rule(module)
    return rule


def _rule(module):
    from torch import nn

    from archcalc.layers.lenet import ConnectionTableConv2d, RBFOutput, Subsampling

    if isinstance(module, nn.Linear):
        return _linear
    if isinstance(module, (RBFOutput, nn.MultiheadAttention, nn.RNNBase, nn.RNNCellBase, nn.GroupNorm)):
        return _whole  # every output mixes every input position: attention, recurrence, a global norm
    if isinstance(module, nn.modules.instancenorm._InstanceNorm):
        return _instance_norm
    if isinstance(module, (nn.LayerNorm, *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))):
        return _layer_norm
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag, nn.Upsample)):
        return lambda *_: None  # indices have no field; an upsampling's is not propagated
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return lambda *_: None  # a transposed convolution spreads each input over a window: not propagated
    if isinstance(module, nn.modules.conv._ConvNd):
        return _conv
    if isinstance(module, ConnectionTableConv2d):
        return lambda m, field, *_: window(field, m.kernel_size, 1, 0, 1)
    if isinstance(module, Subsampling):
        return lambda m, field, *_: window(field, m.kernel_size, m.kernel_size, 0, 1)
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        return lambda m, field, *_: window(field, m.kernel_size, m.stride or m.kernel_size, m.padding, m.dilation)
    if isinstance(module, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        return lambda m, field, *_: window(field, m.kernel_size, m.stride or m.kernel_size, m.padding, 1)
    if isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd | nn.modules.pooling._AdaptiveMaxPoolNd):
        return _adaptive
    return through  # element-wise: BatchNorm, activations, dropout, flatten, LRN across channels


def _linear(m, field, fields, inputs, outputs):
    """On (N, features) the whole input; on tokens or a channels-last map (N, ..., features), per position."""
    return whole(len(field.size)) if len(inputs[0]) <= 2 else field


def _instance_norm(m, field, fields, *_):
    """With running statistics, per position; else its statistics are the whole map's (each layer's own: a rule is
    kept per type, and two InstanceNorms of a network may differ)."""
    return through(m, field, fields) if m.track_running_stats else _whole(m, field)


def _layer_norm(m, field, fields, *_):
    """Over the channels only (ConvNeXt's, on a channels-last map), per position; over the map too (a WGAN critic's
    LayerNorm([C, H, W])), the whole map (each layer's own: a rule is kept per type)."""
    return through(m, field, fields) if len(m.normalized_shape) == 1 else _whole(m, field)


def _whole(m, field, *_):
    return whole(len(field.size))


def through(m, field, fields, *_):
    """An element-wise layer's rule: the field passes through (the largest, if several come in)."""
    return field if len(fields) == 1 else merge(fields)


RULES: dict = {}  # layer type -> its rule


def adaptive(field: Field, sizes_in, sizes_out) -> Field:
    """Adaptive pooling: global pooling sees everything; otherwise the widest window and the mean stride."""
    if all(o == 1 for o in sizes_out):
        return whole(len(field.size))
    kernel = tuple(-(-i // o) + (0 if i % o == 0 else 1) for i, o in zip(sizes_in, sizes_out))
    stride = tuple(i / o for i, o in zip(sizes_in, sizes_out))
    return window(field, kernel, stride, 0, 1)


_WHOLE_OPS = {"linear", "matmul", "mm", "bmm", "addmm", "baddbmm", "einsum", "sum", "mean", "amax", "amin", "max", "min",
              "prod", "scaled_dot_product_attention", "multi_head_attention_forward", "_native_multi_head_attention",
              "lstm", "gru", "rnn_tanh", "rnn_relu", "group_norm", "instance_norm"}
_NOT_PROPAGATED = {"interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "conv_transpose1d",
                   "conv_transpose2d", "conv_transpose3d", "fold", "embedding"}
_MERGING = {"add", "sub", "mul", "div", "cat", "concat", "concatenate", "stack", "maximum", "minimum", "where"}


def for_op(name: str, call, fields: list):
    """The output field of a functional operation."""
    known = [f for f in fields if f is not None]
    if not known:
        return None
    dims = len(known[0].size)
    if name in _NOT_PROPAGATED:
        return None
    if name in ("layer_norm", "rms_norm"):  # over the channels only, or over the whole map
        shape = call.arg(1, "normalized_shape")
        return known[0] if len(shape if isinstance(shape, (tuple, list)) else (shape,)) == 1 else whole(dims)
    if name == "linear" and len(call.inputs[0]) > 2:
        return known[0]  # applied per token or per position
    if name in _WHOLE_OPS:
        if name in ("sum", "mean", "amax", "amin", "max", "min", "prod"):
            if call.of_two_tensors:
                return merge(known)  # torch.max(x, y): element-wise, the fields merged
            reduced = call.arg(1, "dim", None)
            if reduced is None:
                return whole(dims)
            axes = reduced if isinstance(reduced, (tuple, list)) else (reduced,)
            rank = len(call.inputs[0])
            if not any(a % rank >= rank - dims for a in axes):
                return known[0]  # a reduction over channels only keeps the field
        return whole(dims)
    if name in ("conv1d", "conv2d", "conv3d"):
        weight = call.arg(1, "weight")
        padding = call.arg(4, "padding", 0)
        if isinstance(padding, str):
            return None
        return window(known[0], tuple(weight.shape[2:]), call.arg(3, "stride", 1), padding, call.arg(5, "dilation", 1))
    if name.startswith("max_pool"):
        k = call.arg(1, "kernel_size")
        return window(known[0], k, call.arg(2, "stride") or k, call.arg(3, "padding", 0), call.arg(4, "dilation", 1))
    if name.startswith("avg_pool"):
        k = call.arg(1, "kernel_size")
        return window(known[0], k, call.arg(2, "stride") or k, call.arg(3, "padding", 0), 1)
    if name.startswith("adaptive_"):
        return adaptive(known[0], call.inputs[0][-dims:], call.output[-dims:])
    if name in _MERGING:
        return merge(known)
    return merge(known)  # activations, views and copies pass the field through
