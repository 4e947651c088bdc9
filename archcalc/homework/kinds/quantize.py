"""The bytes of one layer's parameters in float32 and after int8 quantization (torch.ao.quantization).

float32 bytes = 4*(weights + bias (+ γ, β of a BatchNorm after it))
int8 bytes    = 1*weights + 4*C_out (the bias stays float32; a BatchNorm folded into the convolution gives it one)
                (+ 16*C_out: a scale (float64) and a zero point (int64) per output channel, as PyTorch keeps them)
The MACs do not change: the same multiply-accumulates, on int8 operands.
Level 1: a convolution or linear layer, one scale for the whole weight tensor (its scale and zero point not
asked); level 2: per-channel weights (FBGEMM's default), their scales and zero points counted; level 3: a
convolution without bias and the BatchNorm after it, fused, then quantized per channel.
"""

from __future__ import annotations

import random

from archcalc.formulas.numbers import human_bytes
from archcalc.homework.layers import Layer
from archcalc.homework.question import Question
from archcalc.homework.words import say

COLUMNS = ("layer", "c_in", "c_out", "k", "bias", "batchnorm", "scheme", "weights", "params", "float32_bytes",
           "int8_bytes")
IN_CHANNELS = (3, 16, 32, 64, 96, 128, 256)
OUT_CHANNELS = (16, 32, 48, 64, 96, 128, 192, 256)
FEATURES_IN = (84, 120, 256, 400, 512, 1024, 2048)
FEATURES_OUT = (10, 84, 100, 120, 256, 512, 1000)
QPARAMS = 8 + 8  # a scale (float64) and a zero point (int64) per output channel


def _draw(rng: random.Random, level: int) -> tuple[Layer, bool]:
    if level == 3:
        k = rng.choice((1, 3, 3, 5))
        return Layer("conv", rng.choice(IN_CHANNELS), rng.choice(OUT_CHANNELS), k, p=k // 2, bias=False), True
    bias = level == 1 or rng.random() < 0.7
    if rng.random() < 0.6:
        k = rng.choice((1, 3, 3, 5, 7))
        return Layer("conv", rng.choice(IN_CHANNELS), rng.choice(OUT_CHANNELS), k, p=k // 2, bias=bias), False
    return Layer("linear", rng.choice(FEATURES_IN), rng.choice(FEATURES_OUT), bias=bias), False


def ask(rng: random.Random, level: int, lang: str) -> Question:
    layer, batchnorm = _draw(rng, level)
    per_channel = level >= 2
    weights = layer.c_in * layer.c_out * (layer.k * layer.k if layer.kind == "conv" else 1)
    biases = layer.c_out if layer.bias or batchnorm else 0  # (folding a BatchNorm gives the convolution a bias)
    params = weights + (layer.c_out if layer.bias else 0) + (2 * layer.c_out if batchnorm else 0)
    scales = QPARAMS * layer.c_out if per_channel else 0
    float32, int8 = 4 * params, weights + 4 * biases + scales
    numbers = {"layer": layer.kind, "c_in": layer.c_in, "c_out": layer.c_out,
               "k": layer.k if layer.kind == "conv" else None, "bias": layer.bias, "batchnorm": batchnorm,
               "scheme": "per_channel" if per_channel else "per_tensor", "weights": weights, "params": params,
               "float32_bytes": float32, "int8_bytes": int8}
    code = f"`{layer.code()}`" + (f" → `nn.BatchNorm2d({layer.c_out})`" if batchnorm else "")
    text = say(lang, "quantize.ask_fused" if batchnorm else "quantize.ask_channel" if per_channel else "quantize.ask",
               layer=say(lang, layer.kind), code=code)
    shape = f"{layer.k}*{layer.k}*{layer.c_in}*{layer.c_out}" if layer.kind == "conv" else \
        f"{layer.c_in}*{layer.c_out}"
    float_terms = [shape] + ([f"{layer.c_out}"] if layer.bias else []) + ([f"2*{layer.c_out}"] if batchnorm else [])
    working = [say(lang, "quantize.rule"),
               f"float32: 4*({' + '.join(float_terms)}) = 4*{params:,} = {float32:,}",
               f"int8: {shape}*1" + (f" + {layer.c_out}*4" if biases else "") +
               (f" + {layer.c_out}*(8 + 8)" if per_channel else "") + f" = {int8:,}"]
    if batchnorm:
        working.insert(1, say(lang, "quantize.folded", c=layer.c_out))
    if per_channel:
        working.insert(1, say(lang, "quantize.per_channel"))
    working.append(f"{human_bytes(float32)} → {human_bytes(int8)}: x{float32 / int8:.2f} " + say(lang, "quantize.macs"))
    return Question("quantize", text, f"{float32}; {int8}", tuple(working), numbers, ("float32_bytes", "int8_bytes"),
                    (layer,))


def check(q: Question) -> list[str]:
    """The layer (and its BatchNorm) built in PyTorch, quantized by torch.ao.quantization's eager mode on the
    CPU, its packed weights' own bytes read back."""
    n = q.numbers
    found = _quantized_bytes(q.layers[0], n["batchnorm"], n["scheme"] == "per_channel")
    problems = [f"{name}: the formula gives {n[name]}, PyTorch {value}" for name, value in found.items()
                if n[name] != value]
    answer = f"{found['float32_bytes']}; {found['int8_bytes']}"
    return problems + ([] if q.answer == answer else [f"answer {q.answer}, PyTorch {answer}"])


def _quantized_bytes(layer: Layer, batchnorm: bool, per_channel: bool) -> dict[str, int]:
    import warnings

    import torch
    import torch.ao.quantization as tq
    from torch import nn

    torch.manual_seed(0)
    if layer.kind == "conv":
        made = nn.Conv2d(layer.c_in, layer.c_out, layer.k, padding=layer.p, bias=layer.bias)
        x = torch.randn(1, layer.c_in, 8, 8)
    else:
        made = nn.Linear(layer.c_in, layer.c_out, bias=layer.bias)
        x = torch.randn(2, layer.c_in)
    model = nn.Sequential(tq.QuantStub(), made, *([nn.BatchNorm2d(layer.c_out)] if batchnorm else []),
                          tq.DeQuantStub()).eval()
    float32 = sum(p.numel() * p.element_size() for p in model.parameters())
    model.qconfig = tq.get_default_qconfig("fbgemm") if per_channel else tq.QConfig(
        activation=tq.MinMaxObserver.with_args(dtype=torch.quint8),
        weight=tq.MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch.ao.quantization's deprecation notices)
        if batchnorm:
            tq.fuse_modules(model, [["1", "2"]], inplace=True)
        prepared = tq.prepare(model)
        prepared(x)
        quantized = tq.convert(prepared)
    weight, bias = quantized[1]._weight_bias()
    int8 = weight.int_repr().numel() * weight.int_repr().element_size()
    int8 += bias.numel() * bias.element_size() if bias is not None else 0
    if per_channel:
        scales, zeros = weight.q_per_channel_scales(), weight.q_per_channel_zero_points()
        int8 += scales.numel() * scales.element_size() + zeros.numel() * zeros.element_size()
    return {"float32_bytes": float32, "int8_bytes": int8}
