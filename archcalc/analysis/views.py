"""Which rows to show: every layer and operation (the default), or the tree cut at a depth.

Rows at the cut aggregate everything below them, so the rows shown always add up to the totals.
"""

from __future__ import annotations

from archcalc.analysis.records import MODULE, Analysis, LayerRecord


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
