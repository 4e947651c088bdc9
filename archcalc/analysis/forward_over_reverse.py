"""Forward-mode AD over reverse mode: a gradient computed while forward-mode AD's tangents flow through it
(torch.func.hessian, which is jacfwd(jacrev(f)); a Hessian-vector product jvp(grad(f)); forward_ad's dual tensors
given to torch.autograd.grad).

Each operation the engine runs for the gradient computes its tangent beside it. A gradient of a product Y = A·B is a
product of ∂Y and the other operand (∂A = ∂Y·Bᵀ: a linear layer's ∂x = ∂y·W and ∂W = ∂yᵀ·x, a convolution's), so its
tangent is two products of its size, ∂Ȧ = ∂Ẏ·Bᵀ + ∂Y·Ḃᵀ, computed wherever one of ∂Y and B carries a tangent:
PyTorch 2.13 fills the other's with zeros and multiplies it all the same (as a product's tangent in the forward:
transforms.tangent_count). Each term runs as many times as its tangent is batched: jacfwd's vmap over its basis
batches ∂Ẏ (x the basis), a weight's zero tangent not (once). Where neither carries one, as for the last layer's
∂x = ∂y·W of a scalar output (∂y = 1 there, W constant), there is no tangent: that gradient is counted once.

Which carry one: ∂Y as the engine hands it to the row's node (a hook on the node: the call runs for real, on the meta
device), A and B as the row saw them when it ran (its inputs' and weights' tangents, Tracer.tangents). A row whose
gradients have no products has none in its tangent either (element-wise, views, reductions, norms); one whose
gradients are not such pairs of its own (attention, recurrent layers: counting.paired marks those that are) is
counted node by node (node_by_node): each matrix product inside it that the engine runs is such a pair, its saved
operands' tangents read by the same hook, as the node still holds them. Any other node with products inside such a
row (a bilinear layer's _trilinear) has no formula here, nor has a gradient's operation differentiated again with
products: the call is "not counted". The tangents' element-wise work is not counted, and the arithmetic says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial

from archcalc.analysis import differentiated, transforms
from archcalc.analysis.counting import Count, Needs
from archcalc.formulas.numbers import grouped


# A matrix product's node: for each of its gradients, the input it is of (its position among the node's edges) and
# the saved operand it multiplies ∂Y with (Y = A·B: ∂A = ∂Y·Bᵀ, ∂B = Aᵀ·∂Y)
_PRODUCTS = {"MmBackward0": ((0, "_saved_mat2"), (1, "_saved_self")),
             "BmmBackward0": ((0, "_saved_mat2"), (1, "_saved_self")),
             "AddmmBackward0": ((1, "_saved_mat2"), (2, "_saved_mat1")),
             "BaddbmmBackward0": ((1, "_saved_batch2"), (2, "_saved_batch1"))}


class Watch:
    """Hooks on the nodes of rows the engine runs: for each, how many times more than ∂Y itself ∂Y's tangent runs (its
    batch, jacfwd's basis; 0 where ∂Y carries none), read as the engine hands ∂Y to the node; for a matrix product's
    node inside a row without pairs (attention's), its saved operands' too (``operands``)."""

    def __init__(self, nodes: Iterable, engine: differentiated.Walk | None = None):
        self.extra: dict = {}
        self.operands: dict = {}  # (node -> each saved operand's tangent's batch, 0: none; and its products, read
        self.products: dict = {}  # while the node holds its saved tensors: the engine frees them as it goes)
        self._reached = (engine.runs | engine.targets, engine.edges) if engine is not None else (set(), set())
        self._handles = [node.register_prehook(partial(self._seen, node)) for node in nodes]

    def _seen(self, node, grads: tuple) -> None:
        found = transforms.tangents(list(grads))
        if found is not None:
            extra = max(_relative(g, t) for g, t in zip(grads, found) if t is not None)
            self.extra[node] = max(self.extra.get(node, 0), extra)
        pairs = _PRODUCTS.get(type(node).__name__)
        if pairs is not None:
            saved = [getattr(node, name, None) for _, name in pairs]
            tangents = transforms.tangents(saved) or [None] * len(saved)
            self.operands[node] = tuple(0 if t is None else _relative(a, t) for a, t in zip(saved, tangents))
            self.products[node] = differentiated.second_order(node, *self._reached)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def _relative(primal, tangent) -> int:
    """How many times more the tangent runs than its primal (the vmap levels it is batched at beyond the primal's)."""
    both, alone = transforms.factor([primal, tangent]), transforms.factor([primal])
    return (both[0] if both else 1) // (alone[0] if alone else 1)


def watch(asked: differentiated.Asked, engine: differentiated.Walk, kept: Mapping[int, tuple],
          nodes: Mapping[int, tuple | None]) -> Watch:
    """Hooks on the output nodes of the rows the engine runs for this call, and on the nodes inside those whose
    gradients are not pairs (counted node by node: node_by_node)."""
    run = set()
    for index, counter, _ in differentiated.rows_run(asked, engine, kept, nodes):
        run |= {n for n in nodes[index] if n is not None and n in engine.runs}
        if _partners(counter, kept[index][1]) is None:
            run |= differentiated.row_nodes(kept[index][3], nodes[index]) & engine.runs
    return Watch(run, engine)


def _partners(counter, call):
    """A backward counter's pairs for this call (counting.paired), None where its gradients are no pairs of its own."""
    return getattr(counter, "partners", lambda call: None)(call)


def node_by_node(inner: set, engine: differentiated.Walk, seen: Watch) -> tuple[int, list[str]] | None:
    """The tangents' products of a row's gradients counted node by node, where they are not pairs of its own
    (attention: its projections', QKᵀ's and PV's gradients are matrix products inside it, its softmax's none): each
    matrix product's gradient that the engine computes, once for ∂Y's term and once for its other operand's, x as many
    times as each is batched, wherever one of them carries a tangent; None where a node inside has products of
    another kind (no formula here)."""
    reached = engine.runs | engine.targets
    macs, terms = 0, []
    for node in inner:
        pairs = _PRODUCTS.get(type(node).__name__)
        products = seen.products.get(node) if pairs is not None else \
            differentiated.second_order(node, reached, engine.edges)
        if products is not None and not products[0]:
            continue  # (no products: none in its tangent)
        if products is None or pairs is None:
            return None
        computed = [n is not None and n in reached for n, _ in node.next_functions]
        size = products[0] // sum(computed[at] for at, _ in pairs)
        dy = seen.extra.get(node, 0)
        for (at, _), partner in zip(pairs, seen.operands.get(node, (0,) * len(pairs))):
            if computed[at] and (dy or partner):
                macs += size * (max(dy, 1) + max(partner, 1))
                terms.append((products[1].split(", ")[0].replace("the gradient's ", ""), size, max(dy, 1),
                              max(partner, 1)))
    return macs, [f"{what} {grouped(size)} x ({a} + {b})" for what, size, a, b in terms]


def cost(asked: differentiated.Asked, engine: differentiated.Walk, kept: Mapping[int, tuple],
         nodes: Mapping[int, tuple | None], names: Mapping[int, str], gradient, engines: set,
         tangents: Mapping[int, object], seen: Watch) -> Count:
    """The products of the tangents of the gradients the call computes: each row's (its gradients' pairs, counting.
    paired) where ∂Y or the other operand carries a tangent; "not counted" where a row with products has no pairs,
    its tangents were out of the trace's sight, or a gradient's operation differentiated again has products.
    ``gradient``: the tracer's (counter, call, count, needs) -> Count; ``tangents``: Tracer.tangents."""
    macs, terms, uncounted = 0, [], []
    for index, counter, needs in differentiated.rows_run(asked, engine, kept, nodes):
        call, count = kept[index][1:3]
        name = names.get(index, "?")
        whole = gradient(counter, call, count, needs).macs
        dy = max((seen.extra.get(n, 0) for n in nodes[index] if n is not None), default=0)
        if whole == 0:  # (no products in its gradients: none in their tangents, but a convolution's bias's)
            if getattr(counter, "bias_tangent", False) and needs.weights and dy:
                uncounted.append(f"∂({name})'s bias")
            continue
        partners, carried = _partners(counter, call), tangents.get(index)
        if partners is None and not isinstance(carried, Count):  # (its gradients' products, node by node)
            found = node_by_node(differentiated.row_nodes(kept[index][3], nodes[index]) & engine.runs, engine, seen)
            if found is None:
                uncounted.append(f"∂({name})")
            else:
                macs += found[0]
                terms += [f"{name}'s {term}" for term in found[1]]
            continue
        if partners is None or isinstance(carried, Count):
            uncounted.append(f"∂({name})")
            continue
        extra, weights = carried if carried is not None else ((), 0)
        alone = 0
        for side, other in partners:
            if not (needs.weight() if side is None else needs.input(side)):
                continue
            one = gradient(counter, call, count, Needs(tuple(i == side for i in range(len(needs.inputs))), side is None,
                                                       needs.flags if side is None else (), needs.module))
            products = one.macs
            alone += products or 0
            partner = weights if other is None else (extra[other] if other < len(extra) else 0)
            if products and (dy or partner):
                macs += products * (max(dy, 1) + max(partner, 1))
                terms.append(f"{name}'s {_named(one)} {grouped(products)} x ({max(dy, 1)} + {max(partner, 1)})")
        if alone != whole:  # (gradients with products of their own beside the pairs': no formula)
            uncounted.append(f"∂({name})")
    reached = engine.runs | engine.targets
    again = [n for n in engine.runs & engines if (differentiated.second_order(n, reached, engine.edges) or (1,))[0]]
    within = [i for i, inner in differentiated.entered_within(kept, nodes, engine.runs).items()
              if any(differentiated.within_products(inner, reached, engine.edges))]
    if again or within or uncounted:
        kinds = uncounted + sorted({type(n).__name__ for n in again}) + [f"inside {names.get(i, '?')}" for i in within]
        return Count(None, None, {}, f"forward-mode AD computes the tangents of {asked.name}'s gradients (forward over "
                                     f"reverse: torch.func.hessian, jvp of grad), and those of {', '.join(kinds[:3])} "
                                     "have no formula here: not counted")
    shown = (" + ".join(terms) + f" = {grouped(macs)}") if terms else "no gradient with products carries one: 0"
    return Count(macs, 0, {"macs": f"each gradient's product again for ∂Y's term and for the other operand's, x as "
                                   f"many times as each is batched: {shown}",
                           "elementwise": "the tangents' element-wise work not counted"})


def _named(count: Count) -> str:
    """A gradient's name as its counter writes it (∂x, ∂W, ∂A): its arithmetic's first word."""
    return count.text().get("macs", "∂").split(" ", 1)[0]
