"""Receptive fields over a sequence of token ids: how many tokens of the input each output position sees.

A model fed token ids (N, L) (a sentence CNN, a dilated convolution over characters, a language model) starts a
field of one token at each position, as an image starts one of one pixel. A sequence's tensors hold their tokens
anywhere ((N, L, D) after an embedding, (N, D, L) after the transpose a Conv1d wants, (N, h, L, d) in attention,
(N*L, D) where a linear layer is written as addmm), so a token field carries where: ``before``, the number of
elements that come before the tokens in the tensor's row-major order (its batch, and what else precedes them),
which no view or reshape changes and a transpose, a reduction or a layer recomputes. The tokens are then found on
the axis that holds them (alone, or merged with the batch before them or the features after them). Where a step
cannot say where they went (an operation not listed here, a write in place, a concatenation along them), the field
reads "tokens: not tracked" (LOST), and so does all it reaches, rather than a guess: the image rules (receptive.py)
take the last axes as the spatial ones, which does not hold here; a constant shaped like its input (zeros_like) has
no field. An integer index on the tokens (BERT's pooler reads x[:, 0]) leaves one position, that token's field,
which passes on (``before`` None); where such fields meet (a recurrent cell stepped by hand), their union. A flip
along the tokens runs their positions backwards: a negative jump, the first unit's centre the last token's (a
bidirectional network's backward direction, flipped back after).

Along the tokens a convolution or a pooling is a window (receptive.window: r_out = r_in + (K' - 1)*j_in); a linear
map, a norm or a softmax over the axis that holds them, attention and recurrence see every token: the whole input
(under a causal mask the first positions see fewer: the largest is shown, as for an image's border units).
"""

from __future__ import annotations

import re
from math import prod
from typing import NamedTuple

from torch import nn

from archcalc.analysis import receptive
from archcalc.analysis.counters.elementwise import ACTIVATIONS, DROPOUT, ELEMENTWISE
from archcalc.analysis.receptive import PART, WHOLE, Field


class Tokens(NamedTuple):
    """A field over the input's tokens, as receptive.Field over its pixels (one dimension), with where the tokens
    lie in the tensor that holds them: ``before`` elements precede them in row-major order (None: one position,
    indexed out)."""

    size: tuple[int]  # r in tokens (WHOLE: all of them)
    jump: tuple[float]
    centre: tuple[float]
    grid: tuple[int]  # the positions its units lie on: the tokens' length in the tensor
    before: int | None

    @property
    def whole(self) -> bool:
        return self.size[0] == WHOLE

    @property
    def part(self) -> bool:
        """Tokens not tracked: a step moved them where these rules do not follow (LOST)."""
        return self.size[0] == PART

    @property
    def positions(self) -> int:
        return self.grid[0]

    def text(self) -> str:
        if self.whole:
            return "whole input"
        if self.part:
            return LOST_TEXT
        r, j = self.size[0], self.jump[0]
        return f"{r} token{'s' if r != 1 else ''}" + (f" (jump {j:g})" if j != 1 else "")


def of_ids(shape: tuple[int, ...]) -> Tokens | None:
    """The field of token ids (N, L): one token at each position, after the N rows before them."""
    return Tokens((1,), (1.0,), (0.5,), (shape[1],), shape[0]) if len(shape) == 2 else None


LOST = Tokens((PART,), (0.0,), (0.0,), (0,), None)  # tokens a step moved where these rules do not follow
LOST_TEXT = "tokens: not tracked"
LOST_NOTE = ("tokens: not tracked: a step moved the tokens where archcalc does not follow them (a concatenation along "
             "them, an in-place write, an operation without a rule here), so what each position sees is not "
             "computed, and nor is it for anything that step reaches (but where it meets a path that already sees "
             "the whole input: a residual sum after attention)")


def layer(m: nn.Module, known: list, inputs: tuple, outputs: tuple) -> Tokens | None:
    """A layer's output field, ``known`` being its inputs' (``inputs``, ``outputs``: the shapes): a recurrent
    cell's step, as any layer given several, sees what they see together (a step's input and the state before it)."""
    given = [f for f in known if f is not None]
    return _settled(given, lambda: _layer(m, given, inputs, outputs))


def for_op(name: str, call, fields: list) -> Tokens | None:
    """An operation's output field; ``fields``: each tensor input's (call.inputs are their shapes), one at least
    a token field. A constant shaped like its input (zeros_like) has none."""
    if name in _CONSTANTS:
        return None
    return _settled([f for f in fields if f is not None], lambda: _for_op(name, call, fields))


