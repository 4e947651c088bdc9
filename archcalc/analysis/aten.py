"""A graph of ATen operators (torch.export's: `torch.export.export(model, ...).module()`, or a program loaded with
`torch.export.load`) calls `torch.ops.aten.conv2d.default(...)` where a Python model calls `F.conv2d(...)`: each is
counted by the formula of the function it stands for, its name without the overload (conv2d.default -> conv2d,
counting.op_name) and its arguments in that function's order where the operator's schema orders them otherwise.

torch.export's default (training) form keeps most functions whole (conv2d, linear, layer_norm, group_norm,
max_pool2d, scaled_dot_product_attention, add, matmul: the function's own order); these differ:
  batch_norm, instance_norm (input, weight, bias, running_mean, running_var, ...)  F.batch_norm(input, running_mean,
                                                                                     running_var, weight, bias, ...)
  embedding, embedding_bag (weight, indices, ...)                                   F.embedding(input, weight, ...)
  upsample_nearest2d.vec, upsample_bilinear2d.vec, ... (input, output_size, ...)   F.interpolate(input, size, mode)
  constant_pad_nd (input, pad, value)                                                F.pad
  slice, alias, _unsafe_view, lift_fresh_copy, _to_copy                              x[a:b], views and copies
The core ATen form that run_decompositions() makes has operators of its own:
  convolution (input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
                                                                   F.conv{1,2,3}d or F.conv_transpose{1,2,3}d
  _native_batch_norm_legit_no_training (input, weight, bias, running_mean, running_var, momentum, eps),
  _native_batch_norm_legit_functional / _native_batch_norm_legit (..., training, momentum, eps)   F.batch_norm
  native_layer_norm, native_group_norm (input, weight, bias, N, C, HxW, group, eps), native_dropout
  _softmax, _log_softmax, max_pool2d_with_indices, _adaptive_avg_pool2d, _unsafe_index
What it decomposes further (GELU into erf and products, interpolate into index arithmetic) is counted as the
operations it became.
"""

from __future__ import annotations

from collections.abc import Callable

_MODES = {"upsample_nearest1d": "nearest", "upsample_nearest2d": "nearest", "upsample_nearest3d": "nearest",
          "upsample_nearest_exact1d": "nearest-exact", "upsample_nearest_exact2d": "nearest-exact",
          "upsample_nearest_exact3d": "nearest-exact", "upsample_linear1d": "linear",
          "upsample_bilinear2d": "bilinear", "upsample_bicubic2d": "bicubic", "upsample_trilinear3d": "trilinear"}
_RENAMED = {"slice": "narrow", "alias": "view", "_unsafe_view": "view", "lift_fresh": "view", "lift_fresh_copy": "clone",
            "_to_copy": "to", "constant_pad_nd": "pad", "_softmax": "softmax", "_log_softmax": "log_softmax",
            "max_pool2d_with_indices": "max_pool2d", "max_pool3d_with_indices": "max_pool3d",
            "_adaptive_avg_pool2d": "adaptive_avg_pool2d", "_adaptive_avg_pool3d": "adaptive_avg_pool3d",
            "_unsafe_index": "index", "native_layer_norm": "layer_norm", "native_dropout": "dropout"}


def _norm(name: str, args: tuple, kwargs: dict) -> tuple[str, tuple, dict]:  # weight, bias after the statistics
    return name, (args[0], args[3], args[4], args[1], args[2], *args[5:]), kwargs


def _lookup(name: str, args: tuple, kwargs: dict) -> tuple[str, tuple, dict]:  # the indices before the table
    return name, (args[1], args[0], *args[2:]), kwargs


def _convolution(name: str, args: tuple, kwargs: dict) -> tuple[str, tuple, dict]:
    x, weight, bias, stride, padding, dilation, transposed, output_padding, groups = args[:9]
    d = x.dim() - 2
    if transposed:
        return f"conv_transpose{d}d", (x, weight, bias, stride, padding, output_padding, groups, dilation), {}
    return f"conv{d}d", (x, weight, bias, stride, padding, dilation, groups), {}


def _batch_norm_eval(name: str, args: tuple, kwargs: dict) -> tuple[str, tuple, dict]:
    x, weight, bias, mean, var, momentum, eps = args[:7]
    return "batch_norm", (x, mean, var, weight, bias, False, momentum, eps), {}


def _batch_norm(name: str, args: tuple, kwargs: dict) -> tuple[str, tuple, dict]:
    x, weight, bias, mean, var, training, momentum, eps = args[:8]
    return "batch_norm", (x, mean, var, weight, bias, training, momentum, eps), {}


def _batch_norm_no_statistics(name: str, args: tuple, kwargs: dict) -> tuple[str, tuple, dict]:
    x, weight, bias, training, momentum, eps = args[:6]  # (_native_batch_norm_legit.no_stats)
    return "batch_norm", (x, None, None, weight, bias, training, momentum, eps), {}


def _group_norm(name: str, args: tuple, kwargs: dict) -> tuple[str, tuple, dict]:
    x, weight, bias, _, _, _, groups, eps = args[:8]
    return "group_norm", (x, groups, weight, bias, eps), {}


def _upsampling(name: str, args: tuple, kwargs: dict) -> tuple[str, tuple, dict]:
    size = args[1] if len(args) > 1 else kwargs.get("output_size")
    return "interpolate", (args[0], size), {"mode": _MODES[name]}


_REORDERED: dict[str, Callable] = {
    "batch_norm": _norm, "instance_norm": _norm, "embedding": _lookup, "embedding_bag": _lookup,
    "convolution": _convolution, "_native_batch_norm_legit_no_training": _batch_norm_eval,
    "_native_batch_norm_legit_functional": _batch_norm, "native_group_norm": _group_norm,
    **dict.fromkeys(_MODES, _upsampling),
}


def in_python_order(name: str, args: tuple, kwargs: dict) -> tuple[str, tuple, dict]:
    """(name, args, kwargs) of an ATen operator's call as the Python function it stands for takes them (as given
    where they are not all given by position: the function's formula then says what it misses)."""
    if name == "_native_batch_norm_legit":  # (with the running statistics, or .no_stats without them)
        reorder = _batch_norm if len(args) >= 8 else _batch_norm_no_statistics
    else:
        reorder = _REORDERED.get(name)
    if reorder is not None:
        try:
            return reorder(name, args, kwargs)
        except (IndexError, ValueError):
            return name, args, kwargs
    return _RENAMED.get(name, name), args, kwargs
