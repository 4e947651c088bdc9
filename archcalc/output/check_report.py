"""The report of archcalc check: paper against computed, row by row."""

from __future__ import annotations

from archcalc.checking.runner import Verdict
from archcalc.output.report import Column, Report

_COLUMNS = (
    Column("table", "Table"), Column("model", "Model"), Column("quantity", "Quantity"),
    Column("paper", "Paper"), Column("computed", "Computed"), Column("difference", "Difference"),
    Column("tolerance", "Tolerance"), Column("result", "Result"),
)


def check_report(verdicts: list[Verdict]) -> Report:
    rows = []
    for v in verdicts:
        unit = f" {v.row.unit}" if v.row.unit and v.row.unit[0] in "GMK" else ""
        rows.append({
            "table": v.row.table, "model": v.row.model + (f" ({v.row.input})" if v.row.input else ""),
            "quantity": v.row.quantity, "paper": v.row.value + unit, "computed": (v.computed + unit) if v.computed else "",
            "difference": v.difference, "tolerance": str(v.row.tolerance),
            "result": "pass" if v.passed else f"FAIL{': ' + v.error if v.error else ''}",
        })
    failed = [v for v in verdicts if not v.passed]
    footer = [f"{len(verdicts) - len(failed)} of {len(verdicts)} rows reproduced"
              + (f"; {len(failed)} failed" if failed else "")]
    footer += [f"{v.row.table}:{v.row.line} {v.row.model} {v.row.quantity}: {v.row.note}"
               for v in verdicts if v.row.note and (not v.passed or str(v.row.tolerance) not in ("round", "exact"))]
    data = {
        "passed": not failed,
        "rows": [{
            "table": v.row.table, "model": v.row.model, "input": v.row.input, "quantity": v.row.quantity,
            "unit": v.row.unit, "paper": v.row.value, "computed": v.computed, "tolerance": str(v.row.tolerance),
            "passed": v.passed, "note": v.row.note, "source": v.row.source, "error": v.error,
        } for v in verdicts],
    }
    return Report("archcalc check: the papers' numbers, recomputed", _COLUMNS, tuple(rows), tuple(footer), data)
