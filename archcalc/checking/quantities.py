"""Compute the quantity a table row names, for its model and input."""

from __future__ import annotations

from decimal import Decimal

from archcalc.checking.table import PaperRow
from archcalc.errors import InputError

UNITS = {"": 1, "G": 10**9, "M": 10**6, "K": 10**3}
LAYOUTS = {"CxHxW": (0, 1, 2), "HxWxC": (1, 2, 0), "HxW": (1, 2), "C": (0,)}


def _ints(text: str, count: int) -> list[int]:
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) != count or not all(p.strip().isdigit() for p in parts):
        raise InputError(f"input {text!r} should be {count} integers")
    return [int(p) for p in parts]


def _arithmetic(row: PaperRow) -> int:
    if row.model == "bottleneck":
        from archcalc.formulas.bottleneck import as_dict, compare

        result = as_dict(compare(*_ints(row.input, 5)))
        design, _, what = row.quantity.partition("_")
        if design not in ("direct", "bottleneck") or what not in ("memory", "mults", "params", "activations"):
            raise InputError(f"bottleneck has no quantity {row.quantity!r}")
        return result[design][what]
    from archcalc.formulas.outsize import conv_out_size

    if row.quantity != "output":
        raise InputError(f"outsize has no quantity {row.quantity!r}")
    return conv_out_size(*_ints(row.input, 4)).output


def senet_flops(analysis) -> int:
    """MACs + what SENet's blocks add element-wise: the squeeze (global average pooling, one add
    per element) and the channel-wise scaling (one multiply per element) of every SE block."""
    by_index = {r.index: r for r in analysis.records}

    def in_attention(record) -> bool:
        parent = record.parent
        while parent is not None:
            if by_index[parent].type == "ChannelAttention":
                return True
            parent = by_index[parent].parent
        return False

    extra = sum(r.elementwise or 0 for r in analysis.records
                if r.type in ("AdaptiveAvgPool2d", "mul") and in_attention(r))
    return analysis.totals.macs + extra


class Computer:
    """Analyses each (model, input) once and answers every quantity asked of it."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], object] = {}

    def analysis(self, model: str, input_text: str):
        key = (model, input_text)
        if key not in self._cache:
            from archcalc.analysis.engine import analyse
            from archcalc.models.catalog import REGISTRY

            size = tuple(_ints(input_text, 3)) if input_text else None
            self._cache[key] = analyse(REGISTRY.get(model), size)
        return self._cache[key]

    def compute(self, row: PaperRow) -> Decimal | str:
        """A number in the row's unit, or a shape written in the row's layout."""
        if row.model in ("bottleneck", "outsize"):
            return Decimal(_arithmetic(row)) / UNITS[row.unit]
        a = self.analysis(row.model, row.input)
        kind, _, layer = row.quantity.partition(":")
        if kind in ("params", "trainable_params", "macs", "senet_flops"):
            if row.unit not in UNITS:
                raise InputError(f"unit {row.unit!r} is not one of G, M, K or blank")
            value = senet_flops(a) if kind == "senet_flops" else getattr(a.totals, kind)
            return Decimal(value) / UNITS[row.unit]
        record = next((r for r in a.records if r.label == layer), None)
        if kind in ("layer_params", "output") and record is None:
            raise InputError(f"{row.model} has no layer {layer!r}")
        if kind == "layer_params":
            return Decimal(record.trainable_params)
        if kind == "output":
            if row.unit not in LAYOUTS:
                raise InputError(f"output layout {row.unit!r} is not one of {', '.join(LAYOUTS)}")
            shape = record.output_shapes[0][1:]
            if len(shape) == 1:
                shape = (shape[0], 1, 1)
            return "x".join(str(shape[i]) for i in LAYOUTS[row.unit])
        raise InputError(f"unknown quantity {row.quantity!r}")