def met(known: list) -> Tokens | None:
    """What a module that did no operation passes on: what its inputs see together."""
    given = [f for f in known if f is not None]
    return _settled(given, lambda: given[0] if len(given) == 1 else _union(given)) if given else None


def _settled(given: list, rule) -> Tokens:
    """The whole input where an input sees it; tokens not tracked (LOST) where one is not tracked, meets an image's
    field, or the rule cannot say (it returns None, or fails on an argument of a form it did not foresee)."""
    whole = next((f for f in given if isinstance(f, Tokens) and f.whole), None)
    if whole is not None:
        return whole
    if any(not isinstance(f, Tokens) or f.part for f in given):
        return LOST
    try:
        found = rule()
    except (TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError, KeyError):
        found = None
    return LOST if found is None else found


def locate(field: Tokens, shape: tuple) -> tuple[int, int] | None:
    """(the axis that holds the tokens, how many times they repeat within it before them: 1 where they are the
    axis, N where a view merged them with the batch); None where they straddle axes."""
    before, length = field.before, field.grid[0]
    inner = 1
    for a, n in enumerate(shape):
        outer = inner * n
        if before % inner == 0 and inner <= before and before * length <= outer and outer % (before * length) == 0:
            return a, before // inner
        inner = outer
    return None


def _whole(field: Tokens) -> Tokens:
    return Tokens((WHOLE,), (0.0,), (0.0,), field.grid, None)


def _union(fields: list) -> Tokens | None:
    """Fields that meet at one position, or at the same place of one tensor: what they see together (their union,
    on one grid: a recurrent step's input at token t and its state, which saw the tokens before it); none where they
    lie at different places."""
    if any(f.whole for f in fields):
        return _whole(fields[0])
    if len({f.before for f in fields}) != 1:
        return None
    return Tokens(*receptive.merge([Field(*f[:4]) for f in fields]), fields[0].before)


def _at(field: Tokens, shape_out: tuple, axis: int, within: int) -> Tokens:
    """The field on ``axis`` of an output of ``shape_out``, ``within`` times repeated inside it before the tokens (one
    position where a window left only one: a max over time)."""
    return field._replace(before=None if field.grid[0] == 1 else prod(shape_out[:axis]) * within)


def _window(field: Tokens, kernel: int, stride, padding: int, dilation: int, ceil_mode: bool = False,
            grid: int | None = None) -> Tokens:
    moved = receptive.window(Field(*field[:4]), (kernel,), (stride,), (padding,), (dilation,), ceil_mode,
                             None if grid is None else (grid,))
    return Tokens(*moved, field.before)


# -- layers -------------------------------------------------------------------------------------------------------

_SOFTMAX = (nn.Softmax, nn.LogSoftmax, nn.Softmin)
PASSING = (*(a for a in ACTIVATIONS if a not in _SOFTMAX and a is not nn.Softmax2d), nn.Dropout, nn.Dropout1d,
            nn.Dropout2d, nn.AlphaDropout, nn.FeatureAlphaDropout, nn.Identity,
            nn.modules.batchnorm._BatchNorm)  # (per position: an activation, dropout, BatchNorm's statistics)
_WHOLE_LAYERS = (nn.RNNBase, nn.MultiheadAttention)  # (every token: recurrence over the sequence, attention)
_PADS = (nn.modules.padding._ConstantPadNd, nn.modules.padding._ReflectionPadNd,
         nn.modules.padding._ReplicationPadNd, *((nn.modules.padding._CircularPadNd,)
                                                  if hasattr(nn.modules.padding, "_CircularPadNd") else ()))


