"""The four views of one analysis (shapes, params, flops, summary) and its JSON object."""

from __future__ import annotations

from archcalc import conventions
from archcalc.analysis.counting import NOT_COUNTED
from archcalc.analysis.receptive import PART_NOTE
from archcalc.analysis.sequence_input import NOTE_START
from archcalc.analysis.token_fields import LOST_NOTE, Tokens
from archcalc.analysis.records import Analysis, LayerRecord
from archcalc.analysis.views import TypeTotal, by_type
from archcalc.formulas.numbers import grouped, human, human_bytes, shape_text, shapes_text
from archcalc.output.report import FORMULA, INT, Column, Report

VIEWS = ("shapes", "params", "flops", "summary", "rf", "types")

_NAME = Column("name", "Layer")
_TYPE = Column("type", "Type")
_COLUMNS = {
    "shapes": (
        _NAME, _TYPE,
        Column("input_shape", "Input shape"),
        Column("output_shape", "Output shape"),
        Column("output_formula", "Output size (in + 2p - k)/s + 1", FORMULA),
    ),
    "params": (
        _NAME, _TYPE,
        Column("params", "Params", INT),
        Column("trainable_params", "Trainable", INT),
        Column("params_formula", "Arithmetic", FORMULA),
    ),
    "flops": (
        _NAME, _TYPE,
        Column("macs", "MACs", INT),
        Column("flops", "FLOPs (2xMACs)", INT),
        Column("elementwise", "Element-wise ops", INT),
        Column("macs_formula", "MAC arithmetic", FORMULA),
    ),
    "answers": (
        _NAME, _TYPE,
        Column("output_shape", "Output shape"),
        Column("output_formula", "Output size", FORMULA),
        Column("params", "Params", INT),
        Column("params_formula", "Parameter arithmetic", FORMULA),
        Column("macs", "MACs", INT),
        Column("macs_formula", "MAC arithmetic", FORMULA),
    ),
    "summary": (
        _NAME, _TYPE,
        Column("output_shape", "Output shape"),
        Column("params", "Params", INT),
        Column("macs", "MACs", INT),
        Column("elementwise", "Element-wise ops", INT),
        Column("activation_bytes", "Activation bytes", INT),
        Column("rf", "Receptive field"),
    ),
    "rf": (
        _NAME, _TYPE,
        Column("output_shape", "Output shape"),
        Column("rf_size", "Receptive field (input pixels or tokens)"),
        Column("rf_jump", "Jump (effective stride)"),
        Column("rf_centre", "Centre of the first unit"),
    ),
    "types": (
        _TYPE,
        Column("calls", "Rows", INT),
        Column("params", "Params", INT),
        Column("params_share", "% of params"),
        Column("macs", "MACs", INT),
        Column("macs_share", "% of MACs"),
        Column("elementwise", "Element-wise ops", INT),
        Column("activation_bytes", "Activation bytes", INT),
    ),
}


def _row(r: LayerRecord) -> dict:
    return {
        "name": r.label,
        "type": r.type,
        "input_shape": shapes_text(r.input_shapes),
        "output_shape": shapes_text(r.output_shapes),
        "output_formula": r.formulas.get("output", ""),
        "params": r.params,
        "trainable_params": r.trainable_params,
        "params_formula": r.formulas.get("params", ""),
        "macs": r.macs,
        "flops": r.flops,
        "elementwise": r.elementwise,
        "macs_formula": r.formulas.get("macs", "") or r.note,
        "activation_bytes": r.activation_bytes,
        **_field_cells(r.receptive),
    }


def _field_cells(field) -> dict:
    if field is None:
        return {"rf": "—", "rf_size": "not computed", "rf_jump": "", "rf_centre": ""}
    if field.whole or field.part:
        return {"rf": field.text(), "rf_size": field.text(), "rf_jump": "", "rf_centre": ""}
    return {"rf": field.text(), "rf_size": shape_text(field.size),
            "rf_jump": "x".join(f"{j:g}" for j in field.jump), "rf_centre": ", ".join(f"{c:g}" for c in field.centre)}


def _field_dict(field) -> dict | None:
    if field is None:
        return None
    if field.whole or field.part:
        return {"size": "whole" if field.whole else "part", "jump": None, "centre": None}
    return {"size": list(field.size), "jump": list(field.jump), "centre": list(field.centre)}


