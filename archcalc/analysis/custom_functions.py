"""A custom torch.autograd.Function in the backward pass: its gradients are what its own ``backward`` runs.

Autograd does not differentiate the operations of a Function's forward (they run with gradients off); it
calls the Function's backward, which may do anything: a straight-through estimator passes ∂y on and costs
nothing, Hugging Face's YOSO runs hashing kernels of its own. So the trace (Tracer(backward=True)) gives
the operations of the forward no gradient (they are made with gradients off) and counts the backward by
running it: the Function's autograd node called once, on a zero ∂y of each output's shape, its
operations counted by their forward formulas, as flop_counter counts whatever runs.

torch.utils.checkpoint's reentrant CheckpointFunction is the one kept apart: its forward also runs with
gradients off, but its backward runs that forward again with them on and differentiates it, so the
operations inside it get their gradients by formula, as they would without checkpointing (the forward
run again is not counted: archcalc counts the model's arithmetic, not a memory-saving schedule's). When the
trace counts gradients its function runs as that second run does, with gradients on (recomputed), so that each
operation inside knows which of its inputs need one; where none of its inputs needs a gradient, autograd never
calls its backward (PyTorch warns "None of the inputs have requires_grad=True"), and the parameters inside get
none: it runs as it is, its operations made with gradients off.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch.utils.checkpoint import CheckpointFunction

from archcalc.analysis.counting import NOT_COUNTED, OPS, Count, OpCall
from archcalc.formulas.numbers import grouped
from archcalc.patching import replaced

RECOMPUTED = (CheckpointFunction,)  # Functions whose backward differentiates their forward's operations again


def recomputed(apply, cls, args: tuple, kwargs: dict, backward: bool):
    """CheckpointFunction.apply(function, preserve_rng_state, *inputs) in a trace: with ``backward``, and an input
    that needs a gradient, the function run with gradients on, as its backward runs it again; else as it is."""
    function, inputs = args[0], args[2:]
    if backward and not kwargs and any(t.requires_grad for t in inputs if isinstance(t, torch.Tensor)):
        with torch.enable_grad():
            return function(*inputs)
    return apply(cls, *args, **kwargs)


def node_of(outputs: list[torch.Tensor]):
    """The Function's autograd node on its outputs (None: no output needs a gradient, so autograd will
    never call its backward)."""
    for t in outputs:
        node = t.grad_fn
        if isinstance(node, torch.autograd.function.BackwardCFunction):
            return node
    return None


def grads_for(node) -> list[torch.Tensor] | None:
    """Zero ∂y of the shapes the node takes, from its input metadata (None where PyTorch keeps that to
    itself: 2.11 refuses the attribute on a Python Function's node)."""
    try:
        metadata = node._input_metadata
        return [torch.zeros(m.shape, dtype=m.dtype, device=m.device) for m in metadata]
    except (RuntimeError, AttributeError):
        return None


class RunsAutograd(RuntimeError):
    """A Function's backward that calls autograd itself: the gradients it asks for are computed by autograd's
    engine, out of the count's sight, so its count would be short."""


def run_backward(node, grads: list[torch.Tensor]) -> None:
    """The node's backward, called as autograd calls it: with gradients off, one ∂y per output (made
    outside the count: zeros of each output's shape). One that calls torch.autograd.grad or backward raises
    RunsAutograd (before they run)."""

    def refused(*args, **kwargs):
        raise RunsAutograd("it calls torch.autograd itself, whose work is not seen")

    with torch.no_grad(), replaced([(torch.autograd, "grad", refused), (torch.autograd, "backward", refused)]):
        node.apply(*grads)


def backward_count(function: str, calls: list[OpCall]) -> Count:
    """The cost of a Function's backward from the operations it ran (``calls``), each by its forward
    formula; "not counted" when one of them has no formula (never a partial sum)."""
    macs = elementwise = 0
    terms: Counter = Counter()
    uncounted = []
    for call in calls:
        counter = OPS.get(call.name)
        count = counter(call) if counter is not None else NOT_COUNTED
        if count.macs is None:
            uncounted.append(call.name)
            continue
        macs += count.macs
        elementwise += count.elementwise or 0
        if count.macs:
            terms[call.name, count.macs] += 1
    if uncounted:
        return Count(None, None, {}, f"{function}.backward runs {', '.join(sorted(set(uncounted)))}: no formula, "
                                     "not counted")
    note = f"{function}.backward, run on a zero ∂y: {len(calls)} operation{'s' if len(calls) != 1 else ''}"
    text = " + ".join(f"{k} × {name} {grouped(n)}" if k > 1 else f"{name} {grouped(n)}"
                      for (name, n), k in terms.items())
    formulas = {"macs": f"{function}.backward: {text} = {grouped(macs)}" if terms else
                f"{function}.backward: no products"}
    if elementwise:
        formulas["elementwise"] = f"{function}.backward's own element-wise operations: {grouped(elementwise)}"
    return Count(macs, elementwise, formulas, note)


def no_backward(function: str) -> Count:
    return Count(0, 0, {}, f"{function}: no output needs a gradient, so autograd never calls its backward")


def failed(function: str, error: Exception) -> Count:
    if isinstance(error, RunsAutograd):
        return Count(None, None, {}, f"{function}.backward calls torch.autograd itself, whose engine computes out "
                                     f"of the count's sight: not counted")
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return Count(None, None, {}, f"{function}.backward could not run here: {first[:160]}")
