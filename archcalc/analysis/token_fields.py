"""Receptive fields over a sequence of token ids: how many tokens of the input each output position sees.

A model fed token ids (N, L) (a sentence CNN, a dilated convolution over characters, a language model) starts a
field of one token at each position, as an image starts one of one pixel. A sequence's tensors hold their tokens
on any axis ((N, L, D) after an embedding, (N, D, L) after the transpose a Conv1d wants, (N, h, L, d) in
attention), so a token field carries that axis, moved by each transpose, view and reduction; where a step cannot say
where the tokens went (a reshape that mixes them with the batch or the features, an operation not listed here), the
field is not computed rather than guessed: the image rules (receptive.py) take the last axes as the spatial ones,
which does not hold here. An integer index on the token axis (BERT's pooler reads x[:, 0]) leaves one position,
whose field passes on (axis None).

Along the token axis a convolution or a pooling is a window (receptive.window: r_out = r_in + (K' - 1)*j_in); a
linear map, a norm or a softmax over that axis, attention and recurrence see every token: the whole input (under a
causal mask the first positions see fewer: the largest is shown, as for an image's border units).
"""

from __future__ import annotations

import re
from math import prod
from typing import NamedTuple

from torch import nn

from archcalc.analysis import receptive
from archcalc.analysis.counters.elementwise import ACTIVATIONS, DROPOUT, ELEMENTWISE
from archcalc.analysis.receptive import WHOLE, Field


class Tokens(NamedTuple):
    """A field over the input's tokens, as receptive.Field over its pixels (one dimension), with the tensor axis
    that holds the tokens (None: one position, the axis indexed away)."""

    size: tuple[int]  # r in tokens (WHOLE: all of them)
    jump: tuple[float]
    centre: tuple[float]
    grid: tuple[int]  # the positions its units lie on
    axis: int | None

    @property
    def whole(self) -> bool:
        return self.size[0] == WHOLE

    @property
    def part(self) -> bool:
        return False

    @property
    def positions(self) -> int:
        return self.grid[0]

    def text(self) -> str:
        if self.whole:
            return "whole input"
        r, j = self.size[0], self.jump[0]
        return f"{r} token{'s' if r != 1 else ''}" + (f" (jump {j:g})" if j != 1 else "")

    def at(self, axis: int | None) -> Tokens:
        return self if axis == self.axis else self._replace(axis=axis)


def of_ids(shape: tuple[int, ...]) -> Tokens | None:
    """The field of token ids (N, L): one token at each position."""
    return Tokens((1,), (1.0,), (0.5,), (shape[1],), 1) if len(shape) == 2 else None


def _whole(field: Tokens, axis: int | None = None) -> Tokens:
    return Tokens((WHOLE,), (0.0,), (0.0,), field.grid, axis)


def _window(field: Tokens, kernel: int, stride, padding: int, dilation: int, ceil_mode: bool = False,
            grid: int | None = None) -> Tokens:
    moved = receptive.window(Field(*field[:4]), (kernel,), (stride,), (padding,), (dilation,), ceil_mode,
                             None if grid is None else (grid,))
    return Tokens(*moved, field.axis)


def guarded(rule, *args) -> Tokens | None:
    """A rule's field, or none where it fails on a call its author did not foresee (an argument of another form):
    a field is not computed then, and the counts go on."""
    try:
        return rule(*args)
    except (TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError):
        return None


# -- layers -------------------------------------------------------------------------------------------------------

_PASSING = (*ACTIVATIONS, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity,
            nn.modules.batchnorm._BatchNorm)  # (per position: an activation, dropout, BatchNorm's statistics)
_WHOLE_LAYERS = (nn.RNNBase, nn.RNNCellBase, nn.MultiheadAttention, nn.GroupNorm)  # (every token: recurrence,
# attention over the sequence, a norm over the whole map)


