"""Stand-ins for meta kernels that refuse what the CPU's kernels run, so that an analysis on the meta device
goes on: each gives the output the CPU's kernel gives (its shape and dtype), joined to its inputs for
autograd; the row's counts come from the operation's formula, as every row's do. Only the analysis (the
tracer) uses them: a simulated training step needs the kernel's own saved tensors, so there meta_refusal()
names the refusal, and the steps run on the CPU where they fit (training/peak.py's meta_else_cpu).

  _grouped_mm   PyTorch 2.11-2.14's meta kernel takes bfloat16 only ("Expected inputs of BF16 type"); the
                CPU's takes float32 too, as transformers 5's mixture-of-experts layers (Mixtral, Qwen2-MoE)
                call it. (M, K) by (G, K, N) gives (M, N); (G, M, K) by (G, K, N) gives (G, M, N); (M, K) by
                (K, N) with offs of G groups gives (G, M, N); (G, M, K) by (K, N) gives (M, N).
  masked_fill   with its value a 0-dim tensor on the CPU (``torch.tensor(torch.finfo(dtype).min)``, as
                Hugging Face's SEW-D and DeBERTa-style XSoftmax write it): the CPU and CUDA take a CPU scalar
                tensor; the meta kernel wants ``value`` on the meta device. The same call with the value as a
                number (cast to the input's dtype as the tensor is, refused the same way where it overflows),
                in the analysis and, by meta_fills(), in the simulated steps (no meta tensor made for it: on
                CUDA the value takes no memory either).
  cov, corrcoef  ATen's cov compares tensors with aten::equal, which has no meta kernel: the V x V matrix
                (a 0-dim one for a single variable) of the input's dtype.
  Tensor.type   given a type's name, the meta device's own ("torch.meta.FloatTensor", what x.type() says of a
                meta tensor, as lucidrains's linear-attention transformer writes ``pos.type(x.type())``), which
                PyTorch does not take back ("invalid type"): the dtype it names, as the CPU's "torch.FloatTensor"
                gives (the tensor itself where it has that dtype already), in the analysis and, by meta_fills(),
                in the simulated steps.
  torch.tensor  given device='meta' inside a torch.func transform (jvp, grad, vmap), PyTorch's own call fails ("in-place
                operation (aten::detach_) that would mutate a captured Tensor"), where the CPU's runs (Hugging Face's
                cache makes its empty keys so, torch.tensor([], device=...)): the data made a CPU tensor, then moved.
  istft         its kernel checks the window's envelope for zeros (NOLA) by reading a value, which the meta
                device cannot give: the signal's shape, (..., length), or the frames overlap-added less the
                centring's n_fft/2 at each end; real unless return_complex.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F

from archcalc.patching import replaced


def stand_in(func, args: tuple, kwargs: dict):
    """The output of ``func`` where its meta kernel refused inputs its CPU kernel takes; None otherwise."""
    if func is torch._grouped_mm or func is getattr(F, "grouped_mm", None):
        return _grouped_mm(*args, **kwargs)
    if func in _MASKED_FILLS:
        return _masked_fill(func, *args, **kwargs)
    if func is torch.istft:
        return _istft(*args, **kwargs)
    if func is torch.tensor:
        return _tensor(*args, **kwargs)
    if func is torch.Tensor.type:
        return _typed(func, *args, **kwargs)
    if func in (torch.cov, torch.corrcoef, torch.Tensor.cov, torch.Tensor.corrcoef):
        return _covariance(*args, **kwargs)
    return None


def meta_refusal(error: BaseException | None) -> str | None:
    """What a meta kernel of the list above refused, said as the rest of a sentence ("the forward pass of X
    ..."), where ``error`` (or its cause) is that refusal; None otherwise."""
    while error is not None:
        if isinstance(error, RuntimeError) and "float32" in str(error) and _raised_in(error, "grouped_mm"):
            return ("calls torch._grouped_mm in float32, which the meta device's kernel refuses (it takes "
                    "bfloat16 only; the CPU's takes float32)")
        error = error.__cause__ or error.__context__
    return None


def _raised_in(error: BaseException, kernel: str) -> bool:
    """Whether PyTorch's meta kernel of ``kernel`` raised ``error`` (its wording differs between releases:
    "Expected inputs of BF16 type" in 2.11 and 2.13, "Expected mat_a to be BFloat16" in 2.14)."""
    frame = error.__traceback__
    while frame is not None:
        code = frame.tb_frame.f_code
        if code.co_filename.endswith("_meta_registrations.py") and kernel in code.co_name:
            return True
        frame = frame.tb_next
    return False


def _grouped_mm(mat_a=None, mat_b=None, offs=None, bias=None, out_dtype=None):
    a, b = mat_a, mat_b
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.is_meta and b.is_meta) \
            or a.dim() not in (2, 3) or b.dim() not in (2, 3):
        return None
    if a.dim() == 2 and b.dim() == 2:
        if offs is None:
            return None
        shape = (offs.shape[0], a.shape[0], b.shape[1])
    elif a.dim() == 3 and b.dim() == 3:
        shape = (a.shape[0], a.shape[1], b.shape[2])
    else:
        shape = (a.shape[0], b.shape[2]) if a.dim() == 2 else (a.shape[1], b.shape[1])
    out = torch.zeros(shape, dtype=out_dtype or a.dtype, device="meta")
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        out = out + (a.sum() + b.sum()).to(out.dtype) * 0  # (joined to both for autograd)
    return out


