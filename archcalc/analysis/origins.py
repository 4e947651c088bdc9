"""The public name under which a model's code called a torch operation.

Tools that patch Python attributes (ptflops patches ``F.relu``, ``torch.add``, ``Tensor.add``)
count a call only under the name they patched, so the name matters, not just the operation:
``F.relu(x)`` -> ``torch.nn.functional.relu``, ``torch.relu(x)`` -> ``torch.relu``,
``x.relu()`` -> ``Tensor.relu``. The operators reach a trace as the methods they call
(``x + y`` as ``Tensor.add``, ``x @ w`` as ``Tensor.matmul``); the instruction the calling line runs tells
them apart (an operator's BINARY_OP, a method's CALL): ``x * y`` -> ``Tensor.__mul__``, ``x.mul(y)`` ->
``Tensor.mul``, which ptflops counts and the operator it does not.
"""

from __future__ import annotations

import dis
import sys

import torch
import torch.nn.functional as F

_NAMES: dict = {}
_OPERATORS = {torch.Tensor.add: "Tensor.__add__", torch.Tensor.mul: "Tensor.__mul__",
              torch.Tensor.matmul: "Tensor.__matmul__"}
_INSTRUCTIONS: dict = {}  # code object -> {offset: instruction name}


def operator_spelling(func, depth: int) -> str | None:
    """For a method an operator also reaches a trace as (``x * y`` as Tensor.mul), the operator's name where the
    frame ``depth`` levels above the caller ran an operator's instruction (BINARY_OP; 3.10's BINARY_MULTIPLY,
    INPLACE_ADD, ...); None for anything else."""
    try:
        twin = _OPERATORS.get(func)
    except TypeError:  # (an unhashable callable)
        return None
    if twin is None:
        return None
    frame = sys._getframe(depth + 1)
    code = frame.f_code
    table = _INSTRUCTIONS.get(code)
    if table is None:
        table = _INSTRUCTIONS[code] = {i.offset: i.opname for i in dis.get_instructions(code)}
    return twin if table.get(frame.f_lasti, "").startswith(("BINARY_", "INPLACE_")) else None


def origin(func) -> str:
    try:
        return _NAMES[func]
    except KeyError:
        pass
    except TypeError:  # an unhashable callable
        return getattr(func, "__name__", None) or str(func)
    name = getattr(func, "__name__", None) or str(func)
    if getattr(func, "__objclass__", None) is torch._C.TensorBase:
        text = f"Tensor.{name}"
    elif getattr(F, name, None) is func:
        text = f"torch.nn.functional.{name}"
    elif getattr(torch, name, None) is func:
        text = f"torch.{name}"
    else:
        text = f"{getattr(func, '__module__', None) or '?'}.{name}"
    _NAMES[func] = text
    return text
