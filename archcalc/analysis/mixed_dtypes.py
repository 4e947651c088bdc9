"""The kernels that refuse arguments of different floating-point dtypes, where the meta device's take them.

A step that the device cannot run must get no peak, and a model that runs on no device no counts. Simulated on the
meta device it would run: the meta kernels of these operations do not compare their arguments' dtypes, the CPU's
and CUDA's do. Mixed dtypes come with reduced precision, mostly where autocast casts one side and not the other:
MONAI's masked autoencoder writes its patches, bfloat16 under autocast, into a float32 tensor by index
(``x_[rows, kept] = x``), which fails on the CPU; so does its forward in bfloat16 (``--dtype bfloat16``), whose
``torch.zeros`` is float32. training/layout.py's dispatch mode asks refusal() of each operation of the simulated
steps for their device; the analysis's forward on the meta device asks Refusals (the rules of both devices, the
norms' CPU rule left out: CUDA's is not known here), outside an autocast region the model opens itself (whose
casts the meta device does not make: engine._trace).

  index_put, _index_put_impl_,     the destination and the values written: one dtype ("Index put requires the
  _unsafe_index_put                source and destination dtypes match", TensorAdvancedIndexing.cpp), but for one
                                   CPU value through one boolean mask, which PyTorch fills by masked_fill, casting
  index_copy, index_add,           self and source: one dtype
  index_reduce, put
  mm, bmm, addmm, baddbmm, mv,     the two matrices (vectors): one dtype; on the CPU the added input too, where
  addmv, dot, vdot                 this PyTorch's CPU kernel checks it (2.13's addmv does, 2.11's does not: asked
                                   of the kernel once, _cpu_checks_added)
  convolution                      input, weight and bias: one dtype ("Input type (c10::BFloat16) and bias type
                                   (float) should be the same")
  native_layer_norm,               on the CPU only as a float16 or bfloat16 input with float32 parameters (and
  native_batch_norm,               running statistics): "mixed dtype (CPU): expect parameter to have scalar type
  native_group_norm                of Float" (mixed_type.h); CUDA's rule is not known here, so not checked
"""

from __future__ import annotations

import functools

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_ATEN = torch.ops.aten
_LOW = (torch.float16, torch.bfloat16)
_WRITTEN, _SOURCE = "the destination and the values written", "self and the source"
PAIRS = {  # overload packet -> (what the tensors are, the positions of those whose dtypes must agree)
    **dict.fromkeys((_ATEN.index_put, _ATEN.index_put_, _ATEN._index_put_impl_, _ATEN._unsafe_index_put),
                    (_WRITTEN, (0, 2))),
    **dict.fromkeys((_ATEN.index_copy, _ATEN.index_copy_, _ATEN.index_add, _ATEN.index_add_, _ATEN.index_reduce,
                     _ATEN.index_reduce_), (_SOURCE, (0, 3))),
    **dict.fromkeys((_ATEN.put, _ATEN.put_), (_SOURCE, (0, 2))),
    **dict.fromkeys((_ATEN.mm, _ATEN.bmm, _ATEN.dot, _ATEN.vdot, _ATEN.mv), ("the two factors", (0, 1))),
    **dict.fromkeys((_ATEN.addmm, _ATEN.baddbmm, _ATEN.addmv), ("the two factors", (1, 2))),
    _ATEN.convolution: ("the input, the weight and the bias", (0, 1, 2)),
}
_ADDED = {_ATEN.addmm, _ATEN.baddbmm, _ATEN.addmv}  # (the CPU's also want the input added, position 0, alike)
_WRITES = {_ATEN.index_put, _ATEN.index_put_, _ATEN._index_put_impl_, _ATEN._unsafe_index_put}
_NORMS = {_ATEN.native_layer_norm: (2, 3), _ATEN.native_batch_norm: (1, 2, 3, 4),
          _ATEN._native_batch_norm_legit: (1, 2, 3, 4), _ATEN.native_group_norm: (1, 2)}  # -> its parameters'
# positions (with the running statistics)


