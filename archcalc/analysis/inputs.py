"""What a forward pass is given: positional and keyword inputs, each a size (a TensorSpec: shape with
the batch, dtype) or an example value (a tensor, or a tuple, list or dict holding tensors).

A size becomes a tensor of that shape on the device of the analysis: empty on the meta device,
random on a real one (integers: index 0 everywhere, or values drawn below ``high``, so that token ids
stay inside an embedding's vocabulary). An example tensor keeps its own shape and dtype; on the meta
device it is replaced by an empty meta tensor of the same shape and dtype (no copy of its values), on
a real one it is moved there (a copy only when it lies elsewhere). Anything that is not a tensor (a
flag, a number, None) is passed as it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from math import prod
from types import MappingProxyType
from typing import Any, NamedTuple

import torch

from archcalc.errors import InputError
from archcalc.formulas.numbers import shape_text

Shape = tuple[int, ...]


class TensorSpec(NamedTuple):
    """One input tensor described by its size alone: ``dtype`` None takes the model's dtype."""

    shape: Shape
    dtype: torch.dtype | None = None
    high: int | None = None  # integer inputs on a real device: values drawn in [0, high)


@dataclass(frozen=True)
class Inputs:
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of_shape(cls, shape: Sequence[int], dtype: torch.dtype | None = None) -> Inputs:
        """One positional tensor of ``shape`` (with the batch)."""
        return cls((TensorSpec(checked_shape(shape), dtype),))

    @classmethod
    def of_example(cls, example: Any) -> Inputs:
        """From example inputs: a tensor (one positional input), a tuple or list (positional inputs), or a
        dict (keyword inputs)."""
        if isinstance(example, Mapping):
            return cls((), MappingProxyType(dict(example)))
        if isinstance(example, (tuple, list)):
            return cls(tuple(example))
        return cls((example,))

    # -- what they are --------------------------------------------------------------------
    def tensors(self) -> Iterator[TensorSpec | torch.Tensor]:
        """Every tensor input (sizes and examples), positional first, in order."""
        for value in (*self.args, *self.kwargs.values()):
            yield from leaves(value)

    @property
    def shapes(self) -> tuple[Shape, ...]:
        return tuple(tuple(t.shape) for t in self.tensors())

    @property
    def batch(self) -> int:
        """The number of samples in one forward, as the first input holds them: its first dimension, or, for a
        list of tensors (a detector's images), their number; where the inputs share no first dimension (a graph's
        node features (N, F) and edges (2, E)), shares_batch says so."""
        return next(self._firsts(), 1)

    @property
    def shares_batch(self) -> bool:
        """Whether every input holds the same number of samples (see batch): False for a graph's nodes and edges,
        or a recurrent network given its state (layers, N, H) beside its input (N, T, F)."""
        return len(set(self._firsts())) <= 1

    @property
    def sized(self) -> bool:
        """Whether every input is a size (TensorSpec), none an example tensor."""
        return all(isinstance(t, TensorSpec) for t in self.tensors())

    def one_sample(self) -> Inputs | None:
        """The same sizes with a batch of one, where every input is a size that holds the batch first (None
        where there is none to take: example inputs, inputs that share no batch, a batch of one already)."""
        if not self.sized or not self.shares_batch or self.batch == 1 or self.kwargs or \
                not all(isinstance(t, TensorSpec) and t.shape for t in self.args):
            return None
        return replace(self, args=tuple(t._replace(shape=(1, *t.shape[1:])) for t in self.args))

    def batch_note(self) -> str:
        """What the batch is where the inputs share none ("" where they do): per-sample figures divide by it."""
        if self.shares_batch:
            return ""
        return (f"the inputs ({self.text()}) share no batch dimension: batch {self.batch} is the first input's "
                f"first dimension, and per-sample figures are per one of its {self.batch} rows")

    def _firsts(self) -> Iterator[int]:
        """Each input's number of samples: a tensor's first dimension (a scalar has none), a list's length where it
        holds tensors alone, a tuple's or a dict's values' own."""
        for value in (*self.args, *self.kwargs.values()):
            yield from _samples(value)

    def elements(self) -> int:
        return sum(prod(s) for s in self.shapes)

    def dtypes(self, model_dtype: torch.dtype) -> tuple[torch.dtype, ...]:
        return tuple(t.dtype or model_dtype for t in self.tensors())

    def text(self, batch: bool = True) -> str:
        """'1x3x224x224', or '2x12 (int64), 2x12 (int64)' for several or integer inputs; without the ``batch``
        (a sample's): '3x224x224', '12 (int64), 12 (int64)'."""
        parts = []
        for t in self.tensors():
            shape = shape_text(t.shape if batch else t.shape[1:]) or "scalar"
            integer = t.dtype is not None and not t.dtype.is_floating_point
            parts.append(f"{shape} ({str(t.dtype).removeprefix('torch.')})" if integer else shape)
        return ", ".join(parts) or "no input"

    # -- made for a device ----------------------------------------------------------------
    def make(self, device: torch.device, dtype: torch.dtype, watched: bool = False) -> tuple[tuple, dict[str, Any]]:
        """The positional and keyword values to call the forward with, on ``device``. ``watched``: each
        floating-point one in autograd's sight (a copy of a tensor that requires a gradient, so that the model may
        still write into it), so that the graph of the output says which operations it reaches."""
        def made(value):
            if isinstance(value, (TensorSpec, torch.Tensor)):
                t = one(value)
                if watched and (t.is_floating_point() or t.is_complex()) and t.layout is torch.strided:
                    with torch.enable_grad():
                        t = t.detach().requires_grad_().clone()
                return t
            if isinstance(value, (tuple, list)):
                return type(value)(made(v) for v in value)
            if isinstance(value, Mapping):
                return {k: made(v) for k, v in value.items()}
            return value

        def one(value):
            if isinstance(value, TensorSpec):
                return _tensor(value, device, dtype)
            if device.type == "meta":
                return torch.empty(value.shape, dtype=value.dtype, device=device)
            return value.detach().to(device)

        return tuple(made(a) for a in self.args), {k: made(v) for k, v in self.kwargs.items()}


