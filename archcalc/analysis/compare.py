"""Several analyses side by side, each against a baseline: difference and ratio per quantity."""

from __future__ import annotations

from dataclasses import dataclass

from archcalc.analysis.records import Analysis
from archcalc.errors import InputError, option
from archcalc.shown import Shown

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


class Comparison(list, Shown):
    """compare's rows (ComparedModel, a list), with the baseline and the setting they were counted in
    (``context``: input, batch, device, dtype), shown as `archcalc compare` prints them."""

    def __init__(self, rows: list[ComparedModel], baseline: str, context: str = ""):
        super().__init__(rows)
        self.baseline, self.context = baseline, context

    def report(self):
        from archcalc.output.compare_report import compare_report

        return compare_report(self, self.baseline, self.context)


def compare(values: dict[str, dict[str, float]], baseline: str, context: str = "") -> Comparison:
    """values: model -> quantity -> number (in the caller's order); baseline must be one of them."""
    if baseline not in values:
        raise InputError(f"{option('baseline', repr(baseline))} is not among the models compared: {', '.join(values)}")
    base = values[baseline]
    rows = []
    for model, own in values.items():
        difference = {k: own[k] - base[k] for k in own if k in base}
        ratio = {k: (own[k] / base[k] if base[k] else None) for k in own if k in base}
        rows.append(ComparedModel(model, own, difference, ratio))
    return Comparison(rows, baseline, context)
