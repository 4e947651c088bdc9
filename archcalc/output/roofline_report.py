"""The report of archcalc roofline."""

from __future__ import annotations

from archcalc.analysis.roofline import RooflinePoint
from archcalc.output.report import INT, Column, Report


def roofline_report(model: str, dtype: str, points: list[RooflinePoint], peak_flops: float | None,
                    peak_bytes: float | None, how: str) -> Report:
    columns = [Column("name", "Layer"), Column("type", "Type"), Column("operations", "FLOPs (2xMACs + elem.)", INT),
               Column("bytes", "Bytes moved (min)", INT), Column("intensity", "FLOP/byte")]
    if peak_flops:
        columns += [Column("attainable", "Attainable GFLOP/s"), Column("bound", "Bound")]
    if any(p.time_s for p in points):
        columns += [Column("time", "Measured ms"), Column("achieved", "Achieved GFLOP/s")]
    rows = []
    for p in points:
        row = {"name": p.name, "type": p.type, "operations": p.operations, "bytes": p.bytes,
               "intensity": f"{p.intensity:.2f}"}
        if peak_flops:
            row.update(attainable=f"{p.attainable(peak_flops, peak_bytes) / 1e9:.1f}", bound=p.bound(peak_flops, peak_bytes))
        if p.time_s:
            row.update(time=f"{p.time_s * 1000:.3f}", achieved=f"{p.achieved / 1e9:.2f}")
        rows.append(row)
    footer = ["bytes moved = inputs read once + own weights read once + output written once "
              f"({dtype}, an input at the size its maker wrote: a quantized layer's int8 at 1 byte); FLOP/byte = "
              "arithmetic intensity"]
    if peak_flops:
        ridge = peak_flops / peak_bytes
        footer.append(f"peaks: {peak_flops / 1e9:.1f} GFLOP/s, {peak_bytes / 1e9:.1f} GB/s ({how}); ridge point "
                      f"{ridge:.2f} FLOP/byte: layers below it are memory-bound")
    data = {"model": model, "dtype": dtype, "peak_gflops": peak_flops and peak_flops / 1e9,
            "peak_gbs": peak_bytes and peak_bytes / 1e9, "peaks_from": how if peak_flops else None,
            "layers": [{"name": p.name, "type": p.type, "flops": p.operations, "bytes": p.bytes,
                        "intensity": p.intensity,
                        "attainable_gflops": p.attainable(peak_flops, peak_bytes) / 1e9 if peak_flops else None,
                        "bound": p.bound(peak_flops, peak_bytes) if peak_flops else None,
                        "time_ms": p.time_s * 1000 if p.time_s else None,
                        "achieved_gflops": p.achieved / 1e9 if p.achieved else None} for p in points]}
    return Report(f"{model}: roofline", tuple(columns), tuple(rows), tuple(footer), data)