def refusal(func, args: tuple, device: str) -> str | None:
    """Why the ``device`` (cpu or cuda) kernel refuses these arguments for their dtypes (None: it takes them);
    "meta": why both refuse them (the rules the two devices share)."""
    packet = getattr(func, "overloadpacket", None)
    if packet in PAIRS:
        what, positions = PAIRS[packet]
        if device == "cpu" and packet in _ADDED and _cpu_checks_added(packet):
            what, positions = "the input added and the two factors", (0, *positions)
        given = _tensors(args, positions)
        if len(given) < 2 or all(t.dtype == given[0].dtype for t in given):
            return None
        if packet in _WRITES and _filled(args, device):  # (one value by a mask: masked_fill's path casts it)
            return None
        return _said(packet, what, [t.dtype for t in given], device)
    if packet in _NORMS and device == "cpu":  # (not on meta: a float32 input with bfloat16 parameters may run on CUDA)
        x, parameters = _tensor(args, 0), _tensors(args, _NORMS[packet])
        if x is None or all(t.dtype == x.dtype for t in parameters):
            return None
        if x.dtype in _LOW and all(t.dtype == torch.float32 for t in parameters):
            return None  # (the CPU's mixed rule: a reduced-precision input with float32 parameters)
        return _said(packet, "the input and its parameters", [x.dtype, *(t.dtype for t in parameters)], device,
                     " (mixed only as a float16 or bfloat16 input with float32 parameters)")
    return None


@functools.cache
def _cpu_checks_added(packet) -> bool:
    """Whether this PyTorch's CPU kernel refuses an added input of another dtype than its two factors: asked once, of
    one-element tensors, out of any trace's sight."""
    sizes = {_ATEN.addmm: ((1, 1), (1, 1), (1, 1)), _ATEN.baddbmm: ((1, 1, 1),) * 3, _ATEN.addmv: ((1,), (1, 1), (1,))}
    added, first, second = sizes[packet]
    with torch._C.DisableTorchFunction(), torch.utils._python_dispatch._disable_current_modes():
        try:
            packet(torch.ones(added, device="cpu"), torch.ones(first, dtype=torch.bfloat16, device="cpu"),
                   torch.ones(second, dtype=torch.bfloat16, device="cpu"))
        except RuntimeError:
            return True
    return False


def _filled(args: tuple, device: str) -> bool:
    """Whether index_put writes one value through one boolean mask, which PyTorch turns into masked_fill (casting
    the value): canDispatchToMaskedFill wants the value on the CPU (a meta value stands for the CPU's in a CPU step)
    and the mask as the one index given."""
    value, indices = args[2], [i for i in (args[1] or ()) if i is not None]
    return (value.numel() == 1 and (device == "cpu" or value.device.type == "cpu") and len(indices) == 1
            and indices[0].dtype in (torch.bool, torch.uint8))


def _tensor(args: tuple, k: int) -> torch.Tensor | None:
    value = args[k] if k < len(args) else None
    return value if isinstance(value, torch.Tensor) else None


def _tensors(args: tuple, positions: tuple[int, ...]) -> list[torch.Tensor]:
    return [t for t in (_tensor(args, k) for k in positions) if t is not None]


def _said(packet, what: str, dtypes: list[torch.dtype], device: str, rule: str = "") -> str:
    names = " and ".join(dict.fromkeys(str(d).removeprefix("torch.") for d in dtypes))
    refused = "the CPU and CUDA kernels refuse, so it runs on neither" if device == "meta" else \
        f"the {device.upper()} kernel refuses, so the step cannot run there"
    return f"aten.{packet.__name__} is given {what} in {names}, which {refused}{rule}: cast them to one dtype in " \
           f"the model's code"


class Refusals(TorchDispatchMode):
    """Raises, as the devices' kernels do, where an operation is given dtypes that both the CPU's and CUDA's kernels
    refuse; not inside an enabled autocast region (``states``: meta_autocast's stack of (enabled, dtype), innermost
    last), where the device would cast the arguments to one dtype first."""

    def __init__(self, states: list):
        super().__init__()
        self.states = states

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        said = None if self.states[-1][0] else refusal(func, args, "meta")
        if said:
            raise RuntimeError(said)
        return func(*args, **(kwargs or {}))
