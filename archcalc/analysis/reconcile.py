"""archcalc reconcile: each convention's total beside the installed tools' own totals, and where
each convention differs from the papers' count, layer type by layer type."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import torch

from archcalc.analysis.engine import analyse, build, input_shape
from archcalc.analysis.records import Analysis
from archcalc.models.registry import ModelEntry

WHY = {
    "fvcore": {"BatchNorm1d": "BatchNorm counted as 2 per element in eval", "BatchNorm2d": "BatchNorm counted as 2 per element in eval",
               "BatchNorm3d": "BatchNorm counted as 2 per element in eval", "batch_norm": "BatchNorm counted as 2 per element in eval",
               "AdaptiveAvgPool2d": "adaptive average pooling 1 per input element",
               "adaptive_avg_pool2d": "adaptive average pooling 1 per input element"},
    "torchinfo": {"Linear": "bias counted: N x out", "BatchNorm2d": "weight and bias counted: N x 2C",
                  "BatchNorm1d": "weight and bias counted: N x 2C", "Conv2d": "bias counted: N x C_out x H x W",
                  "matmul": "functional matrix multiplies ignored", "conv2d": "functional convolutions ignored",
                  "linear": "functional linear layers ignored"},
    "flops": {},
    "flop_counter": {},
}


@dataclass(frozen=True)
class ToolTotal:
    tool: str
    version: str
    total: int | None
    error: str = ""


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def run_tools(entry: ModelEntry, size, batch: int) -> dict[str, ToolTotal]:
    """fvcore on real CPU tensors, torchinfo on the meta device; a tool that fails says why."""
    shape = input_shape(entry.default_input, size, batch)
    results = {}
    try:
        from fvcore.nn import FlopCountAnalysis

        logging.disable(logging.WARNING)
        model = build(entry, torch.device("cpu"), torch.float32)
        counter = FlopCountAnalysis(model, torch.randn(shape))
        counter.unsupported_ops_warnings(False)
        counter.uncalled_modules_warnings(False)
        results["fvcore"] = ToolTotal("fvcore", _version("fvcore"), int(counter.total()))
    except Exception as error:  # the tool's own failure (tracing, memory): reported, not raised
        results["fvcore"] = ToolTotal("fvcore", _version("fvcore"), None, f"{type(error).__name__}: {error}".splitlines()[0])
    finally:
        logging.disable(logging.NOTSET)
    try:
        from torchinfo import summary

        info = summary(build(entry, torch.device("meta"), torch.float32), input_size=shape, device="meta", verbose=0)
        results["torchinfo"] = ToolTotal("torchinfo", _version("torchinfo"), int(info.total_mult_adds))
    except Exception as error:
        results["torchinfo"] = ToolTotal("torchinfo", _version("torchinfo"), None, f"{type(error).__name__}: {error}".splitlines()[0])
    try:
        from torch.utils.flop_counter import FlopCounterMode

        model = build(entry, torch.device("meta"), torch.float32)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.empty(shape, device="meta"))
        results["flop_counter"] = ToolTotal("torch.utils.flop_counter", torch.__version__, int(counter.get_total_flops()))
    except Exception as error:
        results["flop_counter"] = ToolTotal("torch.utils.flop_counter", torch.__version__, None,
                                            f"{type(error).__name__}: {error}".splitlines()[0])
    return results


def differences(a: Analysis, convention: str) -> list[tuple[str, int]]:
    """(explanation, amount) for each layer type where the convention differs from the papers' MACs."""
    paper = a.by_convention.get("paper", {})
    other = a.by_convention.get(convention, {})
    by_type: dict[str, int] = defaultdict(int)
    for r in a.records:
        delta = other.get(r.index, 0) - paper.get(r.index, 0)
        if delta:
            by_type[r.type] += delta
    if convention == "flop_counter":
        return [("every multiply-accumulate counted as 2 operations (x 2)", a.totals.macs)]
    if convention == "flops":
        macs = a.totals.macs
        return [("every multiply-accumulate counted as 2 operations (x 2)", macs),
                (f"element-wise work counted ({len(by_type)} layer types)", sum(by_type.values()) - macs)]
    why = WHY.get(convention, {})
    return sorted(((f"{t}: {why.get(t, 'counted differently')}", d) for t, d in by_type.items()),
                  key=lambda item: -abs(item[1]))


def reconcile(entry: ModelEntry, size, batch: int) -> tuple[Analysis, dict[str, ToolTotal]]:
    return analyse(entry, size, batch=batch), run_tools(entry, size, batch)

