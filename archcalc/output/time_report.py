"""The report of archcalc time."""

from __future__ import annotations

from archcalc.formulas.numbers import shape_text
from archcalc.output.report import Column, Report
from archcalc.timing.measure import Timing, run_estimate

_COLUMNS = (
    Column("model", "Model"), Column("device", "Device"), Column("input", "Input"),
    Column("runs", "Runs"), Column("median_ms", "Median ms"), Column("iqr_ms", "IQR ms"),
    Column("min_max", "Min-max ms"), Column("images_per_s", "Images/s"), Column("gflops_per_s", "GFLOP/s"),
)


def time_report(results: list[Timing], method: str, training: bool = False, samples: int | None = None,
                epochs: int | None = None) -> Report:
    """The timings; with ``samples`` and ``epochs``, each model's training run estimated from its median step."""
    rows, lines, runs = [], [method], {}
    if samples is not None and epochs is not None:
        for t in results:
            if not t.error:
                seconds, text = run_estimate(t, samples, epochs)
                runs[t.model] = seconds
                lines.append(f"Run estimate: {text}")
    lines += [f"{t.model}: a quantized network, its multiply-accumulates int8 ones: its GFLOP/s are integer "
              f"operations (2 x MACs) per second" for t in results if t.integer and not t.error]
    lines += [f"{t.model}: {t.note}" for t in results if t.note and not t.error]
    for t in results:
        row = {"model": t.model, "device": t.device, "input": t.inputs or shape_text(t.input_shape)}
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
        "input_shape": list(t.input_shape), "inputs": t.inputs or shape_text(t.input_shape), "runs": t.runs,
        "median_ms": None if t.error else t.median_ms, "iqr_ms": None if t.error else t.iqr_ms,
        "min_ms": None if t.error else min(t.times_ms), "max_ms": None if t.error else max(t.times_ms),
        "images_per_s": None if t.error else t.images_per_s, "gflops_per_s": None if t.error else t.gflops_per_s,
        "times_ms": list(t.times_ms), "error": t.error or None, "integer_operations": t.integer,
        "batch_note": t.note or None,
        **({"run_estimate_s": runs.get(t.model), "samples": samples, "epochs": epochs} if runs else {}),
    } for t in results], "method": method, "step": "training" if training else "forward"}
    columns = _COLUMNS
    if any(t.inputs and t.inputs != shape_text(t.input_shape) or len(t.input_shape) != 4 for t in results):
        columns = tuple(Column(c.key, "Samples/s", c.kind) if c.key == "images_per_s" else c for c in columns)
    if runs:
        columns = (*columns, Column("run_min", f"Run min ({samples:,} x {epochs})"))
        for row, t in zip(rows, results):
            if t.model in runs:
                row["run_min"] = f"{runs[t.model] / 60:.1f}"
    title = "Training-step time" if training else "Forward-pass time"
    return Report(title, columns, tuple(rows), tuple(lines), data)