def checked_shape(shape: Sequence[int]) -> Shape:
    try:
        sizes = tuple(shape)
    except TypeError:
        raise InputError(f"an input size is a sequence of integers, e.g. (1, 3, 224, 224), got {_said(shape)}") \
            from None
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise InputError(f"input sizes must be positive integers with the batch first, e.g. (1, 3, 224, 224), "
                         f"got {_said(shape)}")
    return sizes


def _said(value: Any) -> str:
    """A value as an error message quotes it: its repr, cut to one short line."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def _samples(value: Any) -> Iterator[int]:
    if isinstance(value, (TensorSpec, torch.Tensor)):
        if len(value.shape):
            yield value.shape[0]
    elif isinstance(value, list) and value and all(isinstance(v, (TensorSpec, torch.Tensor)) for v in value):
        yield len(value)
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _samples(v)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _samples(v)


def leaves(value: Any) -> Iterator[TensorSpec | torch.Tensor]:
    if isinstance(value, (TensorSpec, torch.Tensor)):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from leaves(v)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from leaves(v)


def _tensor(spec: TensorSpec, device: torch.device, model_dtype: torch.dtype) -> torch.Tensor:
    dtype = spec.dtype or model_dtype
    if device.type == "meta":
        return torch.empty(spec.shape, device=device, dtype=dtype)
    if dtype.is_floating_point or dtype.is_complex:
        return torch.randn(spec.shape, device=device, dtype=dtype)
    if spec.high is not None and spec.high > 1 and dtype != torch.bool:
        return torch.randint(0, spec.high, spec.shape, device=device, dtype=dtype)
    return torch.zeros(spec.shape, device=device, dtype=dtype)
