"""torch.autograd.grad called inside a model's forward (a physics-informed network's ∂u/∂x, a gradient penalty, an
energy model's force -∂E/∂x), and torch.autograd.backward or Tensor.backward there: the row of the call and its cost.

Its cost is that of the gradients autograd's engine computes for it. The engine runs a node only where one of its
inputs' edges leads, through the graph, to a tensor asked for (``inputs``; without them, every leaf that requires a
gradient), and computes only the gradients of those edges: a linear layer on the path from u to x gets ∂x, not ∂W,
unless its weight is asked for too; a tensor asked for that is not a leaf stops the walk (its own node does not run
for it). So each row whose output's node runs is counted by its backward formula (counting.GRAD_OPS, the layers'
grad counters), told which of its inputs get a gradient (Needs), once each time the forward differentiates it.

With create_graph=True the gradients are themselves differentiable, their operations nodes of a graph of their own
(autograd's engine made them: no row did). A later call in the forward that differentiates them (a PINN's u_xx from
its u_x) runs those nodes too: a matrix product's (mm, addmm, bmm: its gradients' products, M*N*K for each computed,
read off the sizes the node saved), a convolution's and a convolution's backward (_convolution_again), and those
without products (element-wise, views, reductions, norms, pooling: ZERO_PRODUCTS) are counted; any other makes the
call "not counted", never a short count, as does a node that neither a row nor such a call made (run out of the
trace's sight). Their element-wise work is not counted, and the row's arithmetic says so. A first gradient keeps a
row's inner tensors (a GRU's gates, attention's probabilities), so a later call may reach the row from within, not
through its output's node: its inner nodes that run are counted node by node (entered_within). A training step's
backward runs the operations that made such gradients once more, wherever its graph reaches them: the call's row gets
their products as its backward (again), the same way.

Under torch.func.grad each level keeps an autograd graph of its own, and an operation run at an inner level makes a
node at every level below it too (transforms.levels): a row's nodes are those of every level (nodes_of), the nodes
an inner grad's engine made are found at each level below it (made_by_the_engine), and an input needs a gradient at
the level the call differentiates; so grad(grad(u)), jacrev(jacrev(u)) and a Laplacian are counted as a PINN's u_xx
is. A training step's backward is regular autograd's, at the plain tensors under the wrappers; where the forward
computed forward-mode AD's tangents and the loss takes them (a PINN's u_x by jvp or jacfwd), it differentiates the
operations that computed them too, node by node (tangents_made, reverse_over_forward); where forward-mode AD also ran
over a gradient's engine (a PINN's u_xx by hessian, a Hessian-vector product, trained), the operations that computed
the gradients' tangents with the gradients' own (made_by_the_engine): each node the step runs in one set only.

The trace runs a forward with gradients off unless it counts the backward; a forward that differentiates needs them
on, and each row's call kept for the count: Tracer(differentiating=True). A trace without them raises Differentiates
at the call, and engine._trace traces the forward again so.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Mapping
from functools import partial
from math import prod
from typing import NamedTuple

import torch
from torch import Tensor
from torch.utils._pytree import tree_leaves

from archcalc.analysis.counting import NO_GRADIENT, Count, needs_of
from archcalc.analysis import transforms
from archcalc.analysis.transforms import level, levels
from archcalc.formulas.numbers import grouped, shape_text

_GRAD, _BACKWARD = torch.autograd.grad, torch.autograd.backward
CALLS = {_GRAD: "autograd.grad", _BACKWARD: "autograd.backward", Tensor.backward: "backward"}
_SIGNATURES = {func: inspect.signature(func) for func in CALLS}
SECOND_ORDER = Count(None, None, {}, "its gradients, made with create_graph=True, are differentiated again by the "
                                     "step: counted once the step's graph is known (Tracer.differentiated_backward)")
_SHOWN = 6  # (terms written out in the arithmetic; the rest summed)


class Differentiates(RuntimeError):
    """The forward calls torch.autograd while the trace keeps no autograd graph: trace it again with one."""


class Asked(NamedTuple):
    """What a call differentiates (``roots``), the tensors whose gradients it asks for (``inputs``; None: every leaf
    that requires one, as backward() without inputs), and whether the gradients are made differentiable."""

    name: str
    roots: list
    inputs: list | None
    create_graph: bool
    given: tuple = ()  # (the gradients given for the roots, grad_outputs: batched by jacrev's vmap)
    batched: int = 0  # (is_grads_batched: how many vector-Jacobian products, one for each grad_outputs' row)


def asked(func, args: tuple, kwargs: dict) -> Asked:
    """torch.autograd.grad's, torch.autograd.backward's or Tensor.backward's arguments, read."""
    bound = _SIGNATURES[func].bind(*args, **kwargs).arguments
    roots = _tensors(bound.get("outputs", bound.get("tensors", bound.get("self"))))
    inputs = bound.get("inputs")
    inputs = _tensors(inputs) if inputs is not None and (func is _GRAD or _tensors(inputs)) else None
    given = tuple(_tensors(bound.get("grad_outputs", bound.get("grad_tensors", bound.get("gradient")))))
    batched = given[0].shape[0] if bound.get("is_grads_batched", False) and given and given[0].dim() else 0
    return Asked(CALLS[func], roots, inputs, bool(bound.get("create_graph", False)), given, batched)


