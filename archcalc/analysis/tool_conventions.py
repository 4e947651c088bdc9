"""Named counting conventions: how each tool counts, defined once, from its source and its output.

  paper        conv + linear + matmul multiply-accumulates, bias excluded (the papers' "multiply-adds")
  torchvision  the same count as paper: torchvision's per-model _ops metadata (e.g. ResNet-50 4.09)
  fvcore       paper + BatchNorm (eval) 2 per element (1 without affine) + adaptive_avg_pool2d 1 per
               input element (fvcore 0.1.5 _DEFAULT_SUPPORTED_OPS; other element-wise ops ignored)
  torchinfo    per leaf module, its weight and bias elements x N x the output's spatial size when its
               class name contains "Conv", else x N (torchinfo 1.8 LayerInfo.calculate_macs): bias
               included, BatchNorm counted as N x 2C, functional operations ignored
  thop         thop 0.1.1 profile(): exact torch types only; conv and linear without bias, BatchNorm 4 per
               element, average pooling, softmax; functional operations ignored (archcalc.analysis.thop_rules)
  ptflops      ptflops 0.7.5, pytorch backend: conv and linear with bias, BatchNorm 2, activations and pooling
               1 per element, counted again through the F.* call inside their modules; torch.add, torch.mul,
               torch.matmul counted (archcalc.analysis.ptflops_rules)
  flop_counter 2 x MACs: torch.utils.flop_counter's count (convolution, mm, addmm, bmm; 2 per multiply-add)
  flops        2 x MACs + every element-wise operation archcalc counts
calflops and DeepSpeed's profiler are not defined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from math import prod

from torch import nn

from archcalc.analysis import ptflops_rules, thop_rules
from archcalc.analysis.records import LAYER, OP, LayerRecord
from archcalc.analysis.tracer import layer_names

NAMES = ("paper", "torchvision", "fvcore", "torchinfo", "thop", "ptflops", "flop_counter", "flops")


def _paper(r: LayerRecord, module) -> int:
    return r.macs or 0


def _fvcore(r: LayerRecord, module) -> int:
    count = r.macs or 0
    batch_norm = isinstance(module, nn.modules.batchnorm._BatchNorm) or (r.kind == OP and r.type == "batch_norm")
    if batch_norm:
        affine = module.affine if module is not None else True
        count += prod(r.output_shapes[0]) * (2 if affine else 1)
    if r.type in ("AdaptiveAvgPool2d", "adaptive_avg_pool2d"):
        count += prod(r.input_shapes[0])
    return count


def _torchinfo(r: LayerRecord, module) -> int:
    if module is None or r.kind == OP or any(True for _ in module.children()):
        return 0
    own = [p for name, p in module.named_parameters(recurse=False) if name in ("weight", "bias")]
    if not own or not r.output_shapes:
        return 0
    out = r.output_shapes[0]
    elements = sum(p.numel() for p in own)
    return elements * prod(out[:1] + out[2:]) if "Conv" in type(module).__name__ else out[0] * elements


def _flop_counter(r: LayerRecord, module) -> int:
    return 2 * (r.macs or 0)


def _flops(r: LayerRecord, module) -> int:
    return 2 * (r.macs or 0) + (r.elementwise or 0)


COUNTERS: dict[str, Callable[[LayerRecord, object], int]] = {
    "paper": _paper, "torchvision": _paper, "fvcore": _fvcore, "torchinfo": _torchinfo,
    "thop": thop_rules.count, "ptflops": ptflops_rules.count, "flop_counter": _flop_counter, "flops": _flops,
}


def counts(model: nn.Module, records: tuple[LayerRecord, ...],
           twins: Mapping[tuple[str, int], LayerRecord] | None = None) -> dict[str, dict[int, int]]:
    """convention -> record index -> its count (records that count nothing are left out).
    ptflops counts a layer's own F.* calls: where the records lack them, ``twins`` are the records of
    a trace that kept them, by name and call number."""
    names = layer_names(model)
    modules = {names[id(m)]: m for m in model.modules()}
    twins = twins or {}
    result: dict[str, dict[int, int]] = {name: {} for name in NAMES}
    for r in records:
        module = modules.get(r.name) if r.kind != OP else None
        if r.kind not in (LAYER, OP) and (module is None or any(True for _ in module.children())):
            continue
        for name, counter in COUNTERS.items():
            value = counter(twins.get((r.name, r.call), r) if name == "ptflops" else r, module)
            if value:
                result[name][r.index] = value
    return result


class Counts(Mapping):
    """counts(), worked out the first time a convention is asked for: most views need none."""

    def __init__(self, model: nn.Module, records: tuple[LayerRecord, ...],
                 with_inner: Callable[[], tuple[LayerRecord, ...]] | None = None):
        self._model, self._records, self._with_inner = model, records, with_inner
        self._counts: dict[str, dict[int, int]] | None = None
        self._twins: dict | None = None

    def _all(self) -> dict[str, dict[int, int]]:
        if self._counts is None:
            traced = self._with_inner() if self._with_inner is not None else ()
            self._twins = {(r.name, r.call): r for r in traced}
            self._counts = counts(self._model, self._records, self._twins)
            self._model = self._with_inner = None
        return self._counts

    def with_inner(self, r: LayerRecord) -> LayerRecord:
        """The record with its layer's own torch calls (from the second trace, if one was needed)."""
        self._all()
        return self._twins.get((r.name, r.call), r)

    def __getitem__(self, name: str) -> dict[int, int]:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())
