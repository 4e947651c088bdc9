"""Receptive fields, propagated tensor by tensor through the traced forward pass.

For each spatial dimension a tensor carries (r, j, c, n): the receptive field size r in input pixels,
the jump j (the distance in input pixels between neighbouring output units: the effective stride),
the centre c of the first unit's field, in input coordinates (pixel centres at 0.5, 1.5, ...), and the n units of
the grid they lie on. A window of kernel K, stride S, padding P and dilation D (K' = D*(K - 1) + 1) gives
    r_out = r_in + (K' - 1)*j_in,   j_out = j_in*S,   c_out = c_in + ((K' - 1)/2 - P)*j_in,
    n_out = (n_in + 2P - K')/S + 1
(Araujo et al., Distill 2019; Dumoulin & Visin 2016); a strided slice x[..., 1::2, 0::2] is a window of one.
Element-wise layers pass the field through; where paths merge (add, multiply, concatenation) the field is their
union on one grid (else the largest); a linear layer on (N, features), global pooling, attention over every
position of the grid, recurrence and a normalisation over the whole map (GroupNorm, InstanceNorm, a LayerNorm over
more than the channels) see the whole input. Attention over fewer tokens than the grid has positions (Swin's 7x7
windows of a 56x56 grid, an axial attention's row) sees a part of it that is not tracked: its field, and every
field it reaches, is not computed (rather than the whole input) until an operation sees the whole again. A
transposed convolution's, an upsampling's and a fold's field are not propagated.
"""

from __future__ import annotations

from math import ceil, prod
from typing import NamedTuple

from archcalc.analysis.shapes import as_tuple
from archcalc.formulas.numbers import shape_text

WHOLE = -1  # r for "the whole input"
PART = -2  # r for "a part of the input that is not tracked" (attention within windows)


class Field(NamedTuple):
    size: tuple[int, ...]  # r per spatial dimension (WHOLE: the whole input; PART: a part not tracked)
    jump: tuple[float, ...]
    centre: tuple[float, ...]
    grid: tuple[int, ...]  # the positions its units lie on, per dimension (attention over all of them: the whole)

    @classmethod
    def of_input(cls, sizes: tuple[int, ...]) -> Field:
        dims = len(sizes)
        return cls((1,) * dims, (1.0,) * dims, (0.5,) * dims, tuple(sizes))  # (the grid: the input's pixels)

    @property
    def whole(self) -> bool:
        return WHOLE in self.size

    @property
    def part(self) -> bool:
        return PART in self.size

    @property
    def positions(self) -> int:
        """The grid's positions: 56 x 56 after Swin's 4x4 patches of a 224 x 224 image, 27 x 27 after PiT's 16x16
        convolution at stride 8."""
        return prod(self.grid)

    def text(self) -> str:
        if self.whole:
            return "whole input"
        if self.part:
            return PART_TEXT
        size = shape_text(self.size)
        jump = "x".join(f"{j:g}" for j in self.jump)
        return f"{size} (jump {jump})"


