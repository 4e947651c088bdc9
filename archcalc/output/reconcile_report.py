"""The report of archcalc reconcile."""

from __future__ import annotations

from archcalc.analysis.reconcile import ToolTotal, differences
from archcalc.analysis.tools import NAMES
from archcalc.analysis.records import Analysis
from archcalc.formulas.numbers import human, shapes_text
from archcalc.output.report import INT, Column, Report


def reconcile_report(a: Analysis, tools: dict[str, ToolTotal]) -> Report:
    paper = a.convention_total("paper")
    rows, data_rows = [], []
    for name in NAMES:
        total = a.convention_total(name)
        tool = tools.get(name)
        if tool is None:
            measured, verdict = "", "no tool to run (definition only)"
        elif tool.total is None and tool.version == "not installed":
            measured, verdict = "", f"{tool.tool} is not installed: {tool.error}"
        elif tool.total is None:
            measured, verdict = "", f"{tool.tool} {tool.version} failed: {tool.error}"
        else:
            measured = tool.total
            gap = tool.total - total
            verdict = f"{tool.tool} {tool.version}: " + ("reproduced exactly" if gap == 0 else f"unexplained difference {gap:+,}")
        explained = differences(a, name) if name not in ("paper", "torchvision") else []
        why = "; ".join(f"{text} {amount:+,}" for text, amount in explained) or "the papers' multiply-adds"
        rows.append({"convention": name, "total": total, "human": human(total), "vs_paper": f"{total - paper:+,}",
                     "tool": measured, "verdict": verdict, "why": why})
        data_rows.append({"convention": name, "total": total, "tool": tool.tool if tool else None,
                          "tool_version": tool.version if tool else None, "tool_total": tool.total if tool else None,
                          "difference_vs_paper": total - paper,
                          "explanation": [{"reason": text, "amount": amount} for text, amount in explained]})
    columns = (Column("convention", "Convention"), Column("total", "archcalc", INT), Column("human", "≈"),
               Column("vs_paper", "vs paper"), Column("tool", "Tool's own total", INT), Column("verdict", "Check"),
               Column("why", "Where the difference comes from"))
    footer = (f"{a.model}, input {shapes_text(a.input_shapes or (a.input_shape,))}; conventions are defined in "
              "archcalc/analysis/tools/ and the README",)
    data = {"model": a.model, "input_shape": list(a.input_shape), "rows": data_rows}
    return Report(f"{a.model}: counting conventions reconciled", columns, tuple(rows), footer, data)