def training_step(output) -> Asked:
    """What a training step's backward differentiates: the output's tensors that need a gradient, for every leaf."""
    return Asked("backward", [t for t in _tensors(output) if t.requires_grad], None, False)


def _tensors(value) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for t in value if isinstance(t, Tensor)]
    return []


class Walk(NamedTuple):
    """The engine's work for a call: the nodes it runs, those it ends at (the tensors asked for), the edges (node,
    output number) it computes a gradient for, and every node of the differentiated tensors' graph."""

    runs: set
    targets: set
    edges: set
    seen: set


def walk(asked: Asked) -> Walk:
    """The engine runs the nodes from which the graph reaches a tensor asked for (its node if made by an operation,
    its AccumulateGrad if a leaf); a tensor asked for that has a node stops the walk there."""
    wanted = [t for t in asked.inputs if t.requires_grad] if asked.inputs is not None else None
    stops = {t.grad_fn for t in wanted if t.grad_fn is not None} if wanted is not None else set()
    leaves = {id(t) for t in wanted if t.grad_fn is None} if wanted is not None else None
    roots = [t.grad_fn for t in asked.roots if t.grad_fn is not None]
    order, seen, stack, silent = [], set(), [(node, False) for node in roots], []
    while stack:  # (post-order, without recursion: a deep network's graph is thousands of nodes long)
        node, done = stack.pop()
        if done:
            order.append(node)
        elif node not in seen:
            seen.add(node)
            stack.append((node, True))
            live = sent(node)
            silent += [n for (n, _), (m, _) in zip(node.next_functions, live) if n is not None and m is None]
            stack.extend((n, False) for n, _ in live if n is not None and n not in seen)
    runs: set = set()
    targets = set(stops)
    for node in order:  # (children first)
        variable = getattr(node, "variable", None)  # (AccumulateGrad: a leaf that requires a gradient)
        if variable is not None and (leaves is None or id(variable) in leaves):
            targets.add(node)
        elif any(n is not None and (n in runs or n in targets) for n, _ in sent(node)):
            runs.add(node)
    edges = {(t.grad_fn, t.output_nr) for t in asked.roots if t.grad_fn in runs or t.grad_fn in targets}
    for node in runs:
        edges.update((n, k) for n, k in sent(node) if n in runs or n in targets)
    return Walk(runs, targets, edges, seen | _reachable(silent, seen))  # (seen: the whole graph, silent edges too)


def sent(node) -> tuple:
    """The node's edges that carry a gradient (None for one it sends none along): batch norm's backward in eval mode,
    differentiated again, gives no ∂ for its input (its statistics are constants, so its ∂x = ∂y·w/σ does not depend
    on x), and the engine runs nothing behind that edge for it (a gradient penalty through an eval-mode BatchNorm:
    the convolution before it is not differentiated again)."""
    edges = node.next_functions
    if type(node).__name__ == "NativeBatchNormBackwardBackward0" and not getattr(node, "_saved_train", True):
        return tuple((None, k) if i == 1 else (n, k) for i, (n, k) in enumerate(edges))
    return edges


def made_by_the_engine(gradients: list[Tensor], roots: list[Tensor], seen: set, known: set = frozenset()) -> set:
    """The nodes of gradients made with create_graph=True that the differentiated graph did not hold: those of the
    operations autograd's engine ran to make them. Under nested torch.func.grad the engine's operations ran at each
    level below too, each its own nodes: there, those of the gradients' graph that the roots' graph does not hold.
    Where forward-mode AD ran over the engine (hessian, jvp of grad), ``gradients`` holds their tangents too (at the
    jvp's level, below the call's), whose nodes lead back to the forward's tangents' too (``known``: the rows'
    tangents_made, counted with their rows)."""
    top = level(roots[0]) if roots else 0  # (the call's level, whose graph ``seen`` is)
    starts: dict[int, list] = {}
    for t in gradients:
        for u in levels(t):
            starts.setdefault(level(u), []).append(u.grad_fn)
    made: set = set()
    for at, nodes in starts.items():
        forward = seen if at == top else \
            _reachable([u.grad_fn for t in roots for u in levels(t) if level(u) == at], set())
        made |= _reachable(nodes, forward | known)
    return made


def _reachable(starts: list, stops: set) -> set:
    """The nodes reached from ``starts`` (None left out), not through ``stops``."""
    found, stack = set(), [n for n in starts if n is not None]
    while stack:
        node = stack.pop()
        if node not in found and node not in stops:
            found.add(node)
            stack.extend(n for n, _ in node.next_functions if n is not None)
    return found


