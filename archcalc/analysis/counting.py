"""Checked registries from layer type or operation name to a counting function.

A counter returns a ``Count``: MACs (None = no formula: "not counted", never a silent 0), the
element-wise operations, and the arithmetic of each number (a mapping, or a function that writes it
when a row is shown: the text costs more than the counting). Registering a type or name twice is
an error, so one formula answers for each layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any, NamedTuple

from archcalc.analysis.records import Shape


class Count(NamedTuple):
    macs: int | None
    elementwise: int | None
    formulas: Mapping[str, str] | Callable[[], Mapping[str, str]] = MappingProxyType({})
    note: str = ""


NOT_COUNTED = Count(None, None, {}, "no formula: not counted")


class ModuleCall(NamedTuple):
    """What a module counter sees: the module (for its hyperparameters) and the shapes; ``input`` and
    ``output`` are the first of each (None when there is none), fields rather than properties because
    every counter reads them."""

    module: Any
    inputs: tuple[Shape, ...]
    outputs: tuple[Shape, ...]
    input: Shape | None
    output: Shape | None


@dataclass(frozen=True)
class OpCall:
    """What an operation counter sees: its name, arguments (tensors included) and output shapes."""

    name: str
    args: tuple
    kwargs: Mapping[str, Any]
    inputs: tuple[Shape, ...]
    outputs: tuple[Shape, ...]

    @property
    def output(self) -> Shape:
        return self.outputs[0]

    def arg(self, position: int, keyword: str, default: Any = None) -> Any:
        if keyword in self.kwargs:
            return self.kwargs[keyword]
        return self.args[position] if len(self.args) > position else default


class CounterRegistry:
    def __init__(self, what: str):
        self._what = what
        self._table: dict[Any, Callable] = {}

    def register(self, *keys: Any) -> Callable[[Callable], Callable]:
        def decorate(fn: Callable) -> Callable:
            for key in keys:
                if key in self._table:
                    raise ValueError(f"{self._what} {key!r} already has a counter ({self._table[key].__name__})")
                self._table[key] = fn
            counter_for_type.cache_clear()  # a type that had none (or a base's) may have its own now
            return fn

        return decorate

    def get(self, key: Any) -> Callable | None:
        return self._table.get(key)

    def keys(self) -> list:
        return list(self._table)


MODULES = CounterRegistry("layer type")
OPS = CounterRegistry("operation")


def module_counter(module: Any) -> Callable | None:
    """The counter for a module's type, or for the nearest base type whose forward it keeps."""
    return counter_for_type(type(module))


@cache  # (found once per type: a trace asks for every module it wraps)
def counter_for_type(cls: type) -> Callable | None:
    exact = MODULES.get(cls)
    if exact is not None:
        return exact
    for base in cls.__mro__[1:]:
        fn = MODULES.get(base)
        if fn is not None and getattr(cls, "forward", None) is getattr(base, "forward", None):
            return fn
    return None


def op_name(func: Any) -> str:
    """A Python-level operation's name with dunder and in-place marks removed: __iadd__ -> add."""
    name = getattr(func, "__name__", None) or str(func)
    if name == "__get__":  # a property such as Tensor.real or Tensor.T
        name = getattr(getattr(func, "__self__", None), "__name__", "get")
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name.startswith(("i", "r")) and name[1:] in _ARITHMETIC_DUNDERS:
            name = name[1:]
    return name.rstrip("_") or name


_ARITHMETIC_DUNDERS = {"add", "sub", "mul", "truediv", "floordiv", "matmul", "pow", "div", "and", "or"}
