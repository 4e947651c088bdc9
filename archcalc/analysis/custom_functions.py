"""A custom torch.autograd.Function in the backward pass: its gradients are what its own ``backward`` runs.

Autograd does not differentiate the operations of a Function's forward (they run with gradients off); it
calls the Function's backward, which may do anything: a straight-through estimator passes ∂y on and costs
nothing, Hugging Face's YOSO runs hashing kernels of its own. So the trace (Tracer(backward=True)) gives
the operations of the forward no gradient (they are made with gradients off) and counts the backward by
running it: the Function's autograd node called once, on a zero ∂y of each output's shape, its
operations counted by their forward formulas, as flop_counter counts whatever runs.

A backward may run part of the forward again with gradients on and ask autograd to differentiate it
(torch.autograd.backward, y.backward(g), torch.autograd.grad): a reversible block rebuilding its inputs
(RevNet, Reformer), a library's checkpointing Function. Autograd's engine runs those gradients' kernels out of
a torch function mode's sight, so Differentiation marks the operations of the run whose outputs the graph
reaches, and they are counted by their backward formulas, as rows are, once each time they are differentiated;
the forward run again is not counted (a memory-saving schedule's work, as for checkpointing below).

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

import contextlib
from collections import Counter
from typing import NamedTuple

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
    """A Function's backward that asks autograd for what the count cannot follow (some gradients only, or a graph
    of them to differentiate again): autograd's engine computes them out of the count's sight."""


class Call(NamedTuple):
    """An operation a Function's backward runs: what its counters see, its input tensors, and its outputs'
    autograd nodes where made with gradients on (None: off), for the differentiation that may follow."""

    call: OpCall
    inputs: list
    nodes: tuple | None


class Differentiation:
    """torch.autograd.backward and torch.autograd.grad while a Function's backward runs (Reformer's reversible
    layers, a checkpointing Function of a library's own: the forward run again with gradients on, then
    differentiated). Each call of the run whose output the graph of the differentiated tensors reaches is marked,
    once for every time it is differentiated; then autograd runs as asked (its kernels unseen, counted by the
    marked calls' backward formulas)."""

    def __init__(self, calls: list[Call]):
        self.calls = calls
        self.times: Counter = Counter()  # index in calls -> how many times autograd differentiated it
        self.asking = False  # (PyTorch's function hands itself, this replacement, to the trace's mode: once is marked)

    def backward(self, tensors, grad_tensors=None, retain_graph=None, create_graph=False, grad_variables=None,
                 inputs=None):
        with self._asked(tensors, inputs, create_graph, False):
            return _AUTOGRAD_BACKWARD(tensors, grad_tensors, retain_graph, create_graph, inputs=inputs)

    def grad(self, outputs, inputs, *args, **kwargs):
        with self._asked(outputs, inputs if inputs is not None else (), kwargs.get("create_graph", False), True):
            return _AUTOGRAD_GRAD(outputs, inputs, *args, **kwargs)

    @contextlib.contextmanager
    def _asked(self, tensors, inputs, create_graph: bool, asked: bool):
        if self.asking:
            yield
            return
        self._mark(tensors, inputs, create_graph, asked)
        self.asking = True
        try:
            yield
        finally:
            self.asking = False

    def _mark(self, tensors, inputs, create_graph: bool, asked: bool) -> None:
        if create_graph:
            raise RunsAutograd("it asks autograd for a graph of the gradients, to differentiate again")
        roots = [t.grad_fn for t in _tensors(tensors) if t.grad_fn is not None]
        reached, leaves, stack = set(), set(), roots
        while stack:
            node = stack.pop()
            if node not in reached:
                reached.add(node)
                variable = getattr(node, "variable", None)  # (AccumulateGrad: a leaf that requires a gradient)
                if variable is not None:
                    leaves.add(id(variable))
                stack.extend(n for n, _ in node.next_functions if n is not None)
        if asked or inputs is not None:  # (every leaf's gradient, or the count would hold work autograd skips)
            wanted = {id(t) for t in _tensors(inputs)}
            if not leaves <= wanted or any(t.grad_fn is not None for t in _tensors(inputs)):
                raise RunsAutograd("it asks autograd for the gradients of some of the inputs only")
        for i, entry in enumerate(self.calls):
            if entry.nodes is not None and any(n in reached for n in entry.nodes if n is not None):
                self.times[i] += 1


_AUTOGRAD_BACKWARD, _AUTOGRAD_GRAD = torch.autograd.backward, torch.autograd.grad
AUTOGRAD = frozenset({_AUTOGRAD_BACKWARD, _AUTOGRAD_GRAD, torch.Tensor.backward})  # (as torch functions see them)


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for t in value if isinstance(t, torch.Tensor)] if isinstance(value, (list, tuple)) else []


def run_backward(node, grads: list[torch.Tensor], calls: list[Call]) -> Differentiation:
    """The node's backward, called as autograd calls it: with gradients off, one ∂y per output (made outside the
    count: zeros of each output's shape); what it asks of torch.autograd is marked on its ``calls``."""
    differentiation = Differentiation(calls)
    with torch.no_grad(), replaced([(torch.autograd, "grad", differentiation.grad),
                                    (torch.autograd, "backward", differentiation.backward)]):
        node.apply(*grads)
    return differentiation


def backward_count(function: str, differentiation: Differentiation, gradient) -> Count:
    """The cost of a Function's backward from the operations it ran, each by its forward formula, but for those
    autograd differentiated: the forward it ran again is not counted (as for checkpointing: a memory-saving
    schedule's, not the model's arithmetic), its gradients are, by their backward formulas (``gradient``: the
    tracer's, (call, inputs) -> Count), once for each time; "not counted" when one of them has no formula (never a
    partial sum)."""
    macs = elementwise = 0
    terms: Counter = Counter()
    uncounted = []
    calls, times = differentiation.calls, differentiation.times
    for i, (call, inputs, _) in enumerate(calls):
        counter = OPS.get(call.name)
        count = counter(call) if counter is not None else NOT_COUNTED
        if times[i] and count.macs is not None:
            count = gradient(call, count, inputs)
        if count.macs is None:
            uncounted.append(f"∂({call.name})" if times[i] else call.name)
            continue
        k = times[i] or 1
        macs += k * count.macs
        elementwise += k * (count.elementwise or 0)
        if count.macs:
            terms[f"∂({call.name})" if times[i] else call.name, count.macs] += k
    if uncounted:
        return Count(None, None, {}, f"{function}.backward runs {', '.join(sorted(set(uncounted)))}: no formula, "
                                     "not counted")
    again = sum(1 for i in range(len(calls)) if times[i])
    note = f"{function}.backward, run on a zero ∂y: {len(calls)} operation{'s' if len(calls) != 1 else ''}" + (
        f", {again} of them a forward run again and differentiated by autograd (their gradients counted, not the "
        f"forward run again)" if again else "")
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
        return Count(None, None, {}, f"{function}.backward calls torch.autograd itself and {str(error).removeprefix('it ')}, "
                                     f"which autograd's engine computes out of the count's sight: not counted")
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return Count(None, None, {}, f"{function}.backward could not run here: {first[:160]}")
