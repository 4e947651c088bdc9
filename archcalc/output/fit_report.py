"""The report of archcalc memory --fit."""

from __future__ import annotations

from archcalc.errors import option
from archcalc.formulas.numbers import human_bytes
from archcalc.output.report import INT, Column, Report
from archcalc.training.fit import LARGEST, Fit


def fit_report(fit: Fit) -> Report:
    """The table of the batches tried, the answer and, where it has them, its setting and its confirmation."""
    rows = tuple({"batch": b, "predicted_bytes": n, "predicted": human_bytes(n),
                  "fits": "yes" if n <= fit.budget else "no"} for b, n in sorted(fit.tried))
    columns = (Column("batch", "Batch", INT), Column("predicted_bytes", "Predicted step (bytes)", INT),
               Column("predicted", "Predicted"), Column("fits", f"Fits in {human_bytes(fit.budget)}"))
    cuda = ("the CUDA peak of archcalc memory --device cuda at each batch tried: two steps simulated on the meta "
            "device as the caching allocator counts them (cuDNN and cuBLAS workspaces not modelled)")
    cpu = (f"the CPU peak of archcalc memory at each batch tried: two steps simulated on the meta device, each "
           f"storage until PyTorch frees it; {option('device', 'cuda')} predicts a GPU's")
    if fit.real:  # (a forward that reads values: never on CUDA, which refuses it)
        cpu = ("the CPU peak of archcalc memory at each batch tried: the forward pass reads a tensor's value, so "
               "its two steps ran on real CPU tensors at each, a random input, each storage followed until PyTorch "
               "frees it")
    setting, confirmed = fit.setting, fit.confirmed
    device = setting.device if setting else "cpu"
    model = cuda if device == "cuda" else cpu
    footer = (fit.text(), f"{setting.text()}: {model}" if setting else model[0].upper() + model[1:])
    if confirmed is not None:
        footer += (confirmed.text(),)
    data = {"model": fit.model, "budget_bytes": fit.budget, "batch": fit.batch,
            "optimizer": setting and setting.optimizer, "dtype": setting and setting.dtype, "device": device,
            "amp": setting and setting.amp, "channels_last": bool(setting and setting.channels_last),
            "at_search_limit": fit.batch >= LARGEST, "real_tensors": fit.real,
            "tried": [{"batch": b, "predicted_bytes": n} for b, n in sorted(fit.tried)], "text": fit.text()}
    if confirmed is not None:
        data["measured"] = {"batch": confirmed.batch, "text": confirmed.text(),
                            "runs": [{"batch": r.batch, "bytes": r.total, "fits": r.fits(fit.budget), "note": r.note}
                                     for r in sorted(confirmed.runs, key=lambda r: r.batch)]}
    return Report(f"{fit.model}: the largest batch that fits", columns, rows, footer, data)