def _layer(m: nn.Module, given: list, inputs: tuple, outputs: tuple) -> Tokens | None:
    field = given[0] if len(given) == 1 else _union(given)
    if field is None or field.before is None:
        return field
    shape, out = inputs[0], outputs[0] if outputs else ()
    found = locate(field, shape)
    if isinstance(m, nn.Embedding):  # (ids (N, L) -> (N, L, D): an axis after them)
        return field
    if isinstance(m, _WHOLE_LAYERS):
        return _whole(field)
    if found is None:
        return None
    a, within = found
    rank = len(shape)
    if isinstance(m, _SOFTMAX):
        return _whole(field) if m.dim is None or m.dim % rank == a else field
    if isinstance(m, PASSING):
        return _kept(field, shape, out, a, within)
    if isinstance(m, (nn.Linear, nn.Bilinear)):
        return _whole(field) if a == rank - 1 else field
    if isinstance(m, (nn.LayerNorm, *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))):
        return _whole(field) if a >= rank - len(m.normalized_shape) else field
    if isinstance(m, nn.GroupNorm):
        return _whole(field) if a >= 1 else field
    if isinstance(m, nn.modules.instancenorm._InstanceNorm):
        return field if m.track_running_stats or a < 2 else _whole(field)
    if isinstance(m, nn.modules.conv._ConvNd) and not isinstance(m, nn.modules.conv._ConvTransposeNd):
        return _convolved(field, shape, out, found, m.kernel_size, m.stride, m.padding, m.dilation)
    if isinstance(m, _PADS):
        return _padded(field, shape, out, found, list(m.padding))
    pooled = _POOLS.match(type(m).__name__)
    if pooled and pooled.group(1) in ("Max", "Avg"):
        return _pooled(field, shape, out, found, int(pooled.group(2)), m.kernel_size, m.stride or m.kernel_size,
                       m.padding, getattr(m, "dilation", 1), m.ceil_mode)
    if pooled:
        return _adaptive(field, shape, out, found, int(pooled.group(2)))
    if isinstance(m, (nn.Flatten, nn.Unflatten)):  # (a view: the order kept)
        return field
    return None


_POOLS = re.compile(r"(Max|Avg|AdaptiveAvg|AdaptiveMax)Pool([123])d$")


def _kept(field: Tokens, shape: tuple, out: tuple, a: int, within: int) -> Tokens | None:
    """Per position: the tokens stay on their axis, its size kept."""
    if out == shape:
        return field
    return _at(field, out, a, within) if len(out) == len(shape) and out[a] == shape[a] else None


def _spatial(field: Tokens, shape: tuple, out: tuple, found, d: int) -> tuple[int | None, Tokens | None]:
    """Where a window over the last d axes meets the tokens: (their place among those axes, None), or (None, the
    field it leaves: per token where they lie on an earlier axis, none where a view merged them with another)."""
    a, within = found
    rank = len(shape)
    if not rank - d <= a < rank:
        return None, (_kept(field, shape, out, a, within) if a < rank - d else None)
    if within != 1 or shape[a] != field.grid[0]:
        return None, None
    return a - (rank - d), None