def nodes_of(t: Tensor) -> list:
    """A tensor's autograd nodes: its own and, for a view, its base's (an in-place operation on the view moves its
    history there), at its own level and at each torch.func.grad level below (transforms.levels)."""
    nodes = []
    for u in levels(t):
        nodes.append(u.grad_fn)
        if u._is_view() and u._base is not None:
            nodes.append(u._base.grad_fn)
    return nodes


def cost(asked: Asked, engine: Walk, kept: Mapping[int, tuple], nodes: Mapping[int, tuple | None],
         names: Mapping[int, str], gradient, engines: set, tangents: set = frozenset()) -> Count:
    """The call's count: each kept row (index -> (backward counter, call, forward count, input tensors, parameters,
    each output's (node, output number))) whose output's node the engine runs, by ``gradient`` (the tracer's:
    (counter, call, count, needs) -> Count), with the gradients of the inputs the walk reaches; then each node of
    ``engines`` (made by an earlier call's engine, create_graph=True) and of ``tangents`` (made by rows to compute
    forward-mode AD's tangents: tangents_made; grad of jvp) that it runs, by second_order. "Not counted" when one of
    them has no formula, or the engine runs a custom Function's backward."""
    runs, targets, edges = engine.runs, engine.targets, engine.edges
    reached = runs | targets
    macs = elementwise = 0
    terms, uncounted = [], []
    for index, counter, needs in rows_run(asked, engine, kept, nodes):
        call, count = kept[index][1:3]
        grad = gradient(counter, call, count, needs)
        if grad.macs is None:
            uncounted.append(f"∂({names.get(index, '?')})")
            continue
        macs += grad.macs
        elementwise += grad.elementwise or 0
        if grad.macs:
            terms.append((f"∂{names.get(index, '?')}", grad.macs))
    for index, inner in entered_within(kept, nodes, runs).items():
        products, kinds = within_products(inner, reached, edges)
        if kinds:
            uncounted.append(f"{', '.join(kinds[:3])} inside {names.get(index, '?')} (reached from within by gradients "
                             f"made before)")
        elif products:
            macs += products
            terms.append((f"∂{names.get(index, '?')} from within", products))
    rows = len(terms)
    second: Counter = Counter()
    for node in runs & engines if engines else ():
        products = second_order(node, reached, edges)
        if products is None:
            uncounted.append(f"{type(node).__name__} (a gradient's operation, differentiated again)")
        elif products[0]:
            second[products] += 1
    tangent: Counter = Counter()
    for node in runs & tangents if tangents else ():  # (reverse over forward: the tangents' operations)
        products = second_order(node, reached, edges)
        if products is None:
            uncounted.append(f"{type(node).__name__} (an operation that computed a tangent, differentiated)")
        elif products[0]:
            tangent[_of_a_tangent(products)] += 1
    foreign = sorted({type(n).__name__ for n in runs if isinstance(n, torch.autograd.function.BackwardCFunction)})
    if foreign:
        uncounted.append(f"the backward of {', '.join(foreign)} (a custom autograd.Function, run by the engine)")
    elif runs:
        unseen = runs - _covered(kept, nodes) - engines - tangents
        if unseen:
            kinds = ", ".join(sorted({type(n).__name__ for n in unseen})[:3])
            uncounted.append(f"{len(unseen)} operation{'s' if len(unseen) != 1 else ''} no row made ({kinds}: run "
                             f"out of the trace's sight)")
    if uncounted:
        return Count(None, None, {}, f"{asked.name} in the forward differentiates {', '.join(uncounted)}: no formula, "
                                     "not counted")
    for (products, what), times in (second + tangent).items():
        macs += times * products
        terms.append((f"{times} × ∂({what})" if times > 1 else f"∂({what})", times * products))
    written = _written(asked, terms, macs, elementwise, rows, sum(second.values()), sum(tangent.values()))
    if asked.create_graph and any(type(n).__name__ == "SafeSoftmaxBackward0" for n in runs):
        written = written._replace(note=f"{written.note}; {_FUSED_ATTENTION}")
    return written


def _of_a_tangent(products: tuple[int, str]) -> tuple[int, str]:
    """second_order's products of an operation that computed a tangent, named so ("a tangent's mm ...")."""
    return products[0], products[1].replace("the gradient's", "a tangent's")


def rows_run(asked: Asked, engine: Walk, kept: Mapping[int, tuple], nodes: Mapping[int, tuple | None]):
    """Each kept row whose output's node the engine runs: (index, its backward counter, which of its gradients the
    engine computes: Needs, the inputs the walk reaches)."""
    reached = engine.runs | engine.targets
    wanted = {id(t) for t in asked.inputs} if asked.inputs is not None else None
    for index, (counter, _call, _count, inputs, params, made) in kept.items():
        made_nodes = nodes.get(index)
        if not made_nodes or not any(n in engine.runs for n in made_nodes if n is not None):
            continue
        needs = needs_of(_call, tuple(_gets_gradient(t, reached, wanted) for t in inputs),
                         [p is not None and _gets_gradient(p, reached, wanted) for p in params])
        if getattr(counter, "per_output", False):  # (QR's: which of its outputs' gradients the engine computes)
            counter = partial(counter, reached=tuple(pair in engine.edges for pair in made))
        yield index, counter, needs


