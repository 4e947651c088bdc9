"""Arithmetic intensity and the roofline, per layer (Williams, Waterman & Patterson, CACM 2009).

  bytes moved (minimum) = inputs read once + own weights read once + output written once, for the dtype (an
                          input at the element size of the record that made it, where each has one: a quantized
                          layer's int8 input at 1 byte; a sparse one at its indices' and stored values' bytes)
  operations            = 2 x MACs + element-wise operations (FLOPs in the roofline's sense)
  intensity I           = operations / bytes                    [FLOP/byte]
  attainable            = min(peak FLOP/s, I x peak bytes/s)
  bound                 = compute when I >= ridge = peak FLOP/s / peak bytes/s, else memory
Views and other shape-only operations move nothing and are left out; so are containers, and a torch.autograd call in
the forward (differentiated.py), whose work is the gradients of many rows: no one input and output to read its bytes
off.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from archcalc.analysis.records import MODULE, Analysis, LayerRecord

DIFFERENTIATING = frozenset({"autograd.grad", "autograd.backward", "backward"})  # (differentiated.CALLS's rows)


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


def bytes_moved(record: LayerRecord, itemsize: int, sizes: tuple[int, ...] = ()) -> int:
    """``sizes``: each input's element size where it is known (input_sizes), else ``itemsize``, the dtype's; a
    sparse input (a graph's adjacency) at its stored bytes, its indices and values (record.read_bytes)."""
    read = record.read_bytes or ()
    inputs = sum(read[i] if i < len(read) and read[i] is not None else
                 prod(s) * (sizes[i] if i < len(sizes) else itemsize) for i, s in enumerate(record.input_shapes))
    return inputs + record.param_bytes + record.activation_bytes


def input_sizes(record: LayerRecord, records: dict[int, LayerRecord]) -> tuple[int, ...]:
    """Each input's element size, read off the records that made them where every input has one that wrote its
    output (a quantized layer's int8 input: 1 byte, not the analysis dtype's 4); () where not."""
    if len(record.sources) != len(record.input_shapes):
        return ()
    made = [records.get(i) for i in record.sources]
    if any(m is None or not m.activation_elements or len(m.output_shapes) != 1 for m in made):
        return ()
    return tuple(m.activation_bytes // m.activation_elements for m in made)


def points(a: Analysis) -> list[RooflinePoint]:
    result = []
    records = {r.index: r for r in a.records}
    for r in a.records:
        if r.kind == MODULE or r.macs is None or r.type in DIFFERENTIATING:
            continue
        operations = 2 * r.macs + (r.elementwise or 0)
        if operations == 0 or r.activation_bytes == 0:
            continue  # shape-only, views, in-place results: nothing computed or nothing written
        result.append(RooflinePoint(r.label, r.type, operations, bytes_moved(r, a.itemsize, input_sizes(r, records))))
    return result
