"""--arg key=value: a family's knobs from the command line, checked against the builder's signature."""

from __future__ import annotations

import ast
import inspect
from typing import Any, Iterable

from archcalc.errors import InputError, argument_option
from archcalc.models.registry import ModelEntry


def parse(pairs: Iterable[str], spec: str | None = None) -> dict[str, Any]:
    """['reduction=8', 'attention=se'] -> {'reduction': 8, 'attention': 'se'} (Python literals, else text): the
    command line's --arg values, or those after a model's name in ``spec`` (split_arguments)."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            if spec is not None:
                raise InputError(f"{spec!r}: {pair!r} is not key=value; {_SPEC_FORM}")
            raise InputError(f"--arg {pair!r} is not key=value, e.g. --arg num_classes=10")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = {"true": True, "false": False, "none": None}.get(text.strip().lower(), text)
        values[key] = value
    return values


def merged(entry: ModelEntry, overrides: dict[str, Any]) -> dict[str, Any]:
    """The entry's keyword arguments with the overrides applied, each checked against the builder."""
    builder = entry.resolve()
    parameters = {name: p for name, p in inspect.signature(builder).parameters.items()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    kwargs = dict(entry.kwargs)
    for key, value in overrides.items():
        if key not in parameters:
            accepted = ", ".join(parameters) or "none"
            raise InputError(f"{entry.name} has no argument {key!r}; it takes: {accepted}")
        default = parameters[key].default
        if default is not inspect.Parameter.empty and default is not None and not _fits(value, default):
            raise InputError(f"{argument_option(key, value)} for {entry.name} must be {type(default).__name__} like "
                             f"its default {default!r}")
        kwargs[key] = value
    return kwargs


def _fits(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list))
    return isinstance(value, type(default))


def with_arguments(entry: ModelEntry, overrides: dict[str, Any]) -> ModelEntry:
    """The entry with its builder's keyword arguments overridden (checked), for the commands that build a
    model from the entry as it stands (time, memory, roofline, reconcile)."""
    if not overrides:
        return entry
    from dataclasses import replace

    return replace(entry, kwargs=merged(entry, overrides))


def split_arguments(spec: str) -> tuple[str, dict[str, Any]]:
    """'se_resnet50@reduction=8,attention=se' -> ('se_resnet50', {'reduction': 8, 'attention': 'se'}): a
    model's own arguments after its name, so that compare can set one model's apart from another's."""
    name, sep, pairs = spec.partition("@")
    if not sep:
        return spec, {}
    if not name or not pairs:
        raise InputError(f"{spec!r}: {_SPEC_FORM}")
    return name, parse((p for p in pairs.split(",") if p), spec)


_SPEC_FORM = "write a model's own arguments as NAME@key=value[,key=value], e.g. se_resnet50@reduction=8"
