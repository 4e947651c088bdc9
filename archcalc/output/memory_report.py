"""The report of archcalc memory."""

from __future__ import annotations

from archcalc.errors import option
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
    bound = "an upper bound" if e.total_bytes >= e.peak.allocated else \
        (f"yet {e.peak.allocated - e.total_bytes:,} bytes below the simulated peak: more is in flight in its backward "
         f"than the two gradients of its largest saved activation")
    footer.append(f"sum of the parts: {human_bytes(e.total_bytes)} ({e.total_bytes:,} bytes) for one {e.optimizer} "
                  f"step, batch {e.batch}, {e.dtype}: every part as if alive at once, {bound}"
                  + (f" (without autocast: the peak below runs it in {e.peak.amp})" if e.peak.amp else ""))
    footer += _peak_lines(e.peak)
    totals = {"params_bytes": e.params_bytes, "grads_bytes": e.grads_bytes, "optimizer_bytes": e.optimizer_bytes,
              "activations_bytes": e.activations_bytes, "input_bytes": e.input_bytes,
              "backward_bytes": e.backward_bytes, "total_bytes": e.total_bytes}
    data = {"model": e.model, "batch": e.batch, "input_shape": list(e.input_shape), "inputs": e.peak.inputs,
            "optimizer": e.optimizer,
            "dtype": e.dtype, "totals": totals, "arithmetic": e.arithmetic,
            "layers": [dict(r) for r in rows]}
    p = e.peak
    data["peak"] = {"device": p.device, "amp": p.amp, "channels_last": p.channels_last, "notes": list(p.notes),
                    "allocated_bytes": p.allocated,
                    "reserved_at_least_bytes": p.reserved if p.device == "cuda" else None, "step_bytes": p.step,
                    "steps_bytes": list(p.steps), "at_step": p.at_step, "phase": p.phase, "op": p.op,
                    "terms": {t.name: {"tensors": t.tensors, "bytes": t.bytes} for t in p.terms}}
    if measured is not None:
        step = e.predicted_step_bytes
        each = " and ".join(f"step {i} {human_bytes(b)}" for i, b in enumerate(measured["steps"], 1))
        footer.append(f"measured: the step needed {human_bytes(measured['peak_bytes'])} beyond the model and input "
                      f"({each}; {measured['method']}); simulated {human_bytes(step)}; measured/simulated "
                      f"{measured['peak_bytes'] / step:.2f}")
        data["measured"] = {**measured, "simulated_step_bytes": step, "ratio": measured["peak_bytes"] / step}
        if "held_bytes" in measured:
            footer.append(_held_line(measured, step))
            data["measured"]["ratio_without_held"] = (measured["peak_bytes"] - measured["held_bytes"]) / step
        if "tensors" in measured:
            footer.append(_tensor_line(measured, p))
    return Report(f"{e.model}: training memory ({e.optimizer}, batch {e.batch})", _COLUMNS, rows, tuple(footer), data)


def _peak_lines(p) -> list[str]:
    cuda = p.device == "cuda"
    how = ("CUDA peak, simulated on the meta device as the caching allocator counts it (max_memory_allocated)"
           if cuda else "CPU peak, simulated on the meta device (each storage from the operation that makes it "
                        "until PyTorch frees it)")
    if p.amp:
        how += f", the forward and the loss under torch.autocast({p.device!r}, {p.amp})"
    if p.channels_last:
        how += ", channels-last"
    lines = [f"{how}: {human_bytes(p.allocated)} = {p.arithmetic()} bytes (each storage in blocks of "
             f"{512 if cuda else 64} bytes), reached in the {p.phase} of step {p.at_step} at {p.op} (step 1, which "
             f"makes the optimizer's state, peaks at {human_bytes(p.steps[0])}, step 2 on at "
             f"{human_bytes(p.steps[1])}); of it the step's own: {human_bytes(p.step)}"]
    lines += list(p.notes)
    if cuda:
        lines.append(f"CUDA reserved: at least {human_bytes(p.reserved)} (the live blocks in 2 MiB and 20 MiB "
                     f"segments, without fragmentation); not modelled: cuDNN's workspaces inside an operation, and the "
                     f"workspace PyTorch keeps for cuBLAS from the first matrix product on (8 MiB + 128 KiB a stream, "
                     f"32 MiB on Hopper GPUs; CUBLAS_WORKSPACE_CONFIG sets it)")
    else:
        lines.append(f"not modelled: what the math libraries keep after an operation's first use at a shape "
                     f"({option('measure', 'cpu')} says it apart) and their scratch memory inside one, and the C "
                     f"library's allocator's overhead")
    return lines


def _held_line(measured: dict, step: int) -> str:
    """What the CPU's first step left resident that no tensor holds, and the ratio without it."""
    held = measured["held_bytes"]
    return (f"held by no tensor since step 1: {human_bytes(held)} ({held:,} bytes = the resident set at step 2's "
            f"start - before step 1 - the gradients and the optimizer's state): memory the math libraries make at "
            f"the first use of these shapes (oneDNN's primitive cache, MKL's buffers), not simulated; without it "
            f"measured/simulated {(measured['peak_bytes'] - held) / step:.2f}")


def _tensor_line(measured: dict, p) -> str:
    """The real tensors' peak, followed on the device during the measured steps, against the allocator's and
    the simulation's: what the allocator held beyond the tensors is memory inside operations (workspaces)."""
    t = measured["tensors"]
    allocator = measured["before_bytes"] + measured["peak_bytes"]
    parts = " + ".join(f"{name} {b:,}" for name, b in t["terms"].items() if b)
    return (f"measured tensors: {human_bytes(t['peak_bytes'])} at their peak = {parts} bytes, in the {t['phase']} "
            f"at {t['op']} (simulated {human_bytes(p.allocated)}: tensors measured/simulated "
            f"{t['peak_bytes'] / p.allocated:.3f}); the allocator's peak, {human_bytes(allocator)}, is "
            f"{human_bytes(max(0, allocator - t['peak_bytes']))} above the tensors' (memory inside operations: "
            + ("cuDNN and cuBLAS workspaces)" if p.device == "cuda" else "oneDNN's scratch, the C allocator's own)"))