def window(field: Field, kernel, stride, padding, dilation, ceil_mode: bool = False, grid=None) -> Field:
    """A conv or pooling window applied to a field, dimension by dimension; its grid (n + 2P - K')/S + 1 positions
    a side, rounded up with ``ceil_mode``, unless ``grid`` says it."""
    size, jump, centre, before = field
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
    if d == 2 and PART not in size:  # the usual case, written out: the loop below costs twice as much
        (r0, r1), (j0, j1), (c0, c1) = size, jump, centre
        span0, span1 = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)  # K' - 1
        if grid is None and not ceil_mode:
            (n0, n1), (s0, s1), (p0, p1) = before, stride, padding
            grid = (max(1, (n0 + 2 * p0 - span0 - 1) // s0 + 1), max(1, (n1 + 2 * p1 - span1 - 1) // s1 + 1))
        elif grid is None:
            grid = tuple(map(_positions, before, kernel, stride, padding, dilation, (ceil_mode,) * d))
        return _new_field(Field, ((round(r0 + span0 * j0), round(r1 + span1 * j1)), (j0 * stride[0], j1 * stride[1]),
                                  (c0 + (span0 / 2 - padding[0]) * j0, c1 + (span1 / 2 - padding[1]) * j1), grid))
    if grid is None:
        grid = tuple(map(_positions, before, kernel, stride, padding, dilation, (ceil_mode,) * d))
    sizes, jumps, centres = [], [], []
    for r, j, c, k, s, p, dl in zip(size, jump, centre, kernel, stride, padding, dilation):
        span = dl * (k - 1)  # K' - 1
        sizes.append(PART if r == PART else round(r + span * abs(j)))  # (a part not tracked stays one; its grid
        # moves; a jump below 0: positions in reverse order, a sequence flipped)
        jumps.append(j * s)
        centres.append(c + (span / 2 - p) * j)
    return _new_field(Field, (tuple(sizes), tuple(jumps), tuple(centres), grid))


def _positions(n: int, k: int, s, p: int, d: int, ceil_mode: bool) -> int:
    """A side of the grid after a window: (n + 2p - d(k - 1) - 1)/s + 1, rounded down (up with ceil_mode, where
    the last window starts inside the input or its left padding, as PyTorch's pooling says)."""
    span = n + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return max(1, int(span // s) + 1)
    out = ceil(span / s) + 1
    return max(1, out - 1 if (out - 1) * s >= n + p else out)


_new_field = tuple.__new__  # a Field from its four fields, without the named tuple's Python __new__
PART_TEXT = "window: not tracked"
PART_NOTE = ("window: not tracked: attention within a part of the grid (Swin's 7x7 windows of a 56x56 grid, an axial "
             "attention's row) sees that part, which is not tracked, and so does everything it reaches, until an "
             "operation sees every position (a later stage whose window holds the whole grid, global pooling)")


def whole(field: Field) -> Field:
    """The whole input, in the field's dimensions."""
    dims = len(field.size)
    return Field((WHOLE,) * dims, (0.0,) * dims, (0.0,) * dims, field.grid)


def part(field: Field) -> Field:
    """A part of the input that is not tracked (a window's tokens), in the field's dimensions, on its grid."""
    return Field((PART,) * len(field.size), field.jump, field.centre, field.grid)


def merge(fields: list[Field]) -> Field:
    """Where paths meet, their union on one grid, else the largest field (a whole-input field wins; else a part not
    tracked, which could be larger than any other)."""
    fields = [f for f in fields if f is not None]
    if len(fields) == 1:
        return fields[0]
    if not fields:
        raise ValueError("nothing to merge")
    for f in fields:
        if f.whole:
            return f
    for f in fields:
        if f.part:
            return f
    first = fields[0]
    if any(f.jump != first.jump for f in fields):
        return max(fields, key=lambda f: f.size)
    # On one grid, the union: from the lowest first pixel to the highest last (YOLOv5's Focus, whose four slices
    # x[..., 0::2, 0::2], x[..., 1::2, 0::2], ... start a pixel apart, together see 2x2)
    low = [min(f.centre[d] - f.size[d] / 2 for f in fields) for d in range(len(first.size))]
    high = [max(f.centre[d] + f.size[d] / 2 for f in fields) for d in range(len(first.size))]
    return _new_field(Field, (tuple(round(h - lo) for lo, h in zip(low, high)), first.jump,
                              tuple((lo + h) / 2 for lo, h in zip(low, high)), first.grid))


def mixing(field: Field, lengths) -> Field:
    """Attention over sequences of these lengths: the whole input where one holds every position of the grid (a
    ViT's 197 tokens for its 14 x 14 patches and the class token), else a part of it not tracked (Swin's 49
    tokens of a 7 x 7 window, of 56 x 56 positions)."""
    if field.whole or not lengths or max(lengths) >= field.positions:
        return whole(field)
    return part(field)


# -- which layers and operations move the field how --------------------------------------------

def _conv(m, field, fields, inputs, outputs):
    padding = m.padding
    if isinstance(padding, str):
        same = padding == "same"
        padding = tuple((d * (k - 1)) // 2 for k, d in zip(m.kernel_size, m.dilation)) if same else 0
        return window(field, m.kernel_size, m.stride, padding, m.dilation, grid=field.grid if same else None)
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
    if isinstance(module, nn.MultiheadAttention):
        return _attention  # over every token of the grid, or a window of it
    if isinstance(module, (RBFOutput, nn.RNNBase, nn.RNNCellBase, nn.GroupNorm)):
        return _whole  # every output mixes every input position: recurrence, a global norm
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
        return lambda m, field, *_: window(field, m.kernel_size, m.stride or m.kernel_size, m.padding, m.dilation,
                                           m.ceil_mode)
    if isinstance(module, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        return lambda m, field, *_: window(field, m.kernel_size, m.stride or m.kernel_size, m.padding, 1, m.ceil_mode)
    if isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd | nn.modules.pooling._AdaptiveMaxPoolNd):
        return _adaptive
    return through  # element-wise: BatchNorm, activations, dropout, flatten, LRN across channels


def _linear(m, field, fields, inputs, outputs):
    """On (N, features) the whole input; on tokens or a channels-last map (N, ..., features), per position, unless
    the features are the grid's positions (MLP-Mixer's token mixing, on (N, C, L))."""
    return _features(field, inputs[0])


def _features(field: Field, shape) -> Field:
    """A linear map over the last axis of ``shape``: of (N, features), the whole input; of (N, A, L) whose L holds
    every position of the grid and A not, the whole input (tokens mixed); otherwise per position."""
    if len(shape) <= 2 or field.whole:
        return whole(field)
    positions = field.positions
    return whole(field) if len(shape) == 3 and shape[-1] == positions != shape[1] else field


def _instance_norm(m, field, fields, *_):
    """With running statistics, per position; else its statistics are the whole map's (each layer's own: a rule is
    kept per type, and two InstanceNorms of a network may differ)."""
    return through(m, field, fields) if m.track_running_stats else _whole(m, field)


def _layer_norm(m, field, fields, *_):
    """Over the channels only (ConvNeXt's, on a channels-last map), per position; over the map too (a WGAN critic's
    LayerNorm([C, H, W])), the whole map (each layer's own: a rule is kept per type)."""
    return through(m, field, fields) if len(m.normalized_shape) == 1 else _whole(m, field)


def _whole(m, field, *_):
    return whole(field)


def _attention(m, field, fields, inputs, outputs):
    """nn.MultiheadAttention: the whole input where its queries or keys hold every position (mixing)."""
    axis = 1 if m.batch_first and len(inputs[0]) == 3 else 0
    return mixing(field, [shape[axis] for shape in inputs[:2] if len(shape) > axis])


def through(m, field, fields, *_):
    """An element-wise layer's rule: the field passes through (the largest, if several come in)."""
    return field if len(fields) == 1 else merge(fields)


RULES: dict = {}  # layer type -> its rule


def adaptive(field: Field, sizes_in, sizes_out) -> Field:
    """Adaptive pooling: global pooling sees everything; otherwise the widest window and the mean stride."""
    if all(o == 1 for o in sizes_out):
        return whole(field)
    kernel = tuple(-(-i // o) + (0 if i % o == 0 else 1) for i, o in zip(sizes_in, sizes_out))
    stride = tuple(i / o for i, o in zip(sizes_in, sizes_out))
    return window(field, kernel, stride, 0, 1, grid=tuple(sizes_out))


_WHOLE_OPS = {"linear", "matmul", "mm", "bmm", "addmm", "baddbmm", "einsum", "sum", "mean", "amax", "amin", "max",
              "min", "prod", "scaled_dot_product_attention", "multi_head_attention_forward", "_native_multi_head_attention",
              "lstm", "gru", "rnn_tanh", "rnn_relu", "group_norm", "instance_norm"}
# An attention's sequences: (how many of its first tensors are read, then the axes holding their tokens). A product
# of matrices mixes along its last two axes (QKᵀ's queries and keys, PV's keys); SDPA's q and k are (..., L, E); the
# functional multi-head attention's query and key (L, N, E); its native kernel's (N, L, E).
_SEQUENCES = {"matmul": (2, -2, -1), "bmm": (2, -2, -1), "baddbmm": (3, -2, -1),
              "scaled_dot_product_attention": (2, -2), "multi_head_attention_forward": (2, 0),
              "_native_multi_head_attention": (2, -2)}
_NOT_PROPAGATED = {"interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "conv_transpose1d",
                   "conv_transpose2d", "conv_transpose3d", "fold", "embedding"}
_MERGING = {"add", "sub", "mul", "div", "cat", "concat", "concatenate", "stack", "maximum", "minimum", "where"}


def index_items(index, rank: int) -> list:
    """x[index]'s items, one for each axis of x of ``rank`` axes (an Ellipsis spelled out as full slices, and so are
    the axes not named after the last item), and None where a new axis comes in."""
    items = list(index) if isinstance(index, tuple) else [index]
    named = sum(item is not None and item is not Ellipsis for item in items)
    spelled = [slice(None)] * (rank - named)
    at = next((i for i, item in enumerate(items) if item is Ellipsis), None)
    return items + spelled if at is None else items[:at] + spelled + items[at + 1:]


def _strided(field: Field, index, rank: int) -> Field | None:
    """A slice with a step on each spatial axis is a subsampling: a window of one position at that stride from its
    start (x[..., 1::2, 0::2] of (N, C, H, W): stride 2, the centre a pixel down). The spatial axes are the last ones
    (N, C, H, W), or, for a field of two or more dimensions, those after the batch ((N, H, W, C): Swin's patch
    merging); a step on the batch leaves the field as it is, and others, which cannot be told from the channels'
    (x[:, ::2]), make it not computed."""
    axis, steps = 0, {}
    for item in index_items(index, rank):  # (each item's axis of the input: None adds an axis)
        if item is not None:
            if isinstance(item, slice) and item.step not in (None, 1):
                steps[axis] = item
            axis += 1
    steps.pop(0, None)  # (the batch's)
    if not steps:
        return field
    dims = len(field.size)
    for spatial in (range(rank - dims, rank), range(1, dims + 1) if dims >= 2 else ()):
        if sorted(steps) == list(spatial):
            slices = [steps[a] for a in spatial]
            if not all(isinstance(s.step, int) and isinstance(s.start or 0, int) and (s.start or 0) >= 0
                       for s in slices):
                return None
            grid = tuple(max(1, ceil((n - (s.start or 0)) / s.step)) for n, s in zip(field.grid, slices))
            return window(field, (1,) * dims, tuple(s.step for s in slices), tuple(-(s.start or 0) for s in slices),
                          (1,) * dims, grid=grid)
    return None


def _product(known: list[Field], contracted: list[int], lengths: list[int]) -> Field:
    """A product of tensors summed over indices of the ``contracted`` sizes: over every position of the grid, the
    whole input; with one operand from the input (the other a weight, a table of relative positions), a map per
    position (x @ W); of two, attention's QKᵀ and PV, over sequences of these ``lengths`` (mixing)."""
    field = merge(known)
    if field.whole or max(contracted) >= field.positions:
        return whole(field)
    return field if len(known) == 1 else mixing(field, lengths)


def _indices(call) -> tuple[dict[str, int], str] | None:
    """An einsum's index sizes and its output's indices, from its equation and its operands' shapes (an ellipsis's
    axes are the batch's, neither kept nor read here); None without an equation (the sublist form)."""
    equation = call.arg(0, "equation")
    if not isinstance(equation, str):
        return None
    equation = equation.replace(" ", "")
    inputs, _, output = equation.partition("->")
    terms = inputs.split(",")
    if "->" not in equation:  # (implicit: the indices that appear once, in order)
        output = "".join(sorted(c for c in set(inputs) if c.isalpha() and inputs.count(c) == 1))
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, call.inputs):
        left, dots, right = term.partition("...")
        named = list(zip(left, shape)) + (list(zip(right, shape[len(shape) - len(right):])) if dots and right else [])
        sizes.update((c, n) for c, n in named if c.isalpha())
    return sizes, output


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
        return known[0] if len(shape if isinstance(shape, (tuple, list)) else (shape,)) == 1 else whole(known[0])
    if name == "linear" and len(call.inputs[0]) > 2:
        return _features(known[0], call.inputs[0])  # applied per token or per position, or over the tokens
    if name == "getitem":  # x[..., 0::2, 0::2, :]: a subsampling (Swin's patch merging, YOLOv5's Focus)
        return _strided(known[0], call.arg(1, "idx"), len(call.inputs[0]))
    if name == "einsum":  # by the indices it sums over: attention's keys (bhqk,bhkd->bhqd), or a feature (SAM's
        indices = _indices(call)  # relative positions, bhwc,hkc->bhwk): over all positions, or a part
        if indices is None:  # (the sublist form, einsum(x, [0, 1], y, [1, 2]): the whole, as before)
            return whole(known[0])
        contracted = [n for c, n in indices[0].items() if c not in indices[1]]
        kept = [n for c, n in indices[0].items() if c in indices[1]]  # (QKᵀ's queries and keys)
        return merge(known) if not contracted else _product(known, contracted, contracted + kept)
    if name in _SEQUENCES:  # attention: over every position of the grid, or over a window of it
        read, *axes = _SEQUENCES[name]
        lengths = [shape[axis] for shape in call.inputs[:read] for axis in axes if len(shape) >= 2]
        if name in ("matmul", "bmm", "baddbmm"):  # (by what it contracts: a[..., k] with b[..., k, :])
            return _product(known, [call.inputs[read - 2][-1]], lengths)
        return mixing(merge(known), lengths)
    if name in _WHOLE_OPS:
        if name in ("sum", "mean", "amax", "amin", "max", "min", "prod"):
            if call.of_two_tensors:
                return merge(known)  # torch.max(x, y): element-wise, the fields merged
            reduced = call.arg(1, "dim", None)
            if reduced is None:
                return whole(known[0])
            axes = reduced if isinstance(reduced, (tuple, list)) else (reduced,)
            rank = len(call.inputs[0])
            if not any(a % rank >= rank - dims for a in axes):
                return known[0]  # a reduction over channels only keeps the field
        return whole(known[0])
    if name in ("conv1d", "conv2d", "conv3d"):
        weight = call.arg(1, "weight")
        padding = call.arg(4, "padding", 0)
        if isinstance(padding, str):
            return None
        return window(known[0], tuple(weight.shape[2:]), call.arg(3, "stride", 1), padding, call.arg(5, "dilation", 1))
    if name.startswith("max_pool"):
        k = call.arg(1, "kernel_size")
        return window(known[0], k, call.arg(2, "stride") or k, call.arg(3, "padding", 0), call.arg(4, "dilation", 1),
                      bool(call.arg(5, "ceil_mode", False)))
    if name.startswith("avg_pool"):
        k = call.arg(1, "kernel_size")
        return window(known[0], k, call.arg(2, "stride") or k, call.arg(3, "padding", 0), 1,
                      bool(call.arg(4, "ceil_mode", False)))
    if name.startswith("adaptive_"):
        return adaptive(known[0], call.inputs[0][-dims:], call.output[-dims:])
    if name in _MERGING:
        return merge(known)
    return merge(known)  # activations, views and copies pass the field through
