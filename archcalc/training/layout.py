"""The memory layout (and, for the norms' statistics in reduced precision, the dtypes) the device's kernels
give, on the meta device.

A tensor's layout decides what a later ``.contiguous()`` (or a reshape that cannot view) copies, and so the
memory of a step. The meta device's kernels do not always give the device's layout:

  convolution    the CPU's kernels (oneDNN, and the slow path) and cuDNN give a channels-last output where the
                 input or the weight is channels-last (ConvUtils.h: mkldnn_conv_use_channels_last,
                 thnn_conv_use_channels_last, cudnn_conv_suggest_memory_format); the meta kernel, a contiguous
                 one always
  convolution_backward
                 ∂x and ∂W by the forward's rule, whatever ∂y's layout; PyTorch 2.11's meta kernel follows ∂y's
                 and each tensor's own instead, so a channels-last ∂W of a contiguous weight was copied by
                 autograd's layout contract before it was accumulated (timm's EfficientFormer-L1: 3.6 MB high
                 on 2.11; 2.13's meta kernel keeps the rule)
  pixel_shuffle  the CPU's kernel keeps a channels-last input's layout; the meta kernel does not
  batch_norm     the backward kernels give ∂x in the input's suggested layout (the CPU's batch_norm_backward,
                 cuDNN's); the meta kernel, in ∂y's: a map whose gradient comes back from tokens
                 (permute or transpose after the norm) is channels-last on meta, contiguous on the device.
                 The CPU's forward too gives its output in the input's suggested layout (batch_norm_cpu), the
                 meta kernel in the input's own: tokens normalised by BatchNorm1d through a transpose, as
                 PatchTST does, came out transposed on meta and contiguous on the CPU, so the reshape after it
                 copied on the CPU only (PatchTST: 6% low). CUDA's native kernel keeps the input's strides as
                 the meta kernel does; cuDNN's is not known here (not measured: no GPU)
  layer_norm     the CPU's and CUDA's backward kernels give a contiguous ∂x (empty_like of the contiguous
                 input); the meta kernel, ∂x in the input's layout: for tokens read off a feature map by
                 flatten(2).transpose(1, 2), as PVT's and many hybrids' patch embeddings do, a transposed ∂x,
                 whose next view then copies (timm's PVT-v2-b0: 250,880 bytes high). And with batch_norm,
                 the saved mean and 1/σ of a float16 or bfloat16 input: the CPU keeps them in the input's
                 dtype unless the parameters are float32; the meta kernels (as CUDA's) in float32 always
  group_norm     PyTorch's group_norm (group_norm.cpp) makes its input contiguous in the input's own suggested
                 format on the CPU, in NCHW elsewhere, the meta device included: a channels-last input, which a
                 CPU network makes without asking for it (a transpose and reshape back to N x C x H x W, as
                 diffusers' attention blocks write it), stays channels-last on the CPU, not on meta.
                 And its dtypes, where a bfloat16 or float16 map meets float32 parameters (CPU autocast does
                 not cast group_norm): the device's kernels keep the mean and 1/σ in float32 and give ∂x in
                 the map's dtype; the meta kernels, the mean and 1/σ in the map's and ∂x in float32, which
                 autograd then copied down (a convolution and a GroupNorm under bfloat16: 25% high)

While layouts(device) is open, those operations on meta tensors give the device's layout: all but group_norm by
a dispatch mode under the simulation's tracker (the output made again in the device's layout: the meta
device allocates nothing, and the tracker sees only the tensor returned), group_norm by native_group_norm
on the input in its own format for the CPU (its output in that format too: 2.13's meta kernel keeps it, as the
CPU's does, 2.14's makes it contiguous), with the
CPU's backward (no copies of a channels-last gradient and input first). A VAE's decoder from diffusers was
2 MiB low on the CPU before.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from math import prod

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from archcalc.errors import InputError
from archcalc.patching import TURN, replaced
from archcalc.analysis import mixed_dtypes
from archcalc.training.cpu_kernels import refusal

_ATEN = torch.ops.aten
channels_last, channels_last_3d = torch.channels_last, torch.channels_last_3d


@contextmanager
def layouts(device: str):
    """Open around the tracked steps (its dispatch mode must be under the tracker's): meta tensors take the
    layouts ``device`` (cpu or cuda) gives."""
    with ExitStack() as stack:
        if device == "cpu":
            stack.enter_context(_cpu_group_norm())
        stack.enter_context(_Layouts(device))
        yield


class _Layouts(TorchDispatchMode):
    def __init__(self, device: str):
        super().__init__()
        self.device = device

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.device == "cpu":
            refused = refusal(func, args)
            if refused:
                raise InputError(refused)
        mixed = mixed_dtypes.refusal(func, args, self.device)
        if mixed:  # (raised as the device's kernel raises it, so that the forward pass's failure says where)
            raise RuntimeError(mixed)
        out = func(*args, **(kwargs or {}))
        if func is _ATEN.convolution.default and args[0].is_meta and out.dim() in (4, 5):
            return _in(out, _convolution_format(args[0], args[1]))
        elif func is _ATEN.convolution_backward.default and args[1].is_meta and args[1].dim() in (4, 5):
            wanted = _convolution_format(args[1], args[2])  # (grad_output, input, weight, ...)
            return tuple(g if g is None or i == 2 else _in(g, wanted) for i, g in enumerate(out))
        elif func is _ATEN.native_batch_norm_backward.default and args[1].is_meta and out[0] is not None:
            return (_in(out[0], suggested_format(args[1])), *out[1:])  # (grad_out, input, ...)
        elif func is _ATEN.pixel_shuffle.default and self.device == "cpu" and args[0].is_meta:
            if suggested_format(args[0]) == channels_last:
                return _in(out, channels_last)
        elif func is _ATEN.native_group_norm.default and args[0].is_meta:
            if self.device == "cpu":  # (2.14's meta kernel: contiguous always)
                out = (_in(out[0], suggested_format(args[0])), *out[1:])
            if _mixed(args[0], args[1], args[2]):  # (its mean and 1/σ in float32, as group_norm.cpp makes them)
                out = (out[0], *(torch.empty_like(t, dtype=torch.float32) for t in out[1:]))
            return out
        elif func is _ATEN.native_group_norm_backward.default and args[1].is_meta and out[0] is not None:
            if out[0].dtype != args[1].dtype:  # (∂x in x's dtype: empty_like(X) in group_norm_kernel.cpp)
                return (torch.empty_like(out[0], dtype=args[1].dtype), *out[1:])
        elif func is _ATEN.native_layer_norm_backward.default and args[0].is_meta and out[0] is not None:
            return (_in(out[0], torch.contiguous_format), *out[1:])
        elif func in _STATISTICS and self.device == "cpu" and args[0].is_meta:
            if func is not _ATEN.native_layer_norm.default:  # (batch_norm_cpu: empty_like in the suggested format)
                out = (_in(out[0], suggested_format(args[0])), *out[1:])
            return _cpu_statistics(args[0], _STATISTICS[func](args), out)
        return out


def _cpu_statistics(x: torch.Tensor, parameters: tuple, out: tuple) -> tuple:
    """layer_norm's and batch_norm's saved statistics as the CPU's kernels make them: in a float16 or bfloat16
    input's own dtype where its parameters (running statistics too) are in it, or absent (layer_norm_cpu's
    param_scalar_type, batch_norm_cpu's), in float32 only where those are float32 (mixed); the meta kernels
    make them float32 always, as CUDA's do (their accumulation type). A LayerNorm without affine parameters
    under CPU autocast (Data2Vec-Audio's positional convolution), or a whole bfloat16 model on the CPU, was
    high by the statistics' size."""
    if x.dtype not in (torch.float16, torch.bfloat16) or _mixed(x, *parameters):
        return out
    return (out[0], *(torch.empty_like(t, dtype=x.dtype) for t in out[1:3]), *out[3:])


_STATISTICS = {  # the kernel -> its parameters among its arguments
    _ATEN.native_layer_norm.default: lambda args: args[2:4],  # (input, normalized_shape, weight, bias, eps)
    _ATEN.native_batch_norm.default: lambda args: args[1:5],  # (input, weight, bias, running_mean, running_var, ...)
    _ATEN._native_batch_norm_legit.default: lambda args: args[1:5],
    _ATEN._native_batch_norm_legit.no_stats: lambda args: args[1:3],
}


def _mixed(x: torch.Tensor, *parameters) -> bool:
    """group_norm.cpp's is_mixed_type: a float16 or bfloat16 input with float32 parameters (a bfloat16
    feature map under CPU autocast, which does not cast group_norm, meeting a float32 GroupNorm)."""
    given = [p for p in parameters if isinstance(p, torch.Tensor)]
    return x.dtype in (torch.float16, torch.bfloat16) and bool(given) and all(p.dtype == torch.float32
                                                                               for p in given)


def _convolution_format(x: torch.Tensor, weight: torch.Tensor) -> torch.memory_format:
    """ConvUtils.h's rule for a convolution's output and gradients: channels-last where the input or the weight
    is (oneDNN's mkldnn_conv_use_channels_last, thnn_conv_use_channels_last, cudnn_conv_suggest_memory_format)."""
    if x.dim() not in (4, 5):
        return torch.contiguous_format
    wanted = channels_last if x.dim() == 4 else channels_last_3d
    return wanted if wanted in (suggested_format(x), suggested_format(weight)) else torch.contiguous_format


def _in(out: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    """``out`` with the strides the device's kernel gives, to the size-1 dimensions' (a 1x1 kernel's ∂W is
    contiguous and channels-last alike by is_contiguous, not by its strides)."""
    made = torch.empty(out.shape, dtype=out.dtype, device=out.device, memory_format=layout)
    return out if out.stride() == made.stride() else made


@contextmanager
def _cpu_group_norm():
    """F.group_norm on the meta device as on the CPU: its input kept in its own suggested format."""
    with TURN:
        group_norm = F.group_norm

        def as_on_the_cpu(input, num_groups, weight=None, bias=None, eps=1e-5):
            if not (isinstance(input, torch.Tensor) and input.is_meta and input.dim() >= 2):
                return group_norm(input, num_groups, weight, bias, eps)
            return _GroupNorm.apply(input.contiguous(memory_format=suggested_format(input)), weight, bias,
                                    num_groups, eps)

        with replaced([(F, "group_norm", as_on_the_cpu)]):
            yield


class _GroupNorm(torch.autograd.Function):
    """native_group_norm with the CPU's backward: its gradient and input made contiguous in the input's own
    format (derivatives.yaml: the CPU's suggest_memory_format, NCHW elsewhere), so a channels-last map is
    not copied twice before the backward kernel, as it is on the meta device. It saves what autograd's own
    NativeGroupNormBackward saves: the input, the weight, the mean and the reciprocal deviation."""

    @staticmethod
    def forward(ctx, x, weight, bias, groups: int, eps: float):
        n, c, spread = x.shape[0], x.shape[1], prod(x.shape[2:])
        out, mean, rstd = torch.native_group_norm(x, weight, bias, n, c, spread, groups, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.sizes = (n, c, spread, groups)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, rstd = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        grads = torch.ops.aten.native_group_norm_backward(
            grad.contiguous(memory_format=suggested_format(x)), x, mean, rstd, weight, *ctx.sizes, mask)
        return (*grads, None, None)


def suggested_format(t: torch.Tensor) -> torch.memory_format:
    """Tensor::suggest_memory_format (c10's is_channels_last_strides_2d/3d): channels-last where the strides
    run C, W, H, N from the smallest (ambiguous cases, a trivial C or N x 1 x 1 x 1, are NCHW's)."""
    order = {4: (1, 3, 2, 0), 5: (1, 4, 3, 2, 0)}.get(t.dim())
    if order is None:
        return torch.contiguous_format
    sizes, strides, least = t.shape, t.stride(), 0
    if strides[1] == 0:
        return torch.contiguous_format
    for d in order:
        if sizes[d] == 0 or strides[d] < least or (d == 0 and least == strides[1]):
            return torch.contiguous_format
        least = strides[d] * (sizes[d] if sizes[d] > 1 else 1)
    return channels_last if t.dim() == 4 else channels_last_3d
