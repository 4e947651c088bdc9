"""Which rows to show: every layer and operation (the default), or the tree cut at a depth; and which
pass they count (forward, backward, or train = forward + backward).

Rows at the cut aggregate everything below them, so the rows shown always add up to the totals.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from archcalc.analysis.counting import ELEMENTWISE_BACKWARD
from archcalc.analysis.records import MODULE, Analysis, LayerRecord
from archcalc.formulas.numbers import grouped

PASSES = ("forward", "backward", "train")
BACKWARD_NOTE = ("backward: the multiply-accumulates of the gradients autograd computes (∂x where the input needs "
                 "one, ∂W where trainable), after a forward in train mode, as a training step runs it (dropout's "
                 "masks, BatchNorm's batch statistics, auxiliary classifiers; every layer LayerDrop may skip); "
                 + ELEMENTWISE_BACKWARD)


def for_pass(analysis: Analysis, which: str) -> Analysis:
    """The analysis with each record's MACs and element-wise work those of the pass: its gradients'
    (backward), or forward plus gradients (train). Needs an analysis made with backward=True."""
    if which not in PASSES:
        raise ValueError(f"unknown pass {which!r}; use one of {', '.join(PASSES)}")
    t = analysis.totals
    if which == "forward" or t.backward_macs is None:
        return analysis
    records = tuple(_pass_record(r, which) for r in analysis.records)
    if which == "backward":
        macs, elementwise = t.backward_macs, t.backward_elementwise
    else:
        macs, elementwise = t.macs + t.backward_macs, t.elementwise + t.backward_elementwise
    totals = replace(t, macs=macs, elementwise=elementwise, forward_macs=t.macs, forward_elementwise=t.elementwise)
    return replace(analysis, records=records, totals=totals, notes=(*analysis.notes, BACKWARD_NOTE), pass_name=which)


def _pass_record(r: LayerRecord, which: str) -> LayerRecord:
    grad = r.backward
    if grad is None:  # a container: its layers hold the counts
        return r._replace(elementwise=None) if which == "backward" else r
    grad_text = grad.text()
    if which == "backward":
        text = {k: v for k, v in r.formulas.items() if k not in ("macs", "elementwise")}
        text.update((k, grad_text[k]) for k in ("macs", "elementwise") if k in grad_text)
        return r._replace(macs=grad.macs, elementwise=grad.elementwise, formulas=text, note=grad.note)
    text = {k: v for k, v in r.formulas.items() if k not in ("macs", "elementwise")}
    macs, elementwise = _sum(r.macs, grad.macs), _sum(r.elementwise, grad.elementwise)
    if macs:
        text["macs"] = f"forward {grouped(r.macs)} + backward {grouped(grad.macs)} = {grouped(macs)}"
    if elementwise:
        text["elementwise"] = (f"forward {grouped(r.elementwise)} + backward {grouped(grad.elementwise)} = "
                               f"{grouped(elementwise)}")
    return r._replace(macs=macs, elementwise=elementwise, formulas=text,
                      note=r.note if grad.macs is not None else grad.note)


def _sum(forward: int | None, backward: int | None) -> int | None:
    return None if forward is None or backward is None else forward + backward


def rows(analysis: Analysis, depth: int | None = None) -> tuple[LayerRecord, ...]:
    records = analysis.records
    parents = {r.parent for r in records if r.parent is not None}

    def container(r: LayerRecord) -> bool:
        return r.kind == MODULE and r.index in parents

    if depth is None:
        return tuple(r for r in records if not container(r))
    if depth < 1:
        raise ValueError("depth must be >= 1")
    shown = []
    for r in records:
        if r.depth < depth and not container(r):
            shown.append(r)
        elif r.depth == depth:
            shown.append(_aggregate(r, records) if container(r) else r)
    return tuple(shown)


def _aggregate(root: LayerRecord, records: tuple[LayerRecord, ...]) -> LayerRecord:
    members = {root.index}
    subtree = [root]
    for r in records:  # records are in execution order, so a parent precedes its children
        if r.parent in members:
            members.add(r.index)
            subtree.append(r)
    counted = [r for r in subtree if r.macs is not None]
    uncounted = [r for r in subtree if r.macs is None and r is not root]
    note = f"includes {len(uncounted)} not counted" if uncounted else ""
    return root._replace(
        params=sum(r.params for r in subtree),
        trainable_params=sum(r.trainable_params for r in subtree),
        param_bytes=sum(r.param_bytes for r in subtree),
        macs=sum(r.macs for r in counted),
        elementwise=sum(r.elementwise or 0 for r in subtree),
        activation_elements=sum(r.activation_elements for r in subtree),
        activation_bytes=sum(r.activation_bytes for r in subtree),
        formulas={},
        note=note,
    )


class TypeTotal(NamedTuple):
    """One layer or operation type's share of a network (fvcore's by_operator, by the names the rows show): its
    rows (every call), their parameters, MACs (of the counted ones; ``not_counted`` rows have no figure),
    element-wise work and activations."""

    type: str
    calls: int
    params: int
    trainable_params: int
    macs: int
    not_counted: int
    elementwise: int
    activation_bytes: int
    indices: tuple[int, ...]  # the records' (every row of the type, in order)


def by_type(analysis: Analysis) -> tuple[TypeTotal, ...]:
    """Every row (the tree at full depth) grouped by its type, the largest MACs first (then parameters, then
    element-wise work): the groups add up to the totals, as the rows do."""
    groups: dict[str, list[LayerRecord]] = {}
    for r in rows(analysis):
        groups.setdefault(r.type, []).append(r)
    totals = [TypeTotal(kind, len(members), sum(r.params for r in members),
                        sum(r.trainable_params for r in members), sum(r.macs or 0 for r in members),
                        sum(r.macs is None for r in members), sum(r.elementwise or 0 for r in members),
                        sum(r.activation_bytes for r in members), tuple(r.index for r in members))
              for kind, members in groups.items()]
    return tuple(sorted(totals, key=lambda t: (-t.macs, -t.params, -t.elementwise)))
