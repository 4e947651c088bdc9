"""The inputs of a training step, made on a device, and the loss taken from what the forward returns.

A step is given what an analysis is given (analysis/inputs.py): one input or several, positional or keyword,
of any dtype (token ids as int64, masks as bool), or a user's example inputs; every tensor among them is the
"input" of the memory model, alive for the whole step. The loss is a reduction of every floating-point
tensor of the output that autograd can differentiate (a classifier's logits, a language model's next-token
scores, auxiliary heads), in float32 as the mixed-precision recipe takes it; an output with none cannot be
trained.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from archcalc.analysis.inputs import Inputs, leaves
from archcalc.errors import InputError, option
from archcalc.formulas.numbers import shape_text


@dataclass(frozen=True)
class Batch:
    """What one step calls the model with: ``model(*args, **kwargs)``."""

    args: tuple
    kwargs: dict[str, Any]

    @classmethod
    def of(cls, *tensors: torch.Tensor) -> Batch:
        """Positional inputs, as they are."""
        return cls(tensors, {})

    def tensors(self) -> list[torch.Tensor]:
        """Every input tensor, positional first, in order."""
        return [t for t in leaves([self.args, self.kwargs]) if isinstance(t, torch.Tensor)]

    def into(self, model: nn.Module):
        return model(*self.args, **self.kwargs)

    @property
    def device(self) -> torch.device:
        tensors = self.tensors()
        return tensors[0].device if tensors else torch.device("cpu")


def made(inputs: Inputs, device: torch.device, dtype: torch.dtype, channels_last: bool = False,
         name: str = "the model") -> Batch:
    """The inputs on ``device`` (sizes as empty meta tensors or random real ones; integers as index 0, or
    drawn below their bound), floating ones of the model's ``dtype``; with ``channels_last`` every 4-d
    floating-point input in torch.channels_last (there must be one)."""
    args, kwargs = inputs.make(device, dtype)
    batch = Batch(args, kwargs)
    if not channels_last:
        return batch
    images = [t for t in batch.tensors() if t.dim() == 4 and t.is_floating_point()]
    if not images:
        given = inputs.text()
        raise InputError(f"{option('channels-last')} needs a 4-d input (N, C, H, W); {name} takes {given}")
    return Batch(*_in_channels_last((args, kwargs)))


def _in_channels_last(value):
    if isinstance(value, torch.Tensor):
        return value.contiguous(memory_format=torch.channels_last) if value.dim() == 4 and value.is_floating_point() \
            else value
    if isinstance(value, (tuple, list)):
        return type(value)(_in_channels_last(v) for v in value)
    if isinstance(value, dict):
        return {k: _in_channels_last(v) for k, v in value.items()}
    return value


def trained_outputs(output, name: str = "the model") -> list[torch.Tensor]:
    """The tensors a step's loss is taken from: every floating-point tensor of the output that needs a
    gradient (a classifier's logits; GoogLeNet's two auxiliary heads beside its own, as its training loss
    weighs them in), as `--pass train` takes them (a row none of them leads to gets no gradient)."""
    trained = [t for t in leaves(output)
               if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad]
    if trained:
        return trained
    shapes = ", ".join(f"{shape_text(t.shape) or 'scalar'} ({str(t.dtype).removeprefix('torch.')})"
                       for t in leaves(output) if isinstance(t, torch.Tensor)) or "no tensor"
    raise InputError(f"{name}'s output ({shapes}) has no floating-point tensor that needs a gradient: there is "
                     f"no loss to train it with (are all its parameters frozen, or is it a gradient the forward took "
                     f"without create_graph=True?)")


def loss_of(output, reduce: str = "sum", name: str = "the model") -> torch.Tensor:
    """The step's loss: the sum (the memory model's) or the mean (the timing's) of each trained output in
    float32, added up (one output: its own reduction, with no addition)."""
    losses = [t.float().sum() if reduce == "sum" else t.float().mean() for t in trained_outputs(output, name)]
    return functools.reduce(operator.add, losses)


def input_bytes(batch: Batch) -> int:
    """The bytes of every input tensor: elements * bytes per element, summed."""
    return sum(t.numel() * t.element_size() for t in batch.tensors())


def input_arithmetic(batch: Batch) -> str:
    """'64*3*32*32 * 4 bytes = 786,432', or one such product per input joined by ' + '."""
    tensors = batch.tensors()
    parts = [f"{'*'.join(map(str, t.shape)) or '1'} * {t.element_size()} bytes" for t in tensors]
    return f"{' + '.join(parts) or 'no input'} = {input_bytes(batch):,}"
