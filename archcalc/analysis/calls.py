"""What the trace's parts share: a call on its stack (Frame), the tensors in a call's arguments and their shapes,
each output's autograd nodes, and torch-function handling switched off around the trace's own tensor queries."""

from __future__ import annotations

from operator import attrgetter
from typing import NamedTuple

import torch
from torch import nn

from archcalc.analysis import differentiated


# The hooks' own tensor queries (shape, numel, element_size) are not operations of the model:
# switching torch-function handling off around them saves the mode thousands of calls.
NO_TORCH_FUNCTION = torch._C.DisableTorchFunction


def tensors_in(value) -> list[torch.Tensor]:
    """The tensors in an argument, a tuple, list or dict of them (Hugging Face's ModelOutput is one), at any
    depth (flat, in order)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = tuple(value.values())
    elif not isinstance(value, (list, tuple)):
        return []
    found = []
    for item in value:
        if isinstance(item, torch.Tensor):
            found.append(item)
        elif isinstance(item, (list, tuple, dict)):
            found.extend(tensors_in(item))
    return found


_shape = attrgetter("shape")


def shapes_of(tensors: list[torch.Tensor]) -> tuple[tuple[int, ...], ...]:
    return tuple(map(tuple, map(_shape, tensors)))


class Frame(NamedTuple):
    """A module call in progress: what its record needs and, should the forward pass fail there, where
    it failed. Which records were made inside it shows in their indices (index + 1 up to the next
    free index when it returns)."""

    module: nn.Module
    index: int | None  # its record's; None for the model itself when it is not a row
    name: str
    call: int
    depth: int
    parent: int | None  # the index of the record of the module whose forward called it (None: none)
    counter: object  # the layer's counter; None for any other module
    inputs: list
    inner: list  # a counted layer's own torch calls, kept only when asked for (Tracer(inner=True))


new_tuple = tuple.__new__  # a named tuple from its fields in order, without its Python __new__ (Tracer._record)
BACKWARD_RUN = object()  # the counter of the frame a custom Function's backward runs in (Tracer._applied)


def autograd_nodes(outputs) -> tuple:
    """Each output's autograd node, and a view's base's too: an in-place operation on a view (a linear layer's
    output over tokens, then ReLU(inplace=True), as SwinV2's position-bias MLP has it) rebases the view's
    history onto its base, so the view's own node drops out of the graph while its base's stays in it; under
    torch.func.grad, those of each level below (differentiated.nodes_of)."""
    nodes = []
    with NO_TORCH_FUNCTION():  # (tensor queries of the trace's own, not the model's operations)
        for t in outputs:
            nodes.extend(differentiated.nodes_of(t))
    return tuple(nodes)