# scaled_dot_product_attention's math kernel (the meta device's) is the one whose gradients can be differentiated again
# (its softmax, _safe_softmax, runs nowhere else)
_FUSED_ATTENTION = ("its gradients through scaled_dot_product_attention are made differentiable: counted as its math "
                    "kernel runs them; where PyTorch picks a fused kernel (the CPU's flash kernel for 4-d q, k and "
                    "v, CUDA's flash and memory-efficient ones) this call fails for real ('derivative ... not "
                    "implemented') unless torch.nn.attention.sdpa_kernel(SDPBackend.MATH) is open")


def entered_within(kept: Mapping[int, tuple], nodes: Mapping[int, tuple | None], runs: set) -> dict[int, set]:
    """The rows the engine enters from within only (index -> the inner nodes it runs): gradients made before with
    create_graph=True kept a row's inner tensors (a GRU's gates, an attention's probabilities, a norm's statistics),
    so differentiating them again reaches the row there, not through its outputs' nodes."""
    if not runs:
        return {}
    entered, claimed = [], set()  # (a node is counted once: by a row its output runs for, or one entered first)
    for index in sorted(kept):
        made_nodes = nodes.get(index)
        if not made_nodes:
            continue
        inner = row_nodes(kept[index][3], made_nodes) & runs
        if any(n in runs for n in made_nodes if n is not None):
            claimed |= inner
        elif inner:
            entered.append((index, inner))
    within = {}
    for index, inner in entered:
        inner -= claimed
        claimed |= inner
        if inner:
            within[index] = inner
    return within


def within_products(inner: set, reached: set, edges: set) -> tuple[int, list[str]]:
    """The products of a row's inner nodes that the engine runs, node by node (second_order's formulas), and the
    kinds of those without one."""
    done = [second_order(node, reached, edges) for node in inner]
    kinds = sorted({type(node).__name__ for node, products in zip(inner, done) if products is None})
    return sum(products[0] for products in done if products is not None), kinds


def from_within(inner: set, step: Walk) -> Count:
    """A row's backward in a training step that reaches it from within only (entered_within): its inner products
    that the step runs; "not counted" where one has no formula."""
    products, kinds = within_products(inner, step.runs | step.targets, step.edges)
    if kinds:
        return Count(None, None, {}, f"the step reaches it from within, through {', '.join(kinds[:3])} (gradients "
                                     f"made with create_graph=True kept its inner tensors): no formula, not counted")
    return Count(products, 0, {"macs": f"reached from within (gradients made with create_graph=True kept its inner "
                                       f"tensors): its inner products the step runs, node by node = "
                                       f"{grouped(products)}",
                               "elementwise": "its element-wise work not counted"})


def _written(asked: Asked, terms: list, macs: int, elementwise: int, rows: int, again: int, tangents: int = 0) -> Count:
    """The call's count with its arithmetic: each term (what, MACs), the first _SHOWN written out; ``rows`` of them
    rows' gradients, the rest ``again`` products of gradients made before and ``tangents`` products that computed
    forward-mode AD's tangents."""
    what = "every leaf that requires one" if asked.inputs is None else \
        f"{len(asked.inputs)} input{'s' if len(asked.inputs) != 1 else ''} asked for"
    shown = " + ".join(f"{name} {grouped(n)}" for name, n in terms[:_SHOWN])
    if len(terms) > _SHOWN:
        shown += f" + {len(terms) - _SHOWN} more {grouped(sum(n for _, n in terms[_SHOWN:]))}"
    formulas = {"macs": f"{asked.name}: the gradients on the paths to {what}, each by its backward formula: "
                        f"{shown} = {grouped(macs)}" if terms else f"{asked.name}: no products on the paths to {what}"}
    if elementwise:
        formulas["elementwise"] = f"{asked.name}: ∂ through the element-wise operations on those paths, " \
                                  f"{grouped(elementwise)}" + (", not those of the gradients differentiated again"
                                                               if again else "") + (
                                      ", not those that computed tangents" if tangents else "")
    note = f"{asked.name} in the forward: autograd computes the gradients of {rows} row{'s' if rows != 1 else ''} " \
           f"with products on the paths to {what}" + (
               f", and of {again} product{'s' if again != 1 else ''} of the gradients made before (second derivatives)"
               if again else "") + (
               f", and of {tangents} product{'s' if tangents != 1 else ''} that computed forward-mode AD's tangents "
               f"(reverse over forward)" if tangents else "")
    return Count(macs, elementwise, formulas, note)


