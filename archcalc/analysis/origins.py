"""The public name under which a model's code called a torch operation.

Tools that patch Python attributes (ptflops patches ``F.relu``, ``torch.add``, ``Tensor.add``)
count a call only under the name they patched, so the name matters, not just the operation:
``F.relu(x)`` -> ``torch.nn.functional.relu``, ``torch.relu(x)`` -> ``torch.relu``,
``x.relu()`` -> ``Tensor.relu``. The operators reach a trace as the methods they call
(``x + y`` as ``Tensor.add``, ``x @ w`` as ``Tensor.matmul``); the instruction the calling line runs tells
them apart (an operator's BINARY_OP, a method's CALL): ``x * y`` -> ``Tensor.__mul__``, ``x.mul(y)`` ->
``Tensor.mul``, which ptflops counts and the operator it does not. ``F.max_pool2d(x, 2, return_indices=True)``
(nn.MaxPool2d's call with return_indices, SegNet's and QuickNAT's) reaches a trace as the function it dispatches to,
``F.max_pool2d_with_indices``, and is spelled ``torch.nn.functional.max_pool2d``: what ptflops patched.
"""

from __future__ import annotations

import dis
import sys

import torch
import torch.nn.functional as F

_NAMES: dict = {}
_OPERATORS = {torch.Tensor.add: ("add", "Tensor.__add__"), torch.Tensor.mul: ("mul", "Tensor.__mul__"),
              torch.Tensor.matmul: ("matmul", "Tensor.__matmul__")}
_INSTRUCTIONS: dict = {}  # code object -> _what_runs(code)


def spelling(func, kwargs: dict, depth: int) -> str | None:
    """The name the model called ``func`` by where it is not ``origin(func)``: an operator (operator_spelling), or
    the F.*_pool*d a call with return_indices=True went through (F.max_pool2d -> F.max_pool2d_with_indices,
    torch's boolean_dispatch, whose torch-function call passes return_indices=True on; a direct call of
    F.max_pool2d_with_indices leaves it at its default, False, and keeps its own name)."""
    try:
        dispatched = _DISPATCHED.get(func)
    except TypeError:  # (an unhashable callable)
        return None
    if dispatched is not None:
        return dispatched if kwargs.get("return_indices") is True else None
    return operator_spelling(func, depth + 1)


_WITH_INDICES = "_with_indices"
_DISPATCHED = {getattr(F, name): f"torch.nn.functional.{name[:-len(_WITH_INDICES)]}" for name in dir(F)
               if name.endswith(_WITH_INDICES) and hasattr(F, name[:-len(_WITH_INDICES)])}


def operator_spelling(func, depth: int) -> str | None:
    """For a method an operator also reaches a trace as (``x * y`` as Tensor.mul), the operator's name where the
    frame ``depth`` levels above the caller ran an operator's instruction (BINARY_OP; 3.10's BINARY_MULTIPLY,
    INPLACE_ADD, ...) or called something other than the method by its name (``sum(tensors)`` and
    ``functools.reduce(operator.add, ...)`` reach the operator too); None where the method was called."""
    try:
        entry = _OPERATORS.get(func)
    except TypeError:  # (an unhashable callable)
        return None
    if entry is None:
        return None
    method, twin = entry
    frame = sys._getframe(depth + 1)
    code = frame.f_code
    table = _INSTRUCTIONS.get(code)
    if table is None:
        table = _INSTRUCTIONS[code] = _what_runs(code)
    what = table.get(frame.f_lasti)
    if what is _OPERATOR:
        return twin
    return None if what is None or what == method else twin


_OPERATOR = object()  # (an operator's instruction, in _what_runs's table)


def _what_runs(code) -> dict:
    """offset -> _OPERATOR for an operator's instruction, or for a call the name its callable was loaded by
    (x.mul(y) -> 'mul', sum(...) -> 'sum'): the last load before the call that starts where the call's source
    starts (Python 3.11's positions). On 3.10, without positions, a call is left out: taken for the method's."""
    instructions = list(dis.get_instructions(code))
    table = {}
    for k, ins in enumerate(instructions):
        if ins.opname.startswith(("BINARY_", "INPLACE_")):
            table[ins.offset] = _OPERATOR
        elif ins.opname.startswith(("CALL", "PRECALL")):  # (3.11's PRECALL, once specialised, makes the call)
            where = getattr(ins, "positions", None)
            if where is None or where.lineno is None:
                continue  # (3.10: left None, the method)
            start = (where.lineno, where.col_offset)
            for load in reversed(instructions[:k]):
                at = getattr(load, "positions", None)
                if load.opname.startswith("LOAD_") and at is not None and (at.lineno, at.col_offset) == start:
                    table[ins.offset] = load.argval if isinstance(load.argval, str) else ""
                    break
    return table


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