def footer(a: Analysis) -> tuple[str, ...]:
    t = a.totals
    lines = [
        f"Input {_inputs_text(a)} on {a.device}, {a.dtype}; output {shapes_text(a.output_shapes) or 'no tensor'}",
        f"Params: {grouped(t.params)} (trainable {grouped(t.trainable_params)}{_not_run(a)}), "
        f"{human_bytes(t.param_bytes)}; buffers {human_bytes(t.buffer_bytes)}",
        f"MACs: {grouped(t.macs)} ({human(t.macs)}); FLOPs: {grouped(t.flops)} ({human(t.flops)}); "
        + f"element-wise ops: {grouped(t.elementwise)}",
        f"Activations: {grouped(t.activation_bytes)} bytes ({human_bytes(t.activation_bytes)})",
        f"Conventions: MACs = {conventions.MACS}; FLOPs = {conventions.FLOPS}.",
    ]
    if t.backward_macs is not None:
        forward = t.forward_macs if t.forward_macs is not None else t.macs
        step = forward + t.backward_macs
        lines.insert(3, f"Training step: forward {grouped(forward)} + backward "
                        f"{grouped(t.backward_macs)} = {grouped(step)} MACs, {step / forward:.2f} x the forward"
                     if forward else f"Backward: {grouped(t.backward_macs)} MACs")
    not_counted = a.not_counted
    if not_counted:
        by_reason: dict[str, list[str]] = {}  # why -> the rows (the generic "no formula" or the counter's reason)
        for r in not_counted:
            by_reason.setdefault(r.note if r.note and r.note != NOT_COUNTED.note else "no formula", []).append(r.label)
        parts = [", ".join(labels[:8]) + (" ..." if len(labels) > 8 else "") + f" ({why})"
                 for why, labels in by_reason.items()]
        lines.append(f"Not counted ({len(not_counted)}): " + "; ".join(parts))
    lines.extend(f"Note: {n}" for n in a.notes if not n.startswith("not counted"))
    return tuple(lines)


def _inputs_text(a: Analysis) -> str:
    """'1x3x224x224', or '2x12 (int64), 2x12 (bool)' for several inputs or one not of the model's dtype."""
    shapes = a.input_shapes or (a.input_shape,)
    dtypes = a.input_dtypes or (a.dtype,) * len(shapes)
    return ", ".join(shape_text(s) + ("" if d == a.dtype else f" ({d})") for s, d in zip(shapes, dtypes))


def _not_run(a: Analysis) -> str:
    """'; 6,379,728 in layers that did not run': the part of the total that no row holds."""
    unrun = a.totals.params - sum(r.params for r in a.records)
    return f"; {grouped(unrun)} in layers that did not run" if unrun else ""


def _record_dict(r: LayerRecord) -> dict:
    return {
        "name": r.name,
        "call": r.call,
        "type": r.type,
        "kind": r.kind,
        "depth": r.depth,
        "input_shapes": [list(s) for s in r.input_shapes],
        "output_shape": list(r.output_shapes[0]) if len(r.output_shapes) == 1 else [list(s) for s in r.output_shapes],
        "params": r.params,
        "trainable_params": r.trainable_params,
        "macs": r.macs,
        "flops": r.flops,
        "elementwise": r.elementwise,
        "activation_elements": r.activation_elements,
        "activation_bytes": r.activation_bytes,
        "formulas": dict(r.formulas),
        "receptive_field": _field_dict(r.receptive),
        "note": r.note,
    }


def as_dict(a: Analysis, rows: tuple[LayerRecord, ...]) -> dict:
    t = a.totals
    return {
        "model": a.model,
        "input_shape": list(a.input_shape),
        "input_shapes": [list(s) for s in a.input_shapes or (a.input_shape,)],
        "input_dtypes": list(a.input_dtypes or (a.dtype,)),
        "output_shape": [list(s) for s in a.output_shapes] if len(a.output_shapes) != 1 else list(a.output_shapes[0]),
        "device": a.device,
        "dtype": a.dtype,
        "conventions": conventions.as_dict(a.dtype, a.itemsize),
        "totals": {
            "params": t.params,
            "trainable_params": t.trainable_params,
            "macs": t.macs,
            "flops": t.flops,
            "elementwise": t.elementwise,
            "param_bytes": t.param_bytes,
            "buffer_bytes": t.buffer_bytes,
            "activation_bytes": t.activation_bytes,
            **({"forward_macs": t.forward_macs if t.forward_macs is not None else t.macs,
                "backward_macs": t.backward_macs,
                "forward_elementwise": t.forward_elementwise if t.forward_elementwise is not None else t.elementwise,
                "backward_elementwise": t.backward_elementwise} if t.backward_macs is not None else {}),
        },
        **({"pass": a.pass_name} if a.totals.backward_macs is not None else {}),
        "layers": [_record_dict(r) for r in rows],
        "not_counted": [{"name": r.name, "call": r.call, "type": r.type} for r in a.not_counted],
        "notes": list(a.notes),
    }