# The nodes of a gradient's operations whose own gradients have no products: element-wise, views, reductions, copies.
ZERO_PRODUCTS = frozenset({
    "AddBackward0", "AddBackward1", "SubBackward0", "SubBackward1", "RsubBackward0", "RsubBackward1", "MulBackward0",
    "MulBackward1", "DivBackward0", "DivBackward1", "NegBackward0", "PowBackward0", "PowBackward1", "ExpBackward0",
    "LogBackward0", "SqrtBackward0", "RsqrtBackward0", "ReciprocalBackward0", "AbsBackward0", "SgnBackward0",
    "TanhBackward0", "SigmoidBackward0", "TanhBackwardBackward0", "SigmoidBackwardBackward0",
    "ThresholdBackwardBackward0", "SoftplusBackwardBackward0", "EluBackwardBackward0", "LeakyReluBackwardBackward0",
    "GeluBackwardBackward0", "SinBackward0", "CosBackward0", "WhereBackward0", "ClampBackward1", "MaximumBackward0",
    "MinimumBackward0", "AddcmulBackward0", "AddcdivBackward0", "LerpBackward0", "LerpBackward1",
    "TBackward0", "ViewBackward0", "ReshapeAliasBackward0", "UnsafeViewBackward0", "ExpandBackward0",
    "PermuteBackward0", "TransposeBackward0", "TransposeBackward1", "SqueezeBackward0", "SqueezeBackward1",
    "SqueezeBackward2", "UnsqueezeBackward0", "SelectBackward0", "SliceBackward0", "SelectBackwardBackward0",
    "SliceBackwardBackward0", "IndexBackward0", "CloneBackward0", "ToCopyBackward0", "CopyBackwards",
    "CatBackward0", "StackBackward0", "SplitBackward0", "SplitWithSizesBackward0", "UnbindBackward0",
    "SumBackward0", "SumBackward1", "MeanBackward0", "MeanBackward1", "AliasBackward0",
    "NarrowBackward0", "AsStridedBackward0", "AsStridedBackward1", "ViewAsRealBackward0", "ViewAsComplexBackward0",
    "SoftmaxBackwardDataBackward0", "LogSoftmaxBackwardDataBackward0", "NativeLayerNormBackwardBackward0",
    "NativeBatchNormBackwardBackward0",
    # (and the nodes inside a row's operations, which a gradient made before may reach: a GRU's gates, an attention's
    # probabilities, a norm's statistics)
    "UnsqueezeBackward1", "UnsafeSplitBackward0", "UnsafeSplitWithSizesBackward0", "ChunkBackward0",
    "RepeatBackward0", "FlipBackward0", "RollBackward0", "Rot90Backward0", "GatherBackward0", "IndexSelectBackward0",
    "MaskedFillBackward0", "MaskedFillBackward1", "IndexFillBackward0", "IndexFillBackward1", "ScatterBackward0",
    "ScatterBackward1", "ScatterAddBackward0", "IndexPutBackward0", "IndexAddBackward0", "UnsafeIndexBackward0",
    "ConstantPadNdBackward0", "TrilBackward0", "TriuBackward0", "DiagonalBackward0", "DiagEmbedBackward0",
    "NarrowCopyBackward0", "ClampBackward0", "ClampMinBackward0", "ClampMinBackward1", "ClampMaxBackward0",
    "ClampMaxBackward1", "ReluBackward0", "ThresholdBackward0", "ThresholdBackward1", "HardtanhBackward0",
    "HardtanhBackwardBackward0", "GeluBackward0", "SiluBackward0", "MishBackward0", "EluBackward0", "EluBackward1",
    "LeakyReluBackward0", "LeakyReluBackward1", "SoftplusBackward0", "HardswishBackward0", "HardswishBackwardBackward0",
    "HardsigmoidBackward0", "LogSigmoidBackward0", "LogSigmoidBackwardBackward0", "Log1PBackward0", "Log2Backward0",
    "Log10Backward0", "Exp2Backward0", "Expm1Backward0", "ErfBackward0", "ErfcBackward0", "ErfinvBackward0",
    "TanBackward0", "AtanBackward0", "Atan2Backward0", "AsinBackward0", "AcosBackward0", "SinhBackward0",
    "CoshBackward0", "LogitBackward0", "SoftmaxBackward0", "LogSoftmaxBackward0", "SafeSoftmaxBackward0",
    "CumsumBackward0", "ProdBackward0", "ProdBackward1", "MaxBackward0", "MaxBackward1", "MinBackward0",
    "MinBackward1", "AmaxBackward0", "AminBackward0", "StdBackward0", "VarBackward0", "StdMeanBackward0",
    "VarMeanBackward0", "NormBackward0", "NormBackward1", "NormBackward2", "NormBackward3",
    "LinalgVectorNormBackward0", "NativeDropoutBackward0", "NativeDropoutBackwardBackward0", "FusedDropoutBackward0",
    "NativeLayerNormBackward0", "NativeGroupNormBackward0", "NativeBatchNormBackward0", "BatchNormWithUpdateBackward0",
    "BatchNormNoUpdateBackward0", "NativeBatchNormLegitBackward0", "FusedRmsNormBackward0",
})
# (pooling, padding and resampling: windows read and written, no products; their own backward's too)
_ZERO_FAMILIES = ("MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool", "FractionalMaxPool", "ReflectionPad",
                  "ReplicationPad", "Upsample",
                  "SqueezeBackward", "UnsqueezeBackward")  # (vmap's squeeze of a batched dimension: SqueezeBackward5)
