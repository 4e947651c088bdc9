"""The report of archcalc memory --fit."""

from __future__ import annotations

from collections.abc import Sequence

from archcalc.formulas.numbers import human_bytes
from archcalc.output.report import INT, Column, Report
from archcalc.training.fit import Fit


def fit_report(fit: Fit, optimizer: str, dtype: str, shape: Sequence[int], device: str = "cpu") -> Report:
    rows = tuple({"batch": b, "predicted_bytes": n, "predicted": human_bytes(n),
                  "fits": "yes" if n <= fit.budget else "no"} for b, n in sorted(fit.tried))
    columns = (Column("batch", "Batch", INT), Column("predicted_bytes", "Predicted step (bytes)", INT),
               Column("predicted", "Predicted"), Column("fits", f"Fits in {human_bytes(fit.budget)}"))
    model = ("the CUDA peak of archcalc memory --device cuda at each batch tried: the step simulated on the meta "
             "device as the caching allocator counts it (cuDNN and cuBLAS workspaces not modelled)" if device == "cuda"
             else "the estimate of archcalc memory at each batch tried (traced on the meta device), the CPU's model; "
                  "--device cuda predicts a GPU's")
    footer = (fit.text(), f"one {optimizer} training step, {dtype}, input {'x'.join(map(str, shape))} per sample: "
                          f"{model}")
    data = {"model": fit.model, "budget_bytes": fit.budget, "batch": fit.batch, "optimizer": optimizer, "dtype": dtype,
            "device": device,
            "tried": [{"batch": b, "predicted_bytes": n} for b, n in sorted(fit.tried)], "text": fit.text()}
    return Report(f"{fit.model}: the largest batch that fits", columns, rows, footer, data)
