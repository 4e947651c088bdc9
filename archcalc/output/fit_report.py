"""The report of archcalc memory --fit."""

from __future__ import annotations

from collections.abc import Sequence

from archcalc.formulas.numbers import human_bytes
from archcalc.output.report import INT, Column, Report
from archcalc.training.fit import Fit


def fit_report(fit: Fit, optimizer: str, dtype: str, shape: Sequence[int]) -> Report:
    rows = tuple({"batch": b, "predicted_bytes": n, "predicted": human_bytes(n),
                  "fits": "yes" if n <= fit.budget else "no"} for b, n in sorted(fit.tried))
    columns = (Column("batch", "Batch", INT), Column("predicted_bytes", "Predicted step (bytes)", INT),
               Column("predicted", "Predicted"), Column("fits", f"Fits in {human_bytes(fit.budget)}"))
    footer = (fit.text(), f"one {optimizer} training step, {dtype}, input {'x'.join(map(str, shape))} per sample: "
                          f"the estimate of archcalc memory at each batch tried (traced on the meta device); it "
                          f"models the step as the CPU holds it: the CUDA caching allocator's rounding and the "
                          f"cuDNN/cuBLAS workspaces are not in it yet")
    data = {"model": fit.model, "budget_bytes": fit.budget, "batch": fit.batch, "optimizer": optimizer, "dtype": dtype,
            "tried": [{"batch": b, "predicted_bytes": n} for b, n in sorted(fit.tried)], "text": fit.text()}
    return Report(f"{fit.model}: the largest batch that fits", columns, rows, footer, data)
