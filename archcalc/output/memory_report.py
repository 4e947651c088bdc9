"""The report of archcalc memory."""

from __future__ import annotations

from archcalc.formulas.numbers import human_bytes
from archcalc.training.memory import MemoryEstimate
from archcalc.output.report import INT, Column, Report

_COLUMNS = (Column("name", "Layer"), Column("type", "Type"), Column("saved_tensors", "Saved tensors", INT),
            Column("saved_bytes", "Saved for backward (bytes)", INT))


def memory_report(e: MemoryEstimate, measured: dict | None = None) -> Report:
    rows = tuple({"name": l.name, "type": l.type, "saved_tensors": l.saved_tensors, "saved_bytes": l.saved_bytes}
                 for l in e.layers)
    parts = (("parameters", e.params_bytes, "params"), ("gradients", e.grads_bytes, "grads"),
             ("optimizer state", e.optimizer_bytes, "optimizer"), ("activations", e.activations_bytes, "activations"),
             ("input", e.input_bytes, "input"), ("backward gradients", e.backward_bytes, "backward"))
    footer = [f"{label}: {human_bytes(value)} ({e.arithmetic[key]})" for label, value, key in parts]
    footer.append(f"total: {human_bytes(e.total_bytes)} ({e.total_bytes:,} bytes) for one {e.optimizer} step, "
                  f"batch {e.batch}, {e.dtype}")
    totals = {"params_bytes": e.params_bytes, "grads_bytes": e.grads_bytes, "optimizer_bytes": e.optimizer_bytes,
              "activations_bytes": e.activations_bytes, "input_bytes": e.input_bytes,
              "backward_bytes": e.backward_bytes, "total_bytes": e.total_bytes}
    data = {"model": e.model, "batch": e.batch, "input_shape": list(e.input_shape), "optimizer": e.optimizer,
            "dtype": e.dtype, "totals": totals, "arithmetic": e.arithmetic,
            "layers": [dict(r) for r in rows]}
    if measured is not None:
        step = e.total_bytes - e.params_bytes - e.input_bytes
        ratio = measured["peak_bytes"] / step if step else None
        footer.append(f"measured: the step needed {human_bytes(measured['peak_bytes'])} beyond the model and input "
                      f"({measured['method']}); estimated {human_bytes(step)}"
                      + (f"; measured/estimated {ratio:.2f}" if ratio else ""))
        data["measured"] = {**measured, "estimated_step_bytes": step, "ratio": ratio}
    return Report(f"{e.model}: training memory ({e.optimizer}, batch {e.batch})", _COLUMNS, rows, tuple(footer), data)