def layer(m: nn.Module, field: Tokens, inputs: tuple, outputs: tuple) -> Tokens | None:
    """A layer's output field, ``field`` being its first input's (``inputs``, ``outputs``: the shapes)."""
    if field.whole:
        return field
    a = field.axis
    rank = len(inputs[0]) if inputs else 0
    if isinstance(m, nn.Embedding):  # (ids (N, L) -> (N, L, D): the tokens stay on their axis)
        return field
    if a is None or isinstance(m, _PASSING):
        return field
    if isinstance(m, _WHOLE_LAYERS):
        return _whole(field, a)
    if isinstance(m, nn.Linear):
        return _whole(field, a) if a == rank - 1 else field
    if isinstance(m, (nn.LayerNorm, *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))):
        return _whole(field, a) if a >= rank - len(m.normalized_shape) else field
    if isinstance(m, nn.modules.instancenorm._InstanceNorm):
        return field if m.track_running_stats or a < 2 else _whole(field, a)
    if isinstance(m, nn.modules.conv._ConvNd) and not isinstance(m, nn.modules.conv._ConvTransposeNd):
        return _convolved(field, rank, m.kernel_size, m.stride, m.padding, m.dilation)
    pooled = _POOLS.match(type(m).__name__)
    if pooled and pooled.group(1) in ("Max", "Avg"):
        d = int(pooled.group(2))
        return _pooled(field, rank, d, m.kernel_size, m.stride or m.kernel_size, m.padding,
                       getattr(m, "dilation", 1), m.ceil_mode)
    if pooled and pooled.group(1).startswith("Adaptive"):
        return _adaptive(field, inputs[0], outputs[0], int(pooled.group(2)))
    if isinstance(m, (nn.Flatten, nn.Unflatten)):
        return _reshaped(field, inputs[0], outputs[0])
    return None


_POOLS = re.compile(r"(Max|Avg|AdaptiveAvg|AdaptiveMax)Pool([123])d$")