COUNTS = ("mults", "adds", "both")


def analysis_report(a: Analysis, view: str, rows: tuple[LayerRecord, ...], convention: str | None = None,
                    count: str | None = None) -> Report:
    """A view's table of ``rows`` (the "types" view: every row grouped by its type, ``rows`` unused)."""
    what = view if a.pass_name == "forward" else f"{view}, {a.pass_name} pass"
    title = f"{a.model}: {what} ({_inputs_text(a)}, {a.device}, {a.dtype})"
    if view == "types":
        groups = by_type(a)
        members = [[a.records[i] for i in g.indices] for g in groups]
        table, data = [_type_row(g, a.totals) for g in groups], as_dict(a, ())
        del data["layers"]
        data["types"] = [{**{k: v for k, v in g._asdict().items() if k != "indices"}, "flops": 2 * g.macs,
                          "macs_share": row["macs_share_fraction"], "params_share": row["params_share_fraction"]}
                         for g, row in zip(groups, table)]
        items, lines = data["types"], (*footer(a), f"{len(groups)} types: every row of `archcalc flops` grouped by its "
                                                   "type, the largest MACs first; the groups add up to the totals")
    else:
        members, table, lines, data = [(r,) for r in rows], [_row(r) for r in rows], footer(a), as_dict(a, rows)
        items = data["layers"]
        if view in ("rf", "summary"):
            parts = {type(r.receptive) for r in rows if r.receptive is not None and r.receptive.part}
            lines = (*lines, *(f"Note: {LOST_NOTE if kind is Tokens else PART_NOTE}" for kind in sorted(parts, key=str)))
    if view not in ("rf", "summary"):
        lines = tuple(line for line in lines if not line.startswith(f"Note: {NOTE_START}"))
    columns = _COLUMNS[view]
    if count:
        wanted = ("mults", "adds") if count == "both" else (count,)
        headers = {"mults": "Multiplications", "adds": "Additions"}
        columns = (*columns, *(Column(k, headers[k], INT) for k in wanted))
        for cells, item, group in zip(table, items, members):
            for k in wanted:
                values = [v for v in (getattr(r, k) for r in group) if v is not None]
                cells[k] = item[k] = sum(values) if values else None
        for k in wanted:
            total = sum(getattr(r, k) or 0 for r in a.records)
            data["totals"][k] = total
            lines = (*lines, f"{headers[k]} in conv/linear/matmul layers: {grouped(total)} ({human(total)}); "
                             "a dot product of K terms: K multiplications, K - 1 additions (+1 with bias)")
    if convention:
        counts = a.by_convention.get(convention, {})
        below = _subtree_sums(a, counts)
        columns = (*columns, Column("convention", f"Count ({convention})", INT))
        for cells, item, group in zip(table, items, members):
            cells["convention"] = item["convention_count"] = sum(below.get(r.index, 0) for r in group)
        total = a.convention_total(convention)
        lines = (*lines, f"Under the {convention} convention: {grouped(total)} ({human(total)}); "
                         "`archcalc reconcile` explains each difference")
        data["convention"] = {"name": convention, "total": total}
    csv = tuple(Column(f"{c.key}_fraction", c.header.replace("%", "Fraction"), c.kind) if c.key.endswith("_share")
                else c for c in columns) if view == "types" else None  # (shares as numbers a spreadsheet adds)
    return Report(title, columns, tuple(table), lines, data, csv_columns=csv)


def _type_row(g: TypeTotal, totals) -> dict:
    return {"type": g.type, "calls": g.calls, "params": g.params, "params_share": _percent(g.params, totals.params),
            "macs": g.macs if g.not_counted < g.calls else None,
            "macs_share": _percent(g.macs, totals.macs) + (f" ({g.not_counted} not counted)" if g.not_counted else ""),
            "elementwise": g.elementwise, "activation_bytes": g.activation_bytes,
            "params_share_fraction": _share(g.params, totals.params),
            "macs_share_fraction": _share(g.macs, totals.macs)}


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _percent(part: int, whole: int) -> str:
    """'93.12%' (to two places; '<0.01%' for a share that rounds to nothing, '' for none)."""
    if not part:
        return ""
    share = 100 * part / whole
    return f"{share:.2f}%" if share >= 0.005 else "<0.01%"


def _subtree_sums(a: Analysis, counts) -> dict[int, int]:
    """Each record's count plus its descendants' (so rows cut at a depth add up too)."""
    sums = dict(counts)
    for r in reversed(a.records):  # children come after their parent
        if r.parent is not None:
            sums[r.parent] = sums.get(r.parent, 0) + sums.get(r.index, 0)
    return sums
