"""Strings from the command line -> typed values, with one-line errors that say what would work."""

from __future__ import annotations

import re

from archcalc.errors import InputError

_SEPARATORS = re.compile(r"\s*[x×X,*]\s*")


def parse_input(text: str | None) -> tuple[int, ...] | None:
    """'3x224x224' -> (3, 224, 224); '224x224' -> (224, 224); '224' -> (224, 224)."""
    if text is None:
        return None
    parts = _SEPARATORS.split(text.strip())
    example = "use CxHxW or HxW, e.g. --input 3x224x224"
    if not text.strip() or not all(p.isdigit() and p.isascii() for p in parts):
        raise InputError(f"--input {text!r} is not a size; {example}")
    sizes = tuple(int(p) for p in parts)
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) not in (2, 3):
        raise InputError(f"--input {text!r} has {len(sizes)} numbers; {example}")
    if any(s < 1 for s in sizes):
        raise InputError(f"--input {text!r} has a zero size; every size must be at least 1")
    if any(s > 10**7 for s in sizes):
        raise InputError(f"--input {text!r} is larger than 10,000,000 in one dimension; {example}")
    return sizes