def _convolved(field: Tokens, rank: int, kernel, stride, padding, dilation) -> Tokens | None:
    """A convolution over the last len(kernel) axes: a window where the tokens lie on one of them, every token where
    they are its input channels."""
    d = len(kernel)
    a = field.axis
    if a == rank - d - 1:
        return _whole(field, a)
    if not rank - d <= a < rank:
        return None
    i = a - (rank - d)
    k, s, dl = kernel[i], _nth(stride, i, d), _nth(dilation, i, d)
    if isinstance(padding, str):  # 'same' keeps the positions; 'valid' pads none
        same = padding == "same"
        return _window(field, k, s, (dl * (k - 1)) // 2 if same else 0, dl, grid=field.grid[0] if same else None)
    return _window(field, k, s, _nth(padding, i, d), dl)


def _pooled(field: Tokens, rank: int, d: int, kernel, stride, padding, dilation, ceil_mode: bool) -> Tokens | None:
    """A pooling over the last d axes: a window where the tokens lie on one of them; per token on another axis."""
    a = field.axis
    if not rank - d <= a < rank:
        return field if 0 < a < rank - d else None
    i = a - (rank - d)
    return _window(field, _nth(kernel, i, d), _nth(stride, i, d), _nth(padding, i, d), _nth(dilation, i, d),
                   bool(ceil_mode))


def _adaptive(field: Tokens, shape_in: tuple, shape_out: tuple, d: int) -> Tokens | None:
    a, rank = field.axis, len(shape_in)
    if not rank - d <= a < rank:
        return field if 0 < a < rank - d else None
    moved = receptive.adaptive(Field(*field[:4]), (shape_in[a],), (shape_out[a],))
    return Tokens(*moved, a)


def _nth(value, i: int, d: int):
    """A kernel's, stride's, padding's or dilation's i-th of d values, from an int or a tuple."""
    if isinstance(value, (tuple, list)):
        return value[i] if len(value) == d else value[0]
    return value


# -- operations ---------------------------------------------------------------------------------------------------

_PASS = frozenset(ELEMENTWISE) - {"softmax", "log_softmax", "softmin", "outer", "ger", "kron", "diff"} | {
    *DROPOUT, "contiguous", "clone", "detach", "to", "type", "type_as", "float", "half", "bfloat16", "double", "int",
    "long", "bool", "masked_fill", "dropout", "identity", "cpu", "cuda", "real", "imag", "conj", "eq", "ne", "lt",
    "gt", "le", "ge", "logical_not", "logical_and", "logical_or", "bitwise_not",
    "expand", "expand_as", "broadcast_to", "batch_norm", "alpha_dropout", "new_ones", "new_zeros", "zeros_like",
    "ones_like", "full_like", "tril", "triu"}
_REDUCTIONS = frozenset({"sum", "mean", "amax", "amin", "max", "min", "prod", "nansum", "nanmean", "var", "std",
                         "logsumexp", "argmax", "argmin", "all", "any", "count_nonzero", "median"})
_ATTENTION = frozenset({"scaled_dot_product_attention", "multi_head_attention_forward",
                        "_native_multi_head_attention", "flex_attention", "lstm", "gru", "rnn_tanh", "rnn_relu",
                        "cumsum", "cumprod", "logcumsumexp", "cummax", "cummin"})
_PRODUCTS = {"matmul": (0, 1), "mm": (0, 1), "bmm": (0, 1), "baddbmm": (1, 2), "addmm": (1, 2)}
_VIEWS = frozenset({"view", "reshape", "view_as", "reshape_as", "flatten", "unflatten", "ravel"})


def for_op(name: str, call, fields: list) -> Tokens | None:
    """An operation's output field; ``fields``: each tensor input's (call.inputs are their shapes), one at least
    a token field."""
    given = [(f, s) for f, s in zip(fields, call.inputs) if f is not None]
    if any(not isinstance(f, Tokens) for f, _ in given):
        return None  # (tokens met an image's field: not followed)
    out = call.outputs[0] if call.outputs else ()
    if any(f.whole for f, _ in given):
        return _whole(given[0][0], _moved(given[0][0].axis, len(given[0][1]), len(out)))
    field, shape = given[0]
    a, rank = field.axis, len(shape)
    if name in _PRODUCTS or name == "einsum":
        return _product(name, call, fields)
    if name in _ATTENTION:
        return _whole(field, None)
    if a is None:  # (one position: whatever follows reads that position's field)
        return field if all(f.axis is None for f, _ in given) else None
    if name in ("embedding", "one_hot"):  # (ids (N, L) -> (N, L, D): the new axis comes last)
        return field
    if name in _PASS or name in ("where", "maximum", "minimum") or \
            (name in ("max", "min") and call.of_two_tensors):
        return _merged(given, len(out))
    if name in ("softmax", "log_softmax", "softmin"):
        dim = call.arg(1, "dim")
        return _whole(field, a) if dim is None or dim % rank == a else field
    if name in _REDUCTIONS:
        return _reduced(field, rank, call)
    if name == "linear":
        return _whole(field, a) if a == rank - 1 else field
    if name in ("layer_norm", "rms_norm"):
        normalized = call.arg(1, "normalized_shape")
        k = len(normalized) if isinstance(normalized, (tuple, list)) else 1
        return _whole(field, a) if a >= rank - k else field
    if name in ("group_norm", "instance_norm"):
        return _whole(field, a) if a >= (1 if name == "group_norm" else 2) else field
    if name in ("conv1d", "conv2d", "conv3d"):
        weight = call.inputs[1]
        return _convolved(field, rank, tuple(weight[2:]), call.arg(3, "stride", 1), call.arg(4, "padding", 0),
                          call.arg(5, "dilation", 1))
    pooled = re.fullmatch(r"(max|avg)_pool([123])d", name)
    if pooled:
        d, k = int(pooled.group(2)), call.arg(1, "kernel_size")
        maximum = pooled.group(1) == "max"
        return _pooled(field, rank, d, k, call.arg(2, "stride") or k, call.arg(3, "padding", 0),
                       call.arg(4, "dilation", 1) if maximum else 1,
                       call.arg(5 if maximum else 4, "ceil_mode", False))
    adaptive = re.fullmatch(r"adaptive_(?:max|avg)_pool([123])d", name)
    if adaptive:
        return _adaptive(field, shape, out, int(adaptive.group(1)))
    moved = _rearranged(name, call, field, shape, out)
    return moved if moved is not _UNKNOWN else None


_UNKNOWN = object()


def _moved(a: int | None, rank_in: int, rank_out: int) -> int | None:
    """An axis where broadcasting puts it: new axes come first."""
    return None if a is None else a + (rank_out - rank_in)


def _merged(given: list, rank_out: int) -> Tokens | None:
    """Element-wise over fields that broadcast together: their union where their tokens meet on one axis."""
    axes = {_moved(f.axis, len(s), rank_out) for f, s in given}
    if len(axes) != 1:
        return None
    (axis,) = axes
    fields = [Field(*f[:4]) for f, _ in given]
    merged = receptive.merge(fields) if len(fields) > 1 else fields[0]
    return Tokens(*merged, axis)


def _reduced(field: Tokens, rank: int, call) -> Tokens:
    dim = call.arg(1, "dim")
    if dim is None or isinstance(dim, str):
        return _whole(field, None)
    dims = {d % rank for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
    if field.axis in dims:
        return _whole(field, None if not call.arg(2, "keepdim", False) else field.axis)
    kept = call.arg(2, "keepdim", False)
    return field.at(field.axis if kept else field.axis - sum(d < field.axis for d in dims))


def _product(name: str, call, fields: list) -> Tokens | None:
    """A product of matrices (or an einsum): every token where it sums over the token axis, or where both operands
    carry tokens (attention's QKᵀ); else the tokens stay on their axis of the output."""
    if name == "einsum":
        return _einsum(call, fields)
    first, second = _PRODUCTS[name]
    if len(fields) <= second:
        return None
    fa, fb = fields[first], fields[second]
    sa, sb = call.inputs[first], call.inputs[second]
    out = len(call.outputs[0]) if call.outputs else 0
    if fa is not None and fb is not None:
        return _whole(fa, None)
    if fa is not None:
        if fa.axis is None:
            return fa
        if fa.axis == len(sa) - 1:  # (summed over)
            return _whole(fa, None)
        return fa.at(_moved(fa.axis, len(sa), out) if len(sa) > 1 else None)
    if fb.axis is None:
        return fb
    contracted = len(sb) - 2 if len(sb) >= 2 else len(sb) - 1
    if fb.axis == contracted:
        return _whole(fb, None)
    return fb.at(out - 1 if fb.axis == len(sb) - 1 else _moved(fb.axis, len(sb), out))


def _einsum(call, fields: list) -> Tokens | None:
    equation = call.arg(0, "equation")
    if not isinstance(equation, str) or "..." in equation:
        return None
    inputs, _, output = equation.replace(" ", "").partition("->")
    terms = inputs.split(",")
    carried = [(term, f) for term, f in zip(terms, fields) if f is not None]
    if len(carried) != 1:
        return _whole(carried[0][1], None) if carried else None
    term, field = carried[0]
    if field.axis is None:
        return field
    if field.axis >= len(term):
        return None
    letter = term[field.axis]
    if letter not in output:
        return _whole(field, None)
    return field.at(output.index(letter))


def _rearranged(name: str, call, field: Tokens, shape: tuple, out: tuple):
    """A view, a transpose, a slice or a concatenation: where the tokens went, or _UNKNOWN."""
    a, rank = field.axis, len(shape)
    if name in ("transpose", "swapaxes", "swapdims"):
        d0, d1 = call.arg(1, "dim0") % rank, call.arg(2, "dim1") % rank
        return field.at(d1 if a == d0 else d0 if a == d1 else a)
    if name == "t" or name == "T":
        return field.at(rank - 1 - a)
    if name in ("mT", "mH"):
        return field.at(rank - 1 if a == rank - 2 else rank - 2 if a == rank - 1 else a)
    if name == "permute":
        dims = call.args[1] if len(call.args) == 2 and isinstance(call.args[1], (tuple, list)) else call.args[1:]
        dims = [d % rank for d in (call.kwargs.get("dims") or dims)]
        return field.at(dims.index(a)) if a in dims else _UNKNOWN
    if name in ("movedim", "moveaxis"):
        source, destination = call.arg(1, "source"), call.arg(2, "destination")
        order = [d for d in range(rank) if d != source % rank]
        order.insert(destination % rank, source % rank)
        return field.at(order.index(a))
    if name == "unsqueeze":
        d = call.arg(1, "dim") % (rank + 1)
        return field.at(a + 1 if d <= a else a)
    if name == "squeeze" or name in _VIEWS:
        return _reshaped(field, shape, out)
    if name == "getitem":
        return _indexed(field, shape, call.arg(1, "idx"))
    if name == "pad":  # (F.pad: (left, right) of the last axis first; positions added before the first token move
        # the centres, as a convolution's padding does)
        widths = list(call.arg(1, "pad"))
        i = rank - 1 - a
        if 2 * i + 1 >= len(widths):
            return field
        left, right = widths[2 * i], widths[2 * i + 1]
        return _window(field, 1, 1, left, 1, grid=field.grid[0] + left + right) if left >= 0 and right >= 0 else \
            _UNKNOWN
    if name in ("cat", "concat", "concatenate", "stack"):
        dim = call.arg(1, "dim", 0)
        if name == "stack":
            d = dim % (rank + 1)
            return field.at(a + 1 if d <= a else a)
        return _UNKNOWN if dim % rank == a else field
    if name in ("chunk", "split", "tensor_split", "unbind", "narrow", "select"):
        dim = call.arg(2 if name != "unbind" else 1, "dim", 0)
        if dim % rank == a:
            return _UNKNOWN
        return field.at(a - 1 if name in ("unbind", "select") and dim % rank < a else a)
    return _UNKNOWN


def _reshaped(field: Tokens, shape: tuple, out: tuple):
    """A view: the tokens' axis found again where the output has an axis of its size with as many elements before
    it ((N, L, D) -> (N, L, h, d) keeps them on axis 1); else (merged with the batch or the features, split) unknown."""
    a = field.axis
    before = prod(shape[:a])
    for o, n in enumerate(out):
        if n == shape[a] and prod(out[:o]) == before:
            return field.at(o)
    return field.at(None) if shape[a] == 1 and prod(out) == prod(shape) else _UNKNOWN  # (one position, squeezed)


def _indexed(field: Tokens, shape: tuple, index):
    """x[...]: basic indexing (slices, integers, None, Ellipsis) follows the token axis; an integer there leaves one
    position (axis None), a slice keeps the tokens it takes; an index tensor or a step on it is not followed."""
    items = index if isinstance(index, tuple) else (index,)
    if any(not (item is None or item is Ellipsis or isinstance(item, (int, slice))) for item in items):
        return _UNKNOWN
    consumed = sum(item is not None and item is not Ellipsis for item in items)
    axis, out_axis = 0, 0
    for item in items:
        if item is Ellipsis:
            skipped = len(shape) - consumed
            if axis <= field.axis < axis + skipped:
                return field.at(out_axis + field.axis - axis)
            axis, out_axis = axis + skipped, out_axis + skipped
        elif item is None:
            out_axis += 1
        else:
            if axis == field.axis:
                if isinstance(item, int):
                    return field.at(None)
                if item.step not in (None, 1):
                    return _UNKNOWN
                kept = len(range(*item.indices(shape[axis])))
                return field._replace(grid=(kept,), axis=out_axis)
            axis += 1
            out_axis += 0 if isinstance(item, int) else 1
    return field.at(out_axis + field.axis - axis)
