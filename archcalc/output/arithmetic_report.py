"""Reports of the pure-arithmetic commands and the model list (torch-free)."""

from __future__ import annotations

from archcalc.formulas.bottleneck import BottleneckComparison, as_dict as bottleneck_dict
from archcalc.formulas.numbers import grouped, human, shape_text
from archcalc.formulas.outsize import OutSize
from archcalc.formulas.terms import expanded, total
from archcalc.models.registry import Registry
from archcalc.output.report import FORMULA, INT, Column, Report


def outsize_report(result: OutSize) -> Report:
    base = "(in + 2p - k)/s" if result.dilation == 1 else "(in + 2p - d*(k - 1) - 1)/s"
    rounding = "ceil" if result.ceil_mode else "floor"
    rule = f"{base} + 1" if result.exact else f"{rounding}({base}) + 1"
    data = {
        "input": result.input, "kernel": result.kernel, "stride": result.stride, "padding": result.padding,
        "dilation": result.dilation, "ceil_mode": result.ceil_mode,
        "output": result.output, "exact": result.exact, "formula": result.formula,
    }
    row = {"rule": rule, "arithmetic": result.formula, "output": result.output,
           "exact": "yes" if result.exact else f"no ({rounding})"}
    columns = (Column("rule", "Rule"), Column("arithmetic", "Arithmetic", FORMULA), Column("output", "Output", INT),
               Column("exact", "Exact division"))
    footer = ("in = input size, k = kernel, s = stride, p = padding, d = dilation (lecture 003; PyTorch Conv2d/MaxPool2d)",)
    return Report("Output size", columns, (row,), footer, data)


def bottleneck_report(result: BottleneckComparison) -> Report:
    rows = []
    for design in (result.direct, result.bottleneck):
        rows.append({
            "design": design.name,
            "params": total(design.params).value,
            "activations": total(design.activations).value,
            "memory_arithmetic": expanded(design.params + design.activations),
            "memory": design.memory.value,
            "mults_arithmetic": expanded(design.mults),
            "mults": total(design.mults).value,
            "mults_human": human(total(design.mults).value),
        })
    columns = (
        Column("design", "Design"),
        Column("memory_arithmetic", "Memory = params + activations (values)", FORMULA),
        Column("memory", "Memory", INT),
        Column("mults_arithmetic", "Multiplications", FORMULA),
        Column("mults", "Mults", INT),
        Column("mults_human", "≈"),
    )
    s, c_in = result.size, result.c_in
    footer = (
        f"Input {s}x{s}x{c_in}, {result.kernel}x{result.kernel} conv to {result.c_out} maps, "
        f"spatial size kept; bottleneck: 1x1 conv to {result.c_mid} maps first (lecture 002).",
        f"Ratio direct/bottleneck: memory {result.memory_ratio:.2f}x "
        f"({grouped(result.direct.memory.value)} / {grouped(result.bottleneck.memory.value)}), "
        f"multiplications {result.mults_ratio:.2f}x",
    )
    title = f"Bottleneck layer: {c_in} -> {result.c_mid} -> {result.c_out}"
    return Report(title, columns, tuple(rows), footer, bottleneck_dict(result))


def models_report(registry: Registry) -> Report:
    rows = tuple({
        "name": e.name, "family": e.family, "input": shape_text(e.default_input),
        "description": e.description, "source": e.source,
    } for e in registry)
    columns = (Column("name", "Name"), Column("family", "Family"), Column("input", "Default input (CxHxW)"),
               Column("description", "Description"), Column("source", "Source"))
    data = {"models": [dict(r) for r in rows]}
    return Report(f"Models ({len(rows)})", columns, rows, ("archcalc summary NAME analyses one",), data)
