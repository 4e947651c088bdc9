"""Arithmetic intensity and the roofline, per layer (Williams, Waterman & Patterson, CACM 2009).

  bytes moved (minimum) = inputs read once + own weights read once + output written once, for the dtype
  operations            = 2 x MACs + element-wise operations (FLOPs in the roofline's sense)
  intensity I           = operations / bytes                    [FLOP/byte]
  attainable            = min(peak FLOP/s, I x peak bytes/s)
  bound                 = compute when I >= ridge = peak FLOP/s / peak bytes/s, else memory
Views and other shape-only operations move nothing and are left out; so are containers.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from archcalc.analysis.records import MODULE, Analysis, LayerRecord


@dataclass(frozen=True)
class RooflinePoint:
    name: str
    type: str
    operations: int
    bytes: int
    time_s: float | None = None

    @property
    def intensity(self) -> float:
        return self.operations / self.bytes if self.bytes else 0.0

    def attainable(self, peak_flops: float, peak_bytes: float) -> float:
        return min(peak_flops, self.intensity * peak_bytes)

    def bound(self, peak_flops: float, peak_bytes: float) -> str:
        return "compute" if self.intensity * peak_bytes >= peak_flops else "memory"

    @property
    def achieved(self) -> float | None:
        return self.operations / self.time_s if self.time_s else None


def bytes_moved(record: LayerRecord, itemsize: int) -> int:
    inputs = sum(prod(s) for s in record.input_shapes) * itemsize
    return inputs + record.param_bytes + record.activation_bytes


def points(a: Analysis) -> list[RooflinePoint]:
    result = []
    for r in a.records:
        if r.kind == MODULE or r.macs is None:
            continue
        operations = 2 * r.macs + (r.elementwise or 0)
        if operations == 0 or r.activation_bytes == 0:
            continue  # shape-only, views, in-place results: nothing computed or nothing written
        result.append(RooflinePoint(r.label, r.type, operations, bytes_moved(r, a.itemsize)))
    return result