def _convolved(field: Tokens, shape: tuple, out: tuple, found, kernel, stride, padding, dilation) -> Tokens | None:
    """A convolution over the last len(kernel) axes: a window where the tokens are one of them, every token where
    they are among its input channels."""
    d = len(kernel)
    if found[0] == len(shape) - d - 1:
        return _whole(field)
    i, other = _spatial(field, shape, out, found, d)
    if i is None:
        return other
    a = found[0]
    k, s, dl = kernel[i], _nth(stride, i, d), _nth(dilation, i, d)
    if isinstance(padding, str):  # 'same' keeps the positions; 'valid' pads none
        same = padding == "same"
        moved = _window(field, k, s, (dl * (k - 1)) // 2 if same else 0, dl, grid=field.grid[0] if same else None)
    else:
        moved = _window(field, k, s, _nth(padding, i, d), dl)
    return _at(moved, out, a, 1)


def _pooled(field: Tokens, shape: tuple, out: tuple, found, d: int, kernel, stride, padding, dilation,
            ceil_mode: bool) -> Tokens | None:
    """A pooling over the last d axes: a window where the tokens are one of them; per token on another axis."""
    i, other = _spatial(field, shape, out, found, d)
    if i is None:
        return other
    a = found[0]
    moved = _window(field, _nth(kernel, i, d), _nth(stride, i, d), _nth(padding, i, d), _nth(dilation, i, d),
                    bool(ceil_mode))
    return _at(moved, out, a, 1)


def _adaptive(field: Tokens, shape: tuple, out: tuple, found, d: int) -> Tokens | None:
    i, other = _spatial(field, shape, out, found, d)
    if i is None:
        return other
    a = found[0]
    moved = receptive.adaptive(Field(*field[:4]), (shape[a],), (out[a],))
    return _at(Tokens(*moved, None), out, a, 1) if not moved.whole else _whole(field)


def _padded(field: Tokens, shape: tuple, out: tuple, found, widths: list) -> Tokens | None:
    """Padding ((left, right) of the last axis first): positions added before the first token move the centres, as
    a convolution's padding does."""
    a, within = found
    i = len(shape) - 1 - a
    if 2 * i + 1 >= len(widths):
        return _at(field, out, a, within)
    left, right = widths[2 * i], widths[2 * i + 1]
    if within != 1 or left < 0 or right < 0:
        return None
    return _at(_window(field, 1, 1, left, 1, grid=field.grid[0] + left + right), out, a, 1)


def _nth(value, i: int, d: int):
    """A kernel's, stride's, padding's or dilation's i-th of d values, from an int or a tuple."""
    if isinstance(value, (tuple, list)):
        return value[i] if len(value) == d else value[0]
    return value


# -- operations ---------------------------------------------------------------------------------------------------

_CONSTANTS = frozenset({"new_zeros", "new_ones", "new_full", "new_empty", "new_tensor", "zeros_like", "ones_like",
                        "full_like", "empty_like", "rand_like", "randn_like", "randint_like", "size", "numel"})
PASS = frozenset(ELEMENTWISE) - {"softmax", "log_softmax", "softmin", "outer", "ger", "kron", "diff"} | {
    *DROPOUT, "contiguous", "clone", "detach", "to", "type", "type_as", "float", "half", "bfloat16", "double", "int",
    "long", "bool", "masked_fill", "identity", "cpu", "cuda", "real", "imag", "conj", "eq", "ne", "lt", "gt", "le",
    "ge", "logical_not", "logical_and", "logical_or", "bitwise_not", "expand", "expand_as", "broadcast_to",
    "batch_norm", "tril", "triu"}  # (not zeros_like and its kin: constants shaped like their input, no field)
VIEWS = frozenset({"view", "reshape", "view_as", "reshape_as", "flatten", "unflatten", "ravel", "squeeze",
                    "unsqueeze", "embedding", "one_hot"})  # (the row-major order kept: ``before`` too)
_REDUCTIONS = frozenset({"sum", "mean", "amax", "amin", "max", "min", "prod", "nansum", "nanmean", "var", "std",
                         "logsumexp", "argmax", "argmin", "all", "any", "count_nonzero", "median"})
_CUMULATIVE = frozenset({"cumsum", "cumprod", "logcumsumexp", "cummax", "cummin", "softmax", "log_softmax",
                         "softmin"})  # (along a dim: every token where it is theirs)
_ATTENTION = frozenset({"scaled_dot_product_attention", "multi_head_attention_forward",
                        "_native_multi_head_attention", "flex_attention", "lstm", "gru", "rnn_tanh", "rnn_relu"})
_PRODUCTS = {"matmul": (0, 1), "mm": (0, 1), "bmm": (0, 1), "baddbmm": (1, 2), "addmm": (1, 2)}


def _for_op(name: str, call, fields: list) -> Tokens | None:
    given = [(f, s) for f, s in zip(fields, call.inputs) if f is not None]
    out = call.outputs[0] if call.outputs else ()
    if name in _ATTENTION:
        return _whole(given[0][0])
    if name in _PRODUCTS or name == "einsum":
        return _product(name, call, fields)
    if any(f.before is None for f, _ in given):  # (one position: what follows sees what they see together)
        return _union([f for f, _ in given])
    if name in VIEWS:
        return given[0][0]
    if name == "copy":  # (x.copy_(src): src's values, where x was a state or a constant)
        return fields[1] if len(fields) > 1 else None
    if name in PASS or (name in ("max", "min") and call.of_two_tensors):
        return _merged(given, out)
    field, shape = given[0]
    found = locate(field, shape)
    if found is None:
        return None
    a, within = found
    rank = len(shape)
    if name in _CUMULATIVE:
        dim = call.arg(1, "dim")
        return _whole(field) if dim is None or dim % rank == a else _at(field, out, a, within)
    if name in _REDUCTIONS:
        return _reduced(field, shape, out, found, call)
    if name == "linear":
        return _whole(field) if a == rank - 1 else field
    if name in ("layer_norm", "rms_norm"):
        normalized = call.arg(1, "normalized_shape")
        k = len(normalized) if isinstance(normalized, (tuple, list)) else 1
        return _whole(field) if a >= rank - k else field
    if name == "normalize":  # (F.normalize: divided by the p-norm along dim, 1 unless given)
        return _whole(field) if call.arg(2, "dim", 1) % rank == a else field
    if name.startswith("fft_"):  # (a Fourier transform along its dims: every token where they are one of them)
        dims = call.arg(2, "dim", None)
        if dims is None:
            dims = range(rank) if name.endswith("n") else (-2, -1) if name.endswith("2") else (-1,)
        dims = _axes(dims, rank)
        return _whole(field) if a in dims else _at(field, out, a, within)
    if name in ("group_norm", "instance_norm"):
        return _whole(field) if a >= (1 if name == "group_norm" else 2) else field
    if name in ("conv1d", "conv2d", "conv3d"):
        return _convolved(field, shape, out, found, tuple(call.inputs[1][2:]), call.arg(3, "stride", 1),
                          call.arg(4, "padding", 0), call.arg(5, "dilation", 1))
    if name == "pad":
        return _padded(field, shape, out, found, list(call.arg(1, "pad")))
    pooled = re.fullmatch(r"(max|avg)_pool([123])d", name)
    if pooled:
        k, maximum = call.arg(1, "kernel_size"), pooled.group(1) == "max"
        return _pooled(field, shape, out, found, int(pooled.group(2)), k, call.arg(2, "stride") or k,
                       call.arg(3, "padding", 0), call.arg(4, "dilation", 1) if maximum else 1,
                       call.arg(5 if maximum else 4, "ceil_mode", False))
    adaptive = re.fullmatch(r"adaptive_(?:max|avg)_pool([123])d", name)
    if adaptive:
        return _adaptive(field, shape, out, found, int(adaptive.group(1)))
    return _rearranged(name, call, field, shape, out, found)


def _axes(dims, rank: int) -> set[int]:
    """An operation's dim argument, one axis or several, as axes from 0."""
    return {d % rank for d in (dims if isinstance(dims, (tuple, list, range)) else (dims,))}


def _merged(given: list, out: tuple) -> Tokens | None:
    """Element-wise over fields that broadcast together (new axes come first): their union where their tokens meet
    on one axis of the output."""
    placed = set()
    for field, shape in given:
        found = locate(field, shape)
        if found is None:
            return None
        a, within = found
        placed.add((a + len(out) - len(shape), within))
    if len(placed) != 1:
        return None
    ((axis, within),) = placed
    fields = [Field(*f[:4]) for f, _ in given]
    merged = receptive.merge(fields) if len(fields) > 1 else fields[0]
    return Tokens(*merged, prod(out[:axis]) * within)


def _reduced(field: Tokens, shape: tuple, out: tuple, found, call) -> Tokens | None:
    a, within = found
    dim = call.arg(1, "dim")
    if dim is None or isinstance(dim, str):
        return _whole(field)
    rank = len(shape)
    dims = _axes(dim, rank)
    if a in dims:
        return _whole(field)
    kept = a if call.arg(2, "keepdim", False) else a - sum(d < a for d in dims)
    return _at(field, out, kept, within)


def _product(name: str, call, fields: list) -> Tokens | None:
    """A product of matrices (or an einsum): every token where it sums over the axis that holds them, or where both
    operands carry tokens (attention's QKᵀ); else the tokens stay on their axis of the output."""
    if name == "einsum":
        return _einsum(call, fields)
    first, second = _PRODUCTS[name]
    if len(fields) <= second:
        return None
    fa, fb = fields[first], fields[second]
    sa, sb = call.inputs[first], call.inputs[second]
    out = call.outputs[0] if call.outputs else ()
    if fa is not None and fb is not None:
        return _whole(fa)
    field, shape = (fa, sa) if fa is not None else (fb, sb)
    if field.before is None:
        return field
    found = locate(field, shape)
    if found is None or len(shape) < 2:
        return None
    a, within = found
    rank = len(shape)
    if fa is not None:
        return _whole(field) if a == rank - 1 else _at(field, out, a + len(out) - rank, within)
    if a == rank - 2:
        return _whole(field)
    return _at(field, out, len(out) - 1 if a == rank - 1 else a + len(out) - rank, within)


def _einsum(call, fields: list) -> Tokens | None:
    equation = call.arg(0, "equation")
    if not isinstance(equation, str) or "..." in equation:
        return None
    inputs, _, output = equation.replace(" ", "").partition("->")
    carried = [(term, f, s) for term, f, s in zip(inputs.split(","), fields, call.inputs) if f is not None]
    if len(carried) != 1:
        return _whole(carried[0][1]) if carried else None
    term, field, shape = carried[0]
    found = locate(field, shape) if field.before is not None else None
    if found is None or len(term) != len(shape):
        return field if field.before is None else None
    letter = term[found[0]]
    if letter not in output:
        return _whole(field)
    return _at(field, call.outputs[0], output.index(letter), found[1])


def _rearranged(name: str, call, field: Tokens, shape: tuple, out: tuple, found) -> Tokens | None:
    """A transpose, a slice, a concatenation or a split: where the tokens went; None for any other operation."""
    a, within = found
    rank = len(shape)
    order = None  # (a permutation's: output axis i is input axis order[i])
    if name in ("transpose", "swapaxes", "swapdims"):
        d0, d1 = call.arg(1, "dim0") % rank, call.arg(2, "dim1") % rank
        order = list(range(rank))
        order[d0], order[d1] = d1, d0
    elif name in ("t", "T"):
        order = list(range(rank))[::-1]
    elif name in ("mT", "mH"):
        order = [*range(rank - 2), rank - 1, rank - 2]
    elif name == "permute":
        dims = call.kwargs.get("dims") or (call.args[1] if len(call.args) == 2 and
                                           isinstance(call.args[1], (tuple, list)) else call.args[1:])
        order = [d % rank for d in dims]
    elif name in ("movedim", "moveaxis"):
        source, destination = call.arg(1, "source") % rank, call.arg(2, "destination") % rank
        order = [d for d in range(rank) if d != source]
        order.insert(destination, source)
    if order is not None:
        return _at(field, out, order.index(a), within)
    if name in ("flip", "fliplr", "flipud"):  # (along the tokens: the positions in reverse order, a negative jump)
        dims = {"fliplr": (1,), "flipud": (0,)}.get(name) or call.arg(1, "dims")
        if a not in _axes(dims, rank):
            return _at(field, out, a, within)
        if within != 1:
            return None
        (j,), (c,), (n,) = field.jump, field.centre, field.grid
        return field._replace(jump=(-j,), centre=(c + (n - 1) * j,))
    if name == "getitem":
        return _indexed(field, shape, out, found, call.arg(1, "idx"))
    if name in ("cat", "concat", "concatenate", "stack", "chunk", "split", "tensor_split", "unbind", "narrow",
                "select"):
        dim = call.arg(1 if name in ("cat", "concat", "concatenate", "stack", "unbind") else 2, "dim", 0)
        if name == "stack":
            d = dim % (rank + 1)
            return _at(field, out, a + 1 if d <= a else a, within)
        if dim % rank == a:  # (sequences joined or cut: their positions move; not by an empty one, a cache's first,
            # nor cut into all and nothing)
            pieces = call.inputs if name in ("cat", "concat", "concatenate") else call.outputs
            whole = [p for p in pieces if prod(p) > 0] == [tuple(shape if pieces is call.outputs else out)]
            return _at(field, out, a, within) if whole else None
        return _at(field, out, a - 1 if name in ("unbind", "select") and dim % rank < a else a, within)
    return None


def _indexed(field: Tokens, shape: tuple, out: tuple, found, index) -> Tokens | None:
    """x[...]: basic indexing (slices, integers, None, Ellipsis) follows the tokens' axis; an integer there leaves
    one position (``before`` None), a slice without a step keeps the tokens it takes (the first unit's centre moved
    to its start); an index tensor or a step there is not followed."""
    a, within = found
    items = receptive.index_items(index, len(shape))
    if any(not (item is None or isinstance(item, (int, slice))) for item in items):
        return None
    axis = out_axis = 0
    for item in items:
        if item is None:
            out_axis += 1
        elif axis == a:
            if within != 1:
                return None
            if isinstance(item, int):  # (that token's field: the first unit's moved to it)
                taken = item % shape[a]
                return Tokens(*receptive.window(Field(*field[:4]), (1,), (1,), (-taken,), (1,), grid=(1,)), None)
            start, stop, step = item.indices(shape[a])
            if step != 1:
                return None
            moved = _window(field, 1, 1, -start, 1, grid=max(0, stop - start))
            return _at(moved, out, out_axis, 1)
        else:
            axis += 1
            out_axis += 0 if isinstance(item, int) else 1
    return None
