"""Which rows to show: every layer and operation (the default), or the tree cut at a depth; and which
pass they count (forward, backward, or train = forward + backward).

Rows at the cut aggregate everything below them, so the rows shown always add up to the totals.
"""

from __future__ import annotations

from dataclasses import replace

from archcalc.analysis.records import MODULE, Analysis, LayerRecord
from archcalc.formulas.numbers import grouped

PASSES = ("forward", "backward", "train")
BACKWARD_NOTE = ("backward: the multiply-accumulates of the gradients autograd computes (∂x where the input needs "
                 "one, ∂W where trainable); element-wise backward work is not counted")


def for_pass(analysis: Analysis, which: str) -> Analysis:
    """The analysis with each record's MACs those of the pass: its gradients' (backward), or forward plus
    gradients (train). Needs an analysis made with backward=True."""
    if which not in PASSES:
        raise ValueError(f"unknown pass {which!r}; use one of {', '.join(PASSES)}")
    t = analysis.totals
    if which == "forward" or t.backward_macs is None:
        return analysis
    records = tuple(_pass_record(r, which) for r in analysis.records)
    macs = t.backward_macs if which == "backward" else t.macs + t.backward_macs
    totals = replace(t, macs=macs, elementwise=0 if which == "backward" else t.elementwise, forward_macs=t.macs)
    return replace(analysis, records=records, totals=totals, notes=(*analysis.notes, BACKWARD_NOTE), pass_name=which)


def _pass_record(r: LayerRecord, which: str) -> LayerRecord:
    grad = r.backward
    if grad is None:  # a container: its layers hold the counts
        return r._replace(elementwise=None) if which == "backward" else r
    if which == "backward":  # its element-wise work is not counted
        text = {k: v for k, v in r.formulas.items() if k not in ("macs", "elementwise")}
        if "macs" in grad.text():
            text["macs"] = grad.text()["macs"]
        return r._replace(macs=grad.macs, elementwise=None, formulas=text, note=grad.note)
    text = {k: v for k, v in r.formulas.items() if k != "macs"}
    macs = None if r.macs is None or grad.macs is None else r.macs + grad.macs
    if macs:
        text["macs"] = f"forward {grouped(r.macs)} + backward {grouped(grad.macs)} = {grouped(macs)}"
    return r._replace(macs=macs, formulas=text, note=r.note if grad.macs is not None else grad.note)


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
