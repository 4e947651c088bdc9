"""The report of archcalc time."""

from __future__ import annotations

from archcalc.output.report import Column, Report
from archcalc.timing.measure import Timing

_COLUMNS = (
    Column("model", "Model"), Column("device", "Device"), Column("input", "Input (NxCxHxW)"),
    Column("runs", "Runs"), Column("median_ms", "Median ms"), Column("iqr_ms", "IQR ms"),
    Column("min_max", "Min-max ms"), Column("images_per_s", "Images/s"), Column("gflops_per_s", "GFLOP/s"),
)


def time_report(results: list[Timing], method: str) -> Report:
    rows = []
    for t in results:
        row = {"model": t.model, "device": t.device, "input": "x".join(map(str, t.input_shape))}
        if t.error:
            row["runs"] = f"error: {t.error}"
        else:
            row.update({
                "runs": str(t.runs), "median_ms": f"{t.median_ms:.3f}", "iqr_ms": f"{t.iqr_ms:.3f}",
                "min_max": f"{min(t.times_ms):.3f}-{max(t.times_ms):.3f}",
                "images_per_s": f"{t.images_per_s:.1f}", "gflops_per_s": f"{t.gflops_per_s:.2f}",
            })
        rows.append(row)
    data = {"results": [{
        "model": t.model, "device": t.device, "dtype": t.dtype, "batch": t.batch,
        "input_shape": list(t.input_shape), "runs": t.runs,
        "median_ms": None if t.error else t.median_ms, "iqr_ms": None if t.error else t.iqr_ms,
        "min_ms": None if t.error else min(t.times_ms), "max_ms": None if t.error else max(t.times_ms),
        "images_per_s": None if t.error else t.images_per_s, "gflops_per_s": None if t.error else t.gflops_per_s,
        "times_ms": list(t.times_ms), "error": t.error or None,
    } for t in results], "method": method}
    return Report("Forward-pass time", _COLUMNS, tuple(rows), (method,), data)