# (a C++ node by its name: forward-mode AD's identity, which a dual tensor's view passes through)
_ZERO_NAMED = frozenset({"torch::autograd::Identity"})


def _convolution_again(node, received: tuple[bool, bool]) -> tuple[int, str]:
    """A convolution's backward (gI = ∂x and gW = ∂W, from gO = ∂y) differentiated again, given ggI and ggW
    (``received``: which of its outputs get a gradient). PyTorch's _convolution_double_backward (2.13) computes, for
    ggI, ggO = conv(ggI, W) and gW = a convolution of ggI with gO, and for ggW, ggO += conv(x, ggW) and gI = one of
    ggW with gO, whichever of gO, x and W need a gradient (a frozen W's gW too): two convolutions for each, each as
    many products as the forward one (C_in/g * k^d per output element; per input element, transposed). But gW: a
    convolution of ggI by gO (stride and dilation swapped) computed at its full extent, o = (x + 2p - s(gO - 1) - 1)
    // d + 1 in each dimension, then narrowed to k, so C_in/g * o^d per element of gO: more than k^d where a strided
    forward leaves input rows over (7x7 stride 2 padding 3 on 32: 8x8)."""
    weight = node._saved_weight
    per = node._saved_input if node._saved_transposed else node._saved_grad_output
    kernel = tuple(weight.shape[2:])
    macs = per.numel() * weight.shape[1] * prod(kernel)
    wide = kernel
    if received[0] and not node._saved_transposed:  # (gW's full extent)
        x, dy = node._saved_input.shape[2:], node._saved_grad_output.shape[2:]
        wide = tuple((x[i] + 2 * node._saved_padding[i] - node._saved_stride[i] * (dy[i] - 1) - 1) //
                     node._saved_dilation[i] + 1 for i in range(len(kernel)))
    terms = 2 * sum(received)
    total = terms * macs + (per.numel() * weight.shape[1] * (prod(wide) - prod(kernel)) if received[0] else 0)
    text = f"the gradient's convolution {shape_text(tuple(per.shape))}*({'*'.join(map(str, weight.shape[1:]))}), " \
           f"{terms} times"
    if wide != kernel:
        text += f", ∂W's at its full extent {'*'.join(map(str, wide))} (narrowed to {'*'.join(map(str, kernel))})"
    return total, text


# A matrix-vector or vector-vector product's node: (the saved tensor whose size each gradient's products are, the
# positions of its two factors among its inputs)
_VECTORS = {"MvBackward0": ("_saved_self", (0, 1)), "AddmvBackward0": ("_saved_mat", (1, 2)),
            "DotBackward0": ("_saved_self", (0, 1)), "VdotBackward0": ("_saved_self", (0, 1))}


