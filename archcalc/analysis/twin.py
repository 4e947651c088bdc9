"""A user's model is analysed through a twin: the same modules (a deep copy of its structure) whose
parameters and buffers are made for the analysis's device and dtype, so that the user's own model is
never moved, converted, switched to eval mode or traced (its forwards patched), and a model with
real weights is analysed on the meta device without a copy of its weights.

  parameter on the analysis's device and dtype already  -> the same tensor, shared (no copy), unless the
                                                           twin is to be trained (share=False: a copy)
  otherwise, on the meta device                         -> an empty meta tensor of its shape
  otherwise, on a real device                           -> a copy there (the values matter on it)
  buffers (running statistics, index tables)            -> copied likewise, never shared: a forward
                                                           may write them
Parameters tied between modules stay tied (one twin per tensor). Plain tensors kept as attributes
are deep-copied with the rest.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin

from archcalc.analysis.storages import parts
from archcalc.errors import InputError


def twin(model: nn.Module, device: torch.device, dtype: torch.dtype, share: bool = True) -> nn.Module:
    """The model's twin on ``device`` with floating-point tensors in ``dtype``, in eval mode; ``share``
    False: never the model's own parameters (a training step of the twin updates its own)."""
    memo: dict[int, object] = {}
    for p in model.parameters():
        if id(p) not in memo:
            memo[id(p)] = _unmade(p, device, dtype) if isinstance(p, UninitializedTensorMixin) else \
                _parameter(p, device, dtype, share)
    for b in model.buffers():
        if id(b) not in memo:
            memo[id(b)] = _unmade(b, device, dtype) if isinstance(b, UninitializedTensorMixin) else \
                _tensor(b, device, dtype, share=False)
    try:
        with warnings.catch_warnings():  # (PyTorch's deprecation notices as it copies: an exported graph's tree specs)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            made = copy.deepcopy(model, memo)
    except Exception as error:  # an attribute that cannot be copied (a lock, a file, a C++ object)
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InputError(f"cannot copy {type(model).__name__}'s structure to analyse it ({type(error).__name__}: "
                         f"{message}); archcalc never runs a user's model itself: make its attributes copyable "
                         f"(copy.deepcopy), or give it as FILE.py:NAME so that archcalc builds it") from None
    return made.eval()


def _unmade(t, device: torch.device, dtype: torch.dtype):
    """A lazy layer's parameter or buffer not made yet, on ``device`` and in ``dtype``, as its layer will make it
    there (nn.Module.to does so; a copy would make it on the model's device, in its dtype: the CPU's float32)."""
    return type(t)(requires_grad=t.requires_grad, device=device, dtype=dtype if t.is_floating_point() else t.dtype)


def _parameter(p: nn.Parameter, device: torch.device, dtype: torch.dtype, share: bool) -> nn.Parameter:
    made = _tensor(p, device, dtype, share)
    return made if made is p else nn.Parameter(made, requires_grad=p.requires_grad)


def _tensor(t: torch.Tensor, device: torch.device, dtype: torch.dtype, share: bool) -> torch.Tensor:
    wanted = dtype if t.is_floating_point() else t.dtype
    if _same(t.device, device) and t.dtype == wanted:
        return t if share else t.detach().clone()
    if device.type == "meta":
        return _sparse_on_meta(t, wanted) if t.layout != torch.strided else \
            torch.empty(t.shape, dtype=wanted, device=device)
    return t.detach().to(device=device, dtype=wanted, copy=True)


def _sparse_on_meta(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A sparse tensor's meta twin with its stored values' count (nnz), which sets a sparse product's work: the
    shapes of its index tensors and values kept (storages.parts; PyTorch's .to("meta") keeps none: nnz 0)."""
    *indices, values = (torch.empty(p.shape, dtype=p.dtype, device="meta") for p in parts(t))
    values = values.to(dtype)
    if t.layout == torch.sparse_coo:
        return torch.sparse_coo_tensor(*indices, values, t.shape, is_coalesced=t.is_coalesced())
    return torch.sparse_compressed_tensor(*indices, values, t.shape, layout=t.layout)


def _same(have: torch.device, want: torch.device) -> bool:
    return have.type == want.type and (want.index is None or have.index == want.index)
