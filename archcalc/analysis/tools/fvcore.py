"""fvcore's counting rules (fvcore 0.1.5, ``FlopCountAnalysis`` and its _DEFAULT_SUPPORTED_OPS), read
from its source (fvcore/nn/jit_handles.py) and checked against it (tests/test_conventions.py).

fvcore traces the model with TorchScript and counts the aten operations it has a handle for, one
multiply-add as one "flop"; every other operation is listed as unsupported and counts 0:

  aten::_convolution, linear, addmm, bmm, mm    the multiply-adds, as archcalc's MACs (F.linear_cross_entropy,
                      traced, takes its reference path: the logits' linear, chunked or not)
  aten::matmul        numel(x) x y.shape[-1]: the second operand's batch is not broadcast
  aten::einsum        'abc,abd->acd' and 'abc,adc->adb' (its letters renamed in order) as bmm; any other,
                      numpy's einsum_path(optimize="optimal") "Optimized FLOP count" / 2, floored
  aten::batch_norm    2 per element in eval (1 without affine); with the batch's statistics (training=True:
                      a training step, no running statistics, timm's weight-standardised convolutions) 5 (4)
  aten::layer_norm, group_norm, instance_norm   5 per input element with affine, 4 without
  aten::adaptive_avg_pool2d      1 per input element
  aten::upsample_nearest2d       1 per output element;  upsample_bilinear2d  4 per output element
  aten::grid_sampler (F.grid_sample: RAFT, spatial transformers)   4 per output element, any mode
  not supported: aten::_convolution_mode (a convolution with padding='same' or 'valid': 0),
  aten::scaled_dot_product_attention (so MultiheadAttention with need_weights=False
  counts its projections only), aten::lstm / gru / rnn_tanh (0), baddbmm, addbmm, tensordot, linalg_multi_dot,
  bilinear (nn.Bilinear), _grouped_mm, linalg_solve_triangular, vecdot, matrix_power, affine_grid, cdist,
  pdist, conv_tbc, cov and corrcoef, matrix_exp, the matrix factorisations and what is built on them (inv, solve,
  det, slogdet, cholesky, qr, ...),
  every element-wise operation; the quantized namespace's kernels (quantized::linear, conv2d_relu, add, ...: a
  quantized layer counts 0; fvcore 0.1.5's trace of a quantized network, static or dynamic, fails: "Only tensors
  ... can be inputs to traced functions. Got int");
  the cells (LSTMCell, GRUCell, RNNCell) are traced as their linear layers: counted as archcalc does
  a module subclass with a forward of its own (timm's LayerNorm) is counted by the operations it runs, as
  the trace sees them, not by its base class's rule
  a custom torch.autograd.Function is one prim::PythonOp in the trace, unsupported: nothing its forward runs
  is counted (LayerRecord.inside), torch.utils.checkpoint's reentrant form included
  work whose result reaches no output (an unused head, the branches a wrapper leaves out) is not in the trace:
  TorchScript's dead-code elimination drops it (tools.counts leaves out the rows Tracer.unused finds; a size read
  by .shape, .size() or .numel() is traced, so a row whose size a live operation uses stays; a row without
  autograd's nodes, made under torch.no_grad or of gradient-free data (a threshold's mask convolved with a fixed
  kernel, as Canny's hysteresis does), by the data's flow: its reader rows, and writes no row records, x[i] = v)
"""

from __future__ import annotations

from math import prod

from torch import nn

from archcalc.analysis.counters import decompositions, sparse
from archcalc.analysis.counters.attention import scores_of
from archcalc.analysis.counters.linear import equation_of
from archcalc.analysis.packed import quantized_kernel
from archcalc.analysis.records import LAYER, OP, LayerRecord

NOT_SUPPORTED = {"scaled_dot_product_attention", "baddbmm", "addbmm", "addmv", "mv", "dot", "vdot", "inner",
                 "lstm", "gru", "rnn_tanh", "rnn_relu", "LSTM", "GRU", "RNN",
                 "_native_multi_head_attention",
                 # one aten node each in the trace, none with a handle
                 "tensordot", "linalg_multi_dot", "chain_matmul", "bilinear", "Bilinear", "_grouped_mm",
                 "grouped_mm", "linalg_solve_triangular", "triangular_solve", "linalg_vecdot", "linalg_matrix_power",
                 "matrix_power", "affine_grid", "cdist", "pdist", "conv_tbc", "cov", "corrcoef",
                 "deform_conv2d",  # (torchvision's: a custom op, torchvision::deform_conv2d in the trace)
                 "linalg_matrix_exp", "matrix_exp",
                 *sparse.PRODUCTS,  # (aten::_sparse_mm, _sparse_addmm, hspmm: no handle)
                 *decompositions.COUNTED}  # (aten::linalg_inv_ex, _linalg_slogdet, linalg_qr, ...: no handle)
_NORMS = ((nn.LayerNorm, "elementwise_affine"), (nn.GroupNorm, "affine"),
          (nn.modules.instancenorm._InstanceNorm, "affine"))  # (subclasses too: timm's LayerNormNoBias)
_NORM_OPS = {"layer_norm": 2, "group_norm": 2, "instance_norm": 3}  # op -> position of its weight argument


