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
                  f"batch {e.batch}, {e.dtype}" + (" (the CPU's model)" if e.peak is not None else ""))
    if e.peak is not None:
        footer += _peak_lines(e.peak)
    totals = {"params_bytes": e.params_bytes, "grads_bytes": e.grads_bytes, "optimizer_bytes": e.optimizer_bytes,
              "activations_bytes": e.activations_bytes, "input_bytes": e.input_bytes,
              "backward_bytes": e.backward_bytes, "total_bytes": e.total_bytes}
    data = {"model": e.model, "batch": e.batch, "input_shape": list(e.input_shape), "optimizer": e.optimizer,
            "dtype": e.dtype, "totals": totals, "arithmetic": e.arithmetic,
            "layers": [dict(r) for r in rows]}
    if e.peak is not None:
        p = e.peak
        data["cuda_peak"] = {"allocated_bytes": p.allocated, "reserved_at_least_bytes": p.reserved,
                             "step_bytes": p.step, "phase": p.phase, "op": p.op,
                             "terms": {t.name: {"tensors": t.tensors, "bytes": t.bytes} for t in p.terms}}
    if measured is not None:
        step = e.predicted_step_bytes
        ratio = measured["peak_bytes"] / step if step else None
        footer.append(f"measured: the step needed {human_bytes(measured['peak_bytes'])} beyond the model and input "
                      f"({measured['method']}); {'simulated' if e.peak is not None else 'estimated'} "
                      f"{human_bytes(step)}" + (f"; measured/{'simulated' if e.peak is not None else 'estimated'} "
                                                f"{ratio:.2f}" if ratio else ""))
        data["measured"] = {**measured, "estimated_step_bytes": step, "ratio": ratio}
    return Report(f"{e.model}: training memory ({e.optimizer}, batch {e.batch})", _COLUMNS, rows, tuple(footer), data)


def _peak_lines(p) -> list[str]:
    return [f"CUDA peak, simulated on the meta device as the caching allocator counts it (max_memory_allocated): "
            f"{human_bytes(p.allocated)} = {p.arithmetic()} bytes (each storage in blocks of 512 bytes), reached in "
            f"the {p.phase} at {p.op}; of it the step's own: {human_bytes(p.step)}",
            f"CUDA reserved: at least {human_bytes(p.reserved)} (the live blocks in 2 MiB and 20 MiB segments, "
            f"without fragmentation); not modelled: cuDNN and cuBLAS workspaces inside an operation"]
