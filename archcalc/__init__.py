"""archcalc: architecture analysis and cost calculator for PyTorch networks.

    >>> import archcalc
    >>> a = archcalc.analyze("lenet5")            # or your nn.Module, with input_size=(1, 1, 32, 32)
    >>> a.totals.params, a.totals.macs
    (60840, 326520)

Importing the package imports no torch: the pure-arithmetic parts (``archcalc.formulas``) answer in a
blink, and the analysis (``analyze``, ``summary``) loads torch when first called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archcalc.errors import ArchcalcError, ForwardError, InputError

__version__ = "0.1.0"
__all__ = ["Analysis", "ArchcalcError", "ForwardError", "InputError", "LayerRecord", "Totals", "analyze", "check",
           "compare", "memory", "reconcile", "rf", "summary", "time", "__version__"]

if TYPE_CHECKING:
    from archcalc.analysis.records import Analysis, LayerRecord, Totals
    from archcalc.api import analyze, check, compare, memory, reconcile, rf, summary, time

_FUNCTIONS = ("analyze", "check", "compare", "memory", "reconcile", "rf", "summary", "time")
_LAZY = {**dict.fromkeys(_FUNCTIONS, "archcalc.api"),
         "Analysis": "archcalc.analysis.records",
         "LayerRecord": "archcalc.analysis.records", "Totals": "archcalc.analysis.records"}


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (so that ``import archcalc`` stays light)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'archcalc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
