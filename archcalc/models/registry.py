"""The registry: names users type -> how to build the model, its default input and its source.

Entries are data (no torch import), so listing models or rejecting an unknown name is instant;
a builder is imported only when a model is built. A duplicate name is an error.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from archcalc.errors import InputError


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: ``builder`` is 'module:function', called with ``kwargs``."""

    name: str
    family: str
    builder: str
    default_input: tuple[int, ...]  # without the batch: C x H x W for an image model; () when not known
    description: str
    source: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    example: Any = None  # a user's archcalc_input of several sizes or of example inputs (tensors, tuple, dict)
    module: Any = None  # an nn.Module given from Python (archcalc.memory(net, ...)): built as its twin, never run

    def resolve(self) -> Callable[..., Any]:
        if self.family == "user":
            from archcalc.models.user import load_object

            return load_object(self.builder)[0]
        module_name, _, attr = self.builder.partition(":")
        return getattr(importlib.import_module(module_name), attr)


class Registry:
    """Name -> entry, refusing duplicates; unknown names are answered with the closest ones."""

    def __init__(self, entries: list[ModelEntry]):
        table: dict[str, ModelEntry] = {}
        for entry in entries:
            if entry.name in table:
                raise ValueError(f"model {entry.name!r} is registered twice")
            table[entry.name] = entry
        self._entries = MappingProxyType(table)

    def __iter__(self):
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return list(self._entries)

    def get(self, name: str) -> ModelEntry:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
            hint = f"closest: {', '.join(close)}" if close else "none is close"
            raise InputError(
                f"unknown model {name!r} ({hint}); `archcalc models` lists all {len(self)}"
            ) from None
