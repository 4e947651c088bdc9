"""torch.autograd.grad called inside a model's forward (a physics-informed network's ∂u/∂x, a gradient penalty, an
energy model's force -∂E/∂x), and torch.autograd.backward or Tensor.backward there: the row of the call and its cost.

Its cost is that of the gradients autograd's engine computes for it. The engine runs a node only where one of its
inputs' edges leads, through the graph, to a tensor asked for (``inputs``; without them, every leaf that requires a
gradient), and computes only the gradients of those edges: a linear layer on the path from u to x gets ∂x, not ∂W,
unless its weight is asked for too; a tensor asked for that is not a leaf stops the walk (its own node does not run
for it). So each row whose output's node runs is counted by its backward formula (counting.GRAD_OPS, the layers'
grad counters), told which of its inputs get a gradient (Needs), once each time the forward differentiates it.

With create_graph=True the gradients are themselves differentiable: a training step then differentiates them again
(second derivatives), which no formula here counts: the row's own backward is "not counted" and a note says so.

The trace runs a forward with gradients off unless it counts the backward; a forward that differentiates needs them
on, and each row's call kept for the count: Tracer(differentiating=True). A trace without them raises Differentiates
at the call, and engine._trace traces the forward again so.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from functools import partial

import torch
from torch import Tensor

from archcalc.analysis.counting import NO_GRADIENT, Count, Needs
from archcalc.formulas.numbers import grouped

_GRAD, _BACKWARD = torch.autograd.grad, torch.autograd.backward
CALLS = {_GRAD: "autograd.grad", _BACKWARD: "autograd.backward", Tensor.backward: "backward"}
_SIGNATURES = {func: inspect.signature(func) for func in CALLS}
SECOND_ORDER = Count(None, None, {}, "its gradients are made with create_graph=True, and the training step "
                                     "differentiates them again: second derivatives, which have no formula here")
_SHOWN = 6  # (terms written out in the arithmetic; the rest summed)


class Differentiates(RuntimeError):
    """The forward calls torch.autograd while the trace keeps no autograd graph: trace it again with one."""


class Asked:
    """What a call differentiates (``roots``), the tensors whose gradients it asks for (``inputs``; None: every leaf
    that requires one, as backward() without inputs), and whether the gradients are made differentiable."""

    def __init__(self, func, args: tuple, kwargs: dict):
        bound = _SIGNATURES[func].bind(*args, **kwargs).arguments
        self.name = CALLS[func]
        first = bound.get("outputs", bound.get("tensors", bound.get("self")))
        self.roots = _tensors(first)
        inputs = bound.get("inputs")
        self.inputs = _tensors(inputs) if inputs is not None and (func is _GRAD or _tensors(inputs)) else None
        self.create_graph = bool(bound.get("create_graph", False))


def _tensors(value) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for t in value if isinstance(t, Tensor)]
    return []


def engine_runs(asked: Asked) -> tuple[set, set, set]:
    """(the nodes autograd's engine runs for the call, the nodes it ends at, the edges (node, output number) it
    computes a gradient for): it runs those from which the graph reaches a tensor asked for (its node if made by an operation, its AccumulateGrad if a
    leaf), a tensor asked for that has a node stopping the walk there."""
    wanted = [t for t in asked.inputs if t.requires_grad] if asked.inputs is not None else None
    stops = {t.grad_fn for t in wanted if t.grad_fn is not None} if wanted is not None else set()
    leaves = {id(t) for t in wanted if t.grad_fn is None} if wanted is not None else None
    roots = [t.grad_fn for t in asked.roots if t.grad_fn is not None]
    order, seen, stack = [], set(), [(node, False) for node in roots]
    while stack:  # (post-order, without recursion: a deep network's graph is thousands of nodes long)
        node, done = stack.pop()
        if done:
            order.append(node)
        elif node not in seen:
            seen.add(node)
            stack.append((node, True))
            stack.extend((n, False) for n, _ in node.next_functions if n is not None and n not in seen)
    runs: set = set()
    targets = set(stops)
    for node in order:  # (children first)
        variable = getattr(node, "variable", None)  # (AccumulateGrad: a leaf that requires a gradient)
        if variable is not None and (leaves is None or id(variable) in leaves):
            targets.add(node)
        elif any(n is not None and (n in runs or n in targets) for n, _ in node.next_functions):
            runs.add(node)
    edges = {(t.grad_fn, t.output_nr) for t in asked.roots if t.grad_fn in runs or t.grad_fn in targets}
    for node in runs:
        edges.update((n, k) for n, k in node.next_functions if n in runs or n in targets)
    return runs, targets, edges


def cost(asked: Asked, kept: Mapping[int, tuple], nodes: Mapping[int, tuple | None],
         names: Mapping[int, str], gradient) -> Count:
    """The call's count: each kept row (index -> (backward counter, call, forward count, input tensors, parameters,
    each output's (node, output number))) whose output's node the engine runs, by ``gradient`` (the tracer's:
    (counter, call, count, needs) -> Count), with the gradients of the inputs the walk reaches; "not counted" when
    one of them has no formula or the engine runs a node no row made (a custom Function's backward)."""
    runs, targets, edges = engine_runs(asked)
    reached = runs | targets
    wanted = {id(t) for t in asked.inputs} if asked.inputs is not None else None
    macs = elementwise = 0
    terms, uncounted, rowed = [], [], set()
    for index, (counter, call, count, inputs, params, made) in kept.items():
        made_nodes = nodes.get(index)
        if not made_nodes or not any(n in runs for n in made_nodes if n is not None):
            continue
        rowed.update(made_nodes)
        needs = Needs(tuple(_gets_gradient(t, reached, wanted) for t in inputs),
                      any(p is not None and p.requires_grad and (wanted is None or id(p) in wanted) for p in params))
        if getattr(counter, "per_output", False):  # (QR's: which of its outputs' gradients the engine computes)
            counter = partial(counter, reached=tuple(pair in edges for pair in made))
        grad = gradient(counter, call, count, needs)
        if grad.macs is None:
            uncounted.append(f"∂({names.get(index, '?')})")
            continue
        macs += grad.macs
        elementwise += grad.elementwise or 0
        if grad.macs:
            terms.append((names.get(index, "?"), grad.macs))
    foreign = sorted({type(n).__name__ for n in runs - rowed if isinstance(n, torch.autograd.function.BackwardCFunction)})
    if foreign:
        uncounted.append(f"the backward of {', '.join(foreign)} (a custom autograd.Function, run by the engine)")
    if uncounted:
        return Count(None, None, {}, f"{asked.name} in the forward differentiates {', '.join(uncounted)}: no formula, "
                                     "not counted")
    what = "every leaf that requires one" if asked.inputs is None else \
        f"{len(asked.inputs)} input{'s' if len(asked.inputs) != 1 else ''} asked for"
    shown = " + ".join(f"∂{name} {grouped(n)}" for name, n in terms[:_SHOWN])
    if len(terms) > _SHOWN:
        shown += f" + {len(terms) - _SHOWN} more rows {grouped(sum(n for _, n in terms[_SHOWN:]))}"
    formulas = {"macs": f"{asked.name}: the gradients on the paths to {what}, each row's by its backward formula: "
                        f"{shown} = {grouped(macs)}" if terms else f"{asked.name}: no products on the paths to {what}"}
    if elementwise:
        formulas["elementwise"] = f"{asked.name}: ∂ through the element-wise operations on those paths, " \
                                  f"{grouped(elementwise)}"
    note = f"{asked.name} in the forward: autograd computes the gradients of {len(terms)} row" \
           f"{'s' if len(terms) != 1 else ''} with products on the paths to {what}"
    return Count(macs, elementwise, formulas, note)


def _gets_gradient(t: Tensor, reached: set, wanted: set | None) -> bool:
    """Whether the engine computes a gradient for this input of a row it runs: a tensor asked for, or one whose node
    it runs (or stops at)."""
    if not isinstance(t, Tensor) or not t.requires_grad:
        return False
    if t.grad_fn is None:
        return wanted is None or id(t) in wanted
    return t.grad_fn in reached


def row_backward(asked: Asked, outputs: list[Tensor]) -> Count:
    """The call's own row in a training step's backward: the gradients of gradients where they were made
    differentiable and need one, nothing where not."""
    if asked.create_graph and any(t.requires_grad for t in outputs):
        return SECOND_ORDER
    return NO_GRADIENT