def count(r: LayerRecord, module) -> int:
    kind = r.type
    if r.kind not in (LAYER, OP) or kind in NOT_SUPPORTED or r.inside or _padding_by_name(r, module) or \
            quantized_kernel(kind, module):
        return 0  # (a module archcalc has no formula of its own for is counted by the operations it runs: timm's
        # LayerNorm, a subclass with its own forward, is its F.layer_norm's row, not a LayerNorm's too)
    total = r.macs or 0
    if sparse.of_sparse(r.formulas):  # (its handles read shapes only)
        total = sparse.dense_macs(kind, r.input_shapes, r.output_shapes[0])
    equation = equation_of(r.formulas.get("macs", "")) if kind == "einsum" and r.formulas else None
    if equation is not None:
        return einsum(equation, r.input_shapes)
    if kind == "linear_cross_entropy":  # (traced, it takes the reference path: aten::linear, the logits' product)
        return prod(r.input_shapes[0][:-1]) * prod(r.input_shapes[1])
    if kind in ("MultiheadAttention", "multi_head_attention_forward"):
        total -= _attention_macs(r)
    elif kind == "matmul" and len(r.input_shapes) == 2 and len(r.input_shapes[1]) >= 2:
        total = prod(r.input_shapes[0]) * r.input_shapes[1][-1]
    batch_norm = isinstance(module, nn.modules.batchnorm._BatchNorm) or (r.kind == OP and kind == "batch_norm")
    if batch_norm:
        text = r.formulas.get("elementwise", "")
        if "batch's statistics" in text:  # (training=True, as fvcore's batchnorm_flop_jit reads it: its norm rule)
            total += prod(r.input_shapes[0]) * (5 if "affine" in text else 4)
        else:
            affine = module.affine if module is not None else True
            total += prod(r.output_shapes[0]) * (2 if affine else 1)
    elif (affine := _norm_affine(module)) is not None:
        total += prod(r.input_shapes[0]) * (5 if affine else 4)
    elif kind in _NORM_OPS:
        total += prod(r.input_shapes[0]) * (5 if r.formulas.get("elementwise", "").find("affine") >= 0 else 4)
    elif kind in ("AdaptiveAvgPool2d", "adaptive_avg_pool2d"):
        total += prod(r.input_shapes[0])
    elif kind == "grid_sample":  # (aten::grid_sampler, "assume bilinear" whatever the mode)
        total += 4 * prod(r.output_shapes[0])
    elif kind in ("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "interpolate") and \
            len(r.output_shapes[0]) == 4:
        mode = module.mode if module is not None else _mode(r)
        total += prod(r.output_shapes[0]) * {"nearest": 1, "bilinear": 4}.get(mode, 0)
    return total


def _norm_affine(module) -> bool | None:
    """A LayerNorm's, GroupNorm's or InstanceNorm's affine flag (of a subclass too); None for any other."""
    return next((getattr(module, flag) for cls, flag in _NORMS if isinstance(module, cls)), None)


def _padding_by_name(r: LayerRecord, module) -> bool:
    """A convolution with padding='same' or 'valid' traces as aten::_convolution_mode, which fvcore has no
    handle for."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return isinstance(module.padding, str)
    return r.kind == OP and r.type in ("conv1d", "conv2d", "conv3d") and \
        r.formulas.get("output", "").startswith("padding='")


def _attention_macs(r: LayerRecord) -> int:
    """What fvcore's trace of a multi-head attention leaves out (its projections are aten::linear, counted): the
    attention, N*h*L*S'*(d_k + d_v), where PyTorch runs it by SDPA (need_weights=False), or QKᵀ, N*h*L*S'*d_k,
    where a mask makes it aten::baddbmm (need_weights=True, its AV an aten::bmm, counted)."""
    read = scores_of(r.formulas.get("macs", ""))
    if read is None:  # (a row counted otherwise: nothing of its attention to take out)
        return 0
    scores, d_k, d_v = read
    if len(r.output_shapes) == 1:
        return scores * (d_k + d_v)
    return scores * d_k if "mask" in r.formulas.get("elementwise", "") else 0


def _mode(r: LayerRecord) -> str:
    text = r.formulas.get("elementwise", "")
    return text.split(":", 1)[0] if text else "nearest"


def einsum(equation: str, shapes: tuple) -> int:
    """fvcore's einsum_flop_jit: its two batched-product equations by their sizes, any other by numpy's optimal
    einsum path's flop count, halved and floored (numpy counts an element-wise product and the terms summed,
    so it is not archcalc's MACs where nothing or a size-1 index is contracted)."""
    import numpy as np

    equation = equation.replace(" ", "")
    order = dict.fromkeys(x for x in equation if x.isalpha())
    equation = equation.translate({ord(x): 97 + i for i, x in enumerate(order)})
    if equation == "abc,abd->acd":
        return prod(shapes[0]) * shapes[-1][-1]
    if equation == "abc,adc->adb":
        return prod(shapes[0]) * shapes[-1][1]
    arrays = [np.broadcast_to(np.zeros(()), s) for s in shapes]  # (shapes only: no memory)
    report = np.einsum_path(equation, *arrays, optimize="optimal")[1]
    line = next(line for line in report.split("\n") if "optimized flop" in line.lower())
    return int(float(line.split(":")[-1]) // 2)
