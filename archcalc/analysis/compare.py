"""Several analyses side by side, each against a baseline: difference and ratio per quantity."""

from __future__ import annotations

from dataclasses import dataclass

from archcalc.analysis.records import Analysis
from archcalc.errors import InputError

QUANTITIES = ("params", "macs", "flops", "param_bytes", "activation_bytes")


@dataclass(frozen=True)
class ComparedModel:
    model: str
    values: dict[str, float]  # QUANTITIES, plus latency_ms when measured
    difference: dict[str, float]
    ratio: dict[str, float | None]


def totals_of(a: Analysis) -> dict[str, float]:
    t = a.totals
    return {"params": t.params, "macs": t.macs, "flops": t.flops, "param_bytes": t.param_bytes,
            "activation_bytes": t.activation_bytes}


def compare(values: dict[str, dict[str, float]], baseline: str) -> list[ComparedModel]:
    """values: model -> quantity -> number (in the caller's order); baseline must be one of them."""
    if baseline not in values:
        raise InputError(f"--baseline {baseline!r} is not among the models compared: {', '.join(values)}")
    base = values[baseline]
    rows = []
    for model, own in values.items():
        difference = {k: own[k] - base[k] for k in own if k in base}
        ratio = {k: (own[k] / base[k] if base[k] else None) for k in own if k in base}
        rows.append(ComparedModel(model, own, difference, ratio))
    return rows
