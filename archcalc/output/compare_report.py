"""The report of archcalc compare: one row per model, each quantity against the baseline."""

from __future__ import annotations

from archcalc.analysis.compare import ComparedModel
from archcalc.formulas.numbers import grouped
from archcalc.output.report import INT, Column, Report

_LABELS = {"params": "Params", "macs": "MACs", "flops": "FLOPs", "param_bytes": "Param bytes",
           "activation_bytes": "Activation bytes", "latency_ms": "Latency ms"}


def _versus(row: ComparedModel, key: str, baseline: str) -> str:
    if row.model == baseline:
        return "baseline"
    ratio = row.ratio.get(key)
    diff = row.difference[key]
    sign = "+" if diff >= 0 else "-"
    amount = f"{abs(diff):.3f}" if key == "latency_ms" else grouped(int(abs(diff)))
    share = f" (x{ratio:.4f})" if ratio is not None else ""
    return f"{sign}{amount}{share}"


def compare_report(rows: list[ComparedModel], baseline: str, context: str) -> Report:
    keys = [k for k in _LABELS if k in rows[0].values]
    columns = [Column("model", "Model")]
    for key in keys:
        columns += [Column(key, _LABELS[key], INT if key != "latency_ms" else "text"),
                    Column(f"{key}_vs", f"{_LABELS[key]} vs {baseline}")]
    csv_columns = [Column("model", "Model")]
    for key in keys:
        csv_columns += [Column(key, _LABELS[key]), Column(f"{key}_difference", f"{_LABELS[key]} difference"),
                        Column(f"{key}_ratio", f"{_LABELS[key]} ratio")]
    table_rows = []
    for row in rows:
        cells = {"model": row.model}
        for key in keys:
            value = row.values[key]
            cells[key] = f"{value:.3f}" if key == "latency_ms" else int(value)
            cells[f"{key}_vs"] = _versus(row, key, baseline)
            difference, ratio = row.difference[key], row.ratio[key]
            cells[f"{key}_difference"] = round(difference, 6) if key == "latency_ms" else int(difference)
            cells[f"{key}_ratio"] = None if ratio is None else round(ratio, 6)
        table_rows.append(cells)
    data = {
        "baseline": baseline,
        "rows": [{"model": r.model, **{k: r.values[k] for k in keys},
                  "difference": {k: r.difference[k] for k in keys},
                  "ratio": {k: r.ratio[k] for k in keys}} for r in rows],
    }
    footer = (context, "MACs = multiply-accumulates of conv/linear/matmul; FLOPs = 2 x MACs; each 'vs' cell is the "
                       "difference model - baseline (x the ratio model / baseline)")
    return Report(f"Comparison against {baseline}", tuple(columns), tuple(table_rows), footer, data,
                  csv_columns=tuple(csv_columns))
