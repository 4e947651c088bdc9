"""Strings from the command line -> typed values, with one-line errors that say what would work."""

from __future__ import annotations

import re

from archcalc.errors import InputError

_SEPARATORS = re.compile(r"\s*[x×X,*]\s*")


def parse_input(text: str | None) -> tuple[int, ...] | None:
    """'3x224x224' -> (3, 224, 224); '224x224' -> (224, 224); '784' -> (784,); '3x8x32x32' -> (3, 8, 32, 32):
    a size without the batch, of any rank (engine.input_shape fits it to the model)."""
    if text is None:
        return None
    parts = _SEPARATORS.split(text.strip())
    example = "give the size without the batch, e.g. --input 3x224x224 (an image), 784 (a vector) or 1x16000 (audio)"
    if not text.strip() or not all(p.isdigit() and p.isascii() for p in parts):
        raise InputError(f"--input {text!r} is not a size; {example}")
    sizes = tuple(int(p) for p in parts)
    if len(sizes) > 8:
        raise InputError(f"--input {text!r} has {len(sizes)} numbers; {example}")
    if any(s < 1 for s in sizes):
        raise InputError(f"--input {text!r} has a zero size; every size must be at least 1")
    if any(s > 10**7 for s in sizes):
        raise InputError(f"--input {text!r} is larger than 10,000,000 in one dimension; {example}")
    return sizes


def parse_inputs(texts: list[str] | None) -> tuple[int, ...] | list[tuple[int, ...]] | None:
    """One --input: its size; several (one per positional input of the forward): the list of them."""
    if not texts:
        return None
    sizes = [parse_input(t) for t in texts]
    return sizes[0] if len(sizes) == 1 else sizes
