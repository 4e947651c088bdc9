"""torchinfo's counting rule (torchinfo 1.8, ``LayerInfo.calculate_macs``), read from its source and
checked against it (tests/test_conventions.py).

Per leaf module (a module with children counts 0; functional operations are not seen), from its own
parameters and the shape of its (first) output y:
  a parameter named weight or bias   its elements x N x prod(y spatial) when the class name contains
                                     "Conv", else its elements x N (so Linear's bias and LayerNorm's,
                                     BatchNorm's and Embedding's weights count too)
  any other name holding "weight" or "bias" (RNN, LSTM, GRU: weight_ih_l0, bias_hh_l0, ...)
                                     its elements x y.shape[0] x y.shape[1] (sequence x batch)
"""

from __future__ import annotations

from math import prod

from archcalc.analysis.records import OP, LayerRecord


def count(r: LayerRecord, module) -> int:
    if module is None or r.kind == OP or any(True for _ in module.children()) or not r.output_shapes:
        return 0
    out = r.output_shapes[0]
    conv = "Conv" in type(module).__name__
    total = 0
    for name, p in module.named_parameters(recurse=False):
        if name in ("weight", "bias"):
            total += p.numel() * (prod(out[:1] + out[2:]) if conv else out[0])
        elif "weight" in name or "bias" in name:
            total += p.numel() * prod(out[:2])
    return total
