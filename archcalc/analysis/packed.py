"""The weights a quantized layer keeps packed for its kernels (FBGEMM's, QNNPACK's), unpacked.

torch.ao.quantization's layers (nn.quantized.Linear, Conv2d, the dynamic Linear and LSTM, the quantized
Embedding) hold their weights inside a C++ object, not as parameters: ``module.parameters()`` has none of
them, so torchinfo, thop and ptflops count a quantized network's parameters as 0. They are still the layer's
parameters, a quarter of the bytes: here each is unpacked (``_weight_bias()``, ``get_weight()``, ``weight()``,
the modules' own methods) as (slot, tensor), an int8 weight at 1 byte an element (a float16 one, dynamic
quantization's other kind, at 2), a bias in float32. The weights' quantization parameters (a scale and a zero
point per tensor or per output channel, float64 and int64 as PyTorch keeps them; an embedding's float32 per
row) are given apart, as buffers: they scale the weights, they are not learnt.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn
from torch.fx import GraphModule

Slots = tuple[tuple[str, torch.Tensor], ...]
QUANTIZED = ("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized")  # (the packages of quantized layers)
QUANTIZED_TYPES = ("Quantized", "DynamicQuantized", "quantized::")  # (how a quantized layer's row type begins, as
# PyTorch prints it (tracer.type_name), and the quantized namespace's operations' (counting.op_name))


def packed_weights(module: nn.Module) -> Slots:
    """(slot, tensor) for each weight and bias a quantized layer keeps packed; () for any other module (and for
    the packed parameters' own holder, LinearPackedParams, counted as its layer's). Unpacked once a module: the
    same tensors each time (a trace's rows own them by identity)."""
    cls = type(module)
    if not cls.__module__.startswith(QUANTIZED) or cls.__name__.endswith("PackedParams"):
        return ()
    slots = _unpacked.get(module)
    if slots is None:
        slots = _unpacked[module] = _unpack(module)
    return slots


_unpacked: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # (a twin's layers: made for one analysis)


def _unpack(module: nn.Module) -> Slots:
    if hasattr(module, "get_weight") and hasattr(module, "get_bias"):  # the dynamic LSTM, GRU and their cells
        slots = (*_present(module.get_weight()), *_present(module.get_bias()))
    elif hasattr(module, "_weight_bias"):  # Linear and convolutions, static and dynamic, fused or not
        weight, bias = module._weight_bias()
        slots = _present({"weight": weight, "bias": bias})
    elif getattr(module, "_packed_params", None) is not None and callable(getattr(module, "weight", None)):
        return _present({"weight": module.weight()})  # the quantized Embedding, EmbeddingBag
    else:
        return ()
    if _float16(module):  # (unpacked as float32, kept in float16 by dynamic quantization's float16 kind)
        slots = tuple((name, t.to(torch.float16) if name.startswith("weight") else t) for name, t in slots)
    return slots


def _float16(module: nn.Module) -> bool:
    dtype = getattr(getattr(module, "_packed_params", None), "dtype", None)  # (Linear's; the RNNs' own)
    return torch.float16 in (dtype, getattr(module, "dtype", None), getattr(module, "weight_dtype", None))


def packed_object(value) -> bool:
    """A weight packed for a quantized kernel, held as it is (FX's lowering keeps one as a GraphModule's attribute,
    _packed_weight_0, for a functional F.linear or F.conv2d it made quantized::linear, quantized::conv2d)."""
    return isinstance(value, torch.ScriptObject) and value._type().name().endswith("PackedParamsBase")


def object_weights(value) -> Slots:
    """A packed weight's tensors, unpacked: (weight, bias) as its own unpack() gives them."""
    weight, bias = value.unpack()[:2]
    return _present({"weight": weight, "bias": bias})


def _present(slots: dict) -> Slots:
    """The tensors given, detached: no gradient reaches a packed weight (a quantized layer is not trained)."""
    return tuple((name, t.detach()) for name, t in slots.items() if t is not None)


def quantization_parameters(weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A quantized weight's scales and zero points as PyTorch keeps them: per output channel, or one of each
    (float64 and int64); none for a float weight."""
    if not weight.is_quantized:
        return ()
    if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric,
                            torch.per_channel_affine_float_qparams):
        return weight.q_per_channel_scales(), weight.q_per_channel_zero_points()
    return torch.tensor([weight.q_scale()], dtype=torch.float64), torch.tensor([weight.q_zero_point()])


def quantized_layer(module: nn.Module | None) -> bool:
    """A layer of torch.ao's quantized packages (QuantizedLinear, QuantizedBatchNorm2d, DynamicQuantizedLSTM):
    its kernels are in the quantized namespace, which no counting tool has a formula for."""
    return module is not None and type(module).__module__.startswith(QUANTIZED) and \
        type(module).__name__ not in _FLOAT_HELPERS


def quantized_kernel(kind: str, module: nn.Module | None) -> bool:
    """A row that runs a quantized kernel: a quantized layer's, or an operation of the quantized namespace
    (``kind``, the row's type: quantized::linear, as FX's lowering of F.linear calls it)."""
    return kind.startswith("quantized::") or quantized_layer(module)


_FLOAT_HELPERS = ("FloatFunctional", "FXFloatFunctional")  # (in those packages, but float: a prepared network's)


def quantized(model: nn.Module) -> bool:
    """Whether a network holds quantized layers, or packed weights for quantized operations (an FX GraphModule's):
    their kernels are the CPU's only, none has a meta version."""
    return any(quantized_layer(m) or isinstance(m, GraphModule) and any(map(packed_object, vars(m).values()))
               for m in model.modules())