def second_order(node, reached: set, edges: set) -> tuple[int, str] | None:
    """The products of a gradient's operation differentiated again, and what they are: a matrix product's gradients
    (each M*N*K, for the inputs whose edge the engine computes: 'the gradient's mm (50*16)x(16*2), 1 of 2'), a
    convolution's (each as many as its forward), a convolution's backward's (_convolution_again), an operation written
    in place on a view's (_in_place_on_a_view); (0, '') for ZERO_PRODUCTS; None for any other node. ``reached``: the
    nodes the engine runs or ends at (an input needs a gradient where its edge leads to one); ``edges``: the (node,
    output number) it computes a gradient for."""
    kind = type(node).__name__
    if kind in ZERO_PRODUCTS or kind.startswith(_ZERO_FAMILIES) or \
            (kind == "CppFunction" and node.name() in _ZERO_NAMED):
        return 0, ""
    if kind == "CopySlices":
        return _in_place_on_a_view(node, reached, edges)
    needs = [n is not None and n in reached for n, _ in node.next_functions]
    try:
        if kind in _VECTORS:  # (a matrix-vector or vector-vector product: each gradient as many products)
            computed = sum(needs[i] for i in _VECTORS[kind][1])
            matrix = getattr(node, _VECTORS[kind][0])
            what = "x".join(map(str, matrix.shape))
            return computed * matrix.numel(), f"the gradient's {kind.removesuffix('Backward0').lower()} " \
                                              f"({what}), {computed} of 2"
        if kind == "MmBackward0":
            (m, k), n = node._saved_self_sym_sizes, node._saved_mat2_sym_sizes[1]
            b, computed = 1, needs[0] + needs[1]
        elif kind == "AddmmBackward0":
            (m, k), n = node._saved_mat1_sym_sizes, node._saved_mat2_sym_sizes[1]
            b, computed = 1, needs[1] + needs[2]
        elif kind == "TrilinearBackward0":  # (a bilinear layer's gradient: a _trilinear, each input's again)
            space = _trilinear_space(node)
            computed = sum(needs[:3])
            return computed * prod(space), f"the gradient's _trilinear over {'x'.join(map(str, space))}, " \
                                           f"{computed} of 3"
        elif kind == "ConvolutionBackwardBackward0":  # (a convolution's ∂x or ∂W, differentiated again)
            return _convolution_again(node, ((node, 0) in edges, (node, 1) in edges))
        elif kind == "ConvolutionBackward0":  # (a convolution a gradient's operations ran: ∂x, ∂W as its forward's)
            weight, computed = node._saved_weight, needs[0] + needs[1]
            per = node._saved_input.shape if node._saved_transposed else node._input_metadata[0].shape
            kernel = "*".join(map(str, weight.shape[1:]))
            return computed * prod(per) * weight.shape[1] * prod(weight.shape[2:]), \
                f"the gradient's convolution {shape_text(tuple(per))}*({kernel}), {computed} of 2"
        elif kind in ("BmmBackward0", "BaddbmmBackward0", "AddbmmBackward0"):
            first, second, at = ("_saved_self", "_saved_mat2", 0) if kind == "BmmBackward0" else \
                ("_saved_batch1", "_saved_batch2", 1)
            left, right = getattr(node, first), getattr(node, second)
            k = right.shape[-2] if right is not None else left.shape[-1]
            b = (left if left is not None else right).shape[0]
            m = left.shape[1] if left is not None else node._input_metadata[0].shape[-2]
            n = right.shape[2] if right is not None else node._input_metadata[0].shape[-1]
            computed = needs[at] + needs[at + 1]
        else:
            return None
    except (AttributeError, RuntimeError, TypeError, ValueError):  # (a PyTorch that keeps them otherwise)
        return None
    name = kind.removesuffix("Backward0").lower()
    batch = f"{b}x" if b > 1 else ""
    return computed * b * m * n * k, f"the gradient's {name} {batch}({m}*{k})x({k}*{n}), {computed} of 2"


def _in_place_on_a_view(node, reached: set, edges: set) -> tuple[int, str] | None:
    """A CopySlices: an operation written in place on a view (``x[:, :k] += y``; a gradient's copy_ into an as_strided
    view, as adaptive_avg_pool2d's on a channels-last input makes), differentiated again: the base's gradient is the
    incoming one with the view's part taken out (no products), the view's goes through the operation's own backward,
    which a PyTorch from 2.14 shows (_wrapped_node). An older one does not: an operation with one operand besides the
    view (copy_, add_, mul_: its edges are the base's and that one's) is element-wise; one with more (addmm_, addr_)
    is not known, None."""
    wrapped = getattr(node, "_wrapped_node", None)
    if wrapped is not None:
        return second_order(wrapped, reached, edges)
    return (0, "") if len(node.next_functions) <= 2 else None


def _trilinear_space(node) -> tuple[int, ...]:
    """The index space a _trilinear(i1, i2, i3, expand1, expand2, expand3, sumdim) multiplies over: each input with
    size-1 dimensions put in at its expand positions, the largest size at each (nn.Bilinear's: N x out x in1 x in2);
    each of its gradients is a _trilinear over the same space."""
    shapes = []
    for tensor, expand in ((node._saved_i1, node._saved_expand1), (node._saved_i2, node._saved_expand2),
                           (node._saved_i3, node._saved_expand3)):
        shape = list(tensor.shape)
        for at in sorted(expand):
            shape.insert(at, 1)
        shapes.append(shape)
    return tuple(max(sizes) for sizes in zip(*shapes))


def _covered(kept: Mapping[int, tuple], nodes: Mapping[int, tuple | None]) -> set:
    """The nodes the rows made (row_nodes of each)."""
    return set().union(*(row_nodes(entry[3], nodes[index]) for index, entry in kept.items() if nodes.get(index)))


def row_nodes(inputs: list, made: tuple) -> set:
    """The nodes one row made: its output nodes and those behind them down to its inputs' (a linear layer's
    AddmmBackward0 and the TBackward0 of its weight; a counted layer's inside), its leaves' AccumulateGrad. An input
    the row wrote in place (ReLU(inplace=True), ``out += x``) holds the row's own node now: its node before the row,
    behind that one, is where the row begins."""
    own = {n for n in made if n is not None}
    given = {n for t in tree_leaves(inputs) if isinstance(t, Tensor) for n in nodes_of(t) if n is not None}
    stops = (given - own) | {n for node in given & own for n, _ in node.next_functions if n is not None}
    inside: set = set()
    stack = [n for n in own if n not in stops]
    while stack:
        node = stack.pop()
        if node not in inside:
            inside.add(node)
            stack.extend(n for n, _ in node.next_functions if n is not None and n not in stops)
    return inside