def _istft(input=None, n_fft=None, hop_length=None, win_length=None, window=None, center=True, normalized=False,
           onesided=None, length=None, return_complex=False):
    if not (isinstance(input, torch.Tensor) and input.is_meta and input.is_complex() and isinstance(n_fft, int)):
        return None
    frames, hop = input.shape[-1], hop_length or n_fft // 4
    trim = n_fft // 2 if center else 0
    samples = length if length is not None else n_fft + hop * (frames - 1) - 2 * trim
    dtype = input.dtype if return_complex else input.real.dtype
    out = torch.zeros((*input.shape[:-2], samples), dtype=dtype, device="meta")
    if torch.is_grad_enabled() and input.requires_grad:
        out = out + torch.view_as_real(input).sum().to(dtype) * 0  # (joined to it for autograd)
    return out


def _tensor(data=None, dtype=None, device=None, requires_grad=False, **kwargs):
    level = getattr(torch._C._functorch, "maybe_current_level", None)  # (a PyTorch without it: PyTorch's own error)
    if isinstance(data, torch.Tensor) or requires_grad or device is None or torch.device(device).type != "meta" or \
            level is None or level() is None:
        return None
    return torch.tensor(data, dtype=dtype, **kwargs).to("meta")


def _covariance(input=None, *args, **kwargs):
    if not (isinstance(input, torch.Tensor) and input.is_meta and input.dim() in (1, 2)):
        return None
    variables = 1 if input.dim() == 1 else input.shape[0]
    out = torch.zeros((variables, variables) if input.dim() == 2 else (), dtype=input.dtype, device="meta")
    if torch.is_grad_enabled() and input.requires_grad:
        out = out + input.sum() * 0  # (joined to it for autograd)
    return out


_MASKED_FILLS = (torch.Tensor.masked_fill, torch.Tensor.masked_fill_, torch.masked_fill)


def _masked_fill(func, input=None, mask=None, value=None):
    if not (isinstance(input, torch.Tensor) and input.is_meta and isinstance(value, torch.Tensor)
            and value.dim() == 0 and not value.is_meta and not value.requires_grad):
        return None
    return func(input, mask, value.item())


@contextmanager
def meta_fills():
    """Open while a simulated step runs on the meta device: masked_fill with a CPU 0-dim value and Tensor.type
    given the meta device's type name run as the analysis's stand-ins run them (this thread only, patching.py)."""
    with replaced([*((owner, name, partial(_else_own, _masked_fill, getattr(owner, name)))
                     for owner, name in ((torch.Tensor, "masked_fill"), (torch.Tensor, "masked_fill_"),
                                         (torch, "masked_fill"))),
                   (torch.Tensor, "type", partial(_else_own, _typed, torch.Tensor.type))]):
        yield


def _else_own(stand, func, *args, **kwargs):
    """The stand-in's output where it takes the call, else the function's own."""
    out = stand(func, *args, **kwargs)
    return func(*args, **kwargs) if out is None else out


_LEGACY = {"FloatTensor": torch.float32, "DoubleTensor": torch.float64, "HalfTensor": torch.float16,
           "BFloat16Tensor": torch.bfloat16, "LongTensor": torch.int64, "IntTensor": torch.int32,
           "ShortTensor": torch.int16, "CharTensor": torch.int8, "ByteTensor": torch.uint8, "BoolTensor": torch.bool}


def _typed(func, input=None, dtype=None, non_blocking=False, **kwargs):
    if not (isinstance(input, torch.Tensor) and input.is_meta and isinstance(dtype, str)
            and dtype.startswith("torch.meta.") and dtype.removeprefix("torch.meta.") in _LEGACY):
        return None
    return input.to(_LEGACY[dtype.removeprefix("torch.meta.")])