def _gets_gradient(t: Tensor, reached: set, wanted: set | None) -> bool:
    """Whether the engine computes a gradient for this input of a row it runs: a tensor asked for, or one whose node
    it runs (or stops at), at the level the call differentiates (under torch.func.grad; a jvp's wrapper inside it
    needs none at its own level, the grad level's tensor under it does: grad of jvp)."""
    if not isinstance(t, Tensor):
        return False
    chain = levels(t)
    if not any(u.requires_grad for u in chain):
        return False
    if t.requires_grad and t.grad_fn is None and (wanted is None or id(t) in wanted):
        return True
    return any(u.grad_fn in reached if u.grad_fn is not None else wanted is not None and id(u) in wanted
               for u in chain)


def row_backward(asked: Asked, outputs: list[Tensor]) -> Count:
    """The call's own row in a training step's backward, as the pass leaves it: nothing where its gradients were not
    made differentiable; else "not counted" till the step's graph is known (again)."""
    if asked.create_graph and any(t.requires_grad for t in outputs):
        return SECOND_ORDER
    return NO_GRADIENT


def again(made: set, step: Walk, what: str = "its gradients' operations differentiated again",
          ran: str = "again (an operation autograd ran for its gradients)",
          note: str = "its gradients were made with create_graph=True: the step differentiates the products that made "
                      "them", tangents: set = frozenset()) -> Count:
    """The training backward of a call that made its gradients with create_graph=True: the products of the operations
    its engine ran (``made``) that the step's backward runs, each by second_order; "not counted" where one has no
    formula. (``what``, ``ran``, ``note``: the words for other such operations: a row's tangents',
    reverse_over_forward; ``tangents``: those of ``made`` that computed forward-mode AD's tangents, named so.)"""
    products: Counter = Counter()
    reached = step.runs | step.targets
    for node in made & step.runs:
        done = second_order(node, reached, step.edges)
        if done is None:
            return Count(None, None, {}, f"it differentiates {type(node).__name__} {ran}: no formula, not counted")
        if done[0]:
            products[_of_a_tangent(done) if node in tangents else done] += 1
    total = sum(n * times for (n, _), times in products.items())
    if not total:
        return Count(0, 0, {"macs": f"{what}: no products"})
    text = " + ".join(f"{times} × ∂({done}) {grouped(n)}" if times > 1 else f"∂({done}) {grouped(n)}"
                      for (n, done), times in products.items())
    return Count(total, 0, {"macs": f"{what}: {text} = {grouped(total)}",
                            "elementwise": "their element-wise work not counted"}, note)


def tangents_made(inputs: list, outputs: list) -> set:
    """The autograd nodes of the operations that computed a row's tangents (forward-mode AD: a linear layer's
    x'·Wᵀ and x·W'ᵀ, W' zeros), at every level (nodes_of): regular autograd's, at the plain tensors under torch.func's
    wrappers, where a training step's backward runs, and a grad level's, where grad of jvp's runs: those reached from
    its outputs' tangents, not through its inputs (primal or tangent) nor the nodes of its primal computation (its
    outputs' own and those inside it, down to its inputs': the row's backward formula counts those; a recurrent
    layer's steps, an attention's products, which its tangents' operations read)."""
    made = [t for t in transforms.tangents(outputs) or () if t is not None]
    given = [t for t in [*(transforms.tangents(inputs) or ()), *inputs, *outputs] if isinstance(t, Tensor)]
    primal = row_nodes(inputs, tuple(n for t in outputs if isinstance(t, Tensor) for n in nodes_of(t)))
    return _reachable([n for t in made for n in nodes_of(t)],
                      primal | {n for t in given for n in nodes_of(t) if n is not None})


def reverse_over_forward(primal: Count, own: tuple, made: set, step: Walk, within: Count | None = None) -> Count:
    """A training step's backward of a row that computed tangents (a PINN's u_x by jvp or jacfwd, trained): its own
    gradients (``primal``, its backward formula's) where the step reaches its outputs' nodes (``own``), else its inner
    products that the step reaches from within (``within``: from_within; an attention's probabilities, which its
    tangents' and its gradient's operations read), and those of the operations that computed its tangents (``made``:
    tangents_made) that the step runs, each by second_order (reverse over forward); "not counted" where one has no
    formula."""
    base = primal if any(n in step.runs for n in own if n is not None) else within if within is not None else \
        Count(0, 0, {"macs": "its output's own gradient not computed"})
    tangents = again(made, step, "the operations that computed its tangents, differentiated",
                     "(an operation that computed its tangent, forward-mode AD's)", "", made)
    if base.macs is None or tangents.macs is None:
        return base if base.macs is None else tangents
    return transforms.with_tangents(base, tangents, "forward-mode AD computed its tangents: the step differentiates "
                                                    "their products too (reverse over forward)")
