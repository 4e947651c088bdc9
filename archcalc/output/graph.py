"""The network drawn: each row of the analysis a box (its name, type, output shape and MACs), an arrow
wherever a tensor one row made is an input of another (record.sources, followed by the tracer), so
that the lab's skip, dense and attention paths and a ResNet's shortcuts show as paths that merge.

Laid out by graphviz's ``dot`` when its binary is on the PATH, else by a small layered layout of its
own (each box one rank below the lowest of its inputs, boxes of a rank side by side in the order of
their inputs, an arrow that skips ranks drawn as a curve beside the column), so that the install
line alone gives a drawing. Either way the result is one self-contained SVG.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from html import escape
from pathlib import Path

from archcalc.analysis.records import MODULE, Analysis
from archcalc.errors import COMMAND_LINE, InputError, option
from archcalc.formulas.numbers import human, shapes_text

INPUT = -1  # the node of the model's input(s)
LAYOUTS = ("auto", "dot", "python")
_SUFFIXES = {".svg": "svg", ".dot": "dot", ".gv": "dot"}


def format_of(path: str | None, given: str | None = None) -> str:
    """svg (the drawing) or dot (graphviz's source): the one given, else the one the file's suffix names (svg
    without a file); a suffix that names neither is refused rather than written as SVG."""
    if given is not None:
        if given not in ("svg", "dot"):
            raise InputError(f"unknown format {given!r} for a graph; use svg or dot")
        return given
    if path is None:
        return "svg"
    suffix = Path(str(path)).suffix.lower()
    if suffix not in _SUFFIXES:
        given = ", or give --format svg|dot" if COMMAND_LINE.get() else ""  # (Analysis.graph has no format)
        raise InputError(f"cannot tell the graph's format from {str(path)!r}; use a .svg or .dot name{given}")
    return _SUFFIXES[suffix]


@dataclass(frozen=True)
class Node:
    key: int  # the record's index, or INPUT
    label: str
    detail: str  # output shape and MACs


@dataclass(frozen=True)
class Graph:
    title: str
    nodes: tuple[Node, ...]
    edges: tuple[tuple[int, int], ...]  # (from key, to key), in the order the tensors flowed

    def into(self, key: int) -> list[int]:
        return [a for a, b in self.edges if b == key]


def of(analysis: Analysis, depth: int | None = None) -> Graph:
    """The rows shown at ``depth`` (views.rows) and the tensors between them; a row at the cut stands for
    everything inside it."""
    from archcalc.analysis.views import rows

    shown = rows(analysis, depth)
    keys = {r.index for r in shown}
    owner: dict[int, int] = {}
    for r in analysis.records:  # parents precede their children
        if r.index in keys:
            owner[r.index] = r.index
        elif r.parent is not None and r.parent in owner:
            owner[r.index] = owner[r.parent]
    edges: dict[tuple[int, int], None] = {}
    for r in analysis.records:
        if r.kind == MODULE and r.index not in keys:
            continue
        to = owner.get(r.index)
        for source in r.sources:
            start = INPUT if source == INPUT else owner.get(source)
            if to is not None and start is not None and start != to:
                edges[(start, to)] = None
    shapes = shapes_text(analysis.input_shapes or (analysis.input_shape,))
    nodes = [Node(INPUT, "input", shapes)]
    for r in shown:
        shape = shapes_text(r.output_shapes)
        cost = f" · {human(r.macs)} MACs" if r.macs else ""
        nodes.append(Node(r.index, f"{r.label} ({r.type})", shape + cost))
    title = f"{analysis.model} ({shapes})"
    return Graph(title, tuple(nodes), tuple(edges))


def drawing(analysis: Analysis, depth: int | None = None, layout: str = "auto") -> str:
    """The SVG of an analysis's network (of, then svg)."""
    return svg(of(analysis, depth), layout)


# -- graphviz ---------------------------------------------------------------------------------

def to_dot(graph: Graph) -> str:
    def quoted(text: str) -> str:
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'

    lines = [f"digraph {quoted(graph.title)} {{", "  rankdir=TB;",
             '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", fontsize=10];',
             '  edge [color="#555555", arrowsize=0.6];']
    for n in graph.nodes:
        lines.append(f"  n{n.key + 1} [label={quoted(n.label + chr(10) + n.detail)}];")
    for a, b in graph.edges:
        lines.append(f"  n{a + 1} -> n{b + 1};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def svg(graph: Graph, layout: str = "auto") -> str:
    """The drawing: graphviz's (layout dot, or auto where ``dot`` is installed), else archcalc's own."""
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    binary = shutil.which("dot")
    if layout == "dot" and binary is None:
        raise InputError(f"{option('layout', 'dot')} needs graphviz's dot on the PATH (apt-get install graphviz); "
                         f"{option('layout', 'python')} draws without it")
    if layout != "python" and binary is not None:
        done = subprocess.run([binary, "-Tsvg"], input=to_dot(graph), capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            return done.stdout
        if layout == "dot":
            raise InputError(f"graphviz's dot failed: {done.stderr.strip().splitlines()[0] if done.stderr else '?'}")
    return layered_svg(graph)


# -- archcalc's own layered layout ------------------------------------------------------------------

_W, _H, _GAP_X, _GAP_Y, _MARGIN = 210, 36, 30, 22, 20


def positions(graph: Graph) -> dict[int, tuple[float, float]]:
    """The top-left corner of each box: rank (rows down) from the longest path from the input, and
    within a rank the order of the mean position of each box's inputs (the first of each rank left)."""
    rank: dict[int, int] = {}
    for n in graph.nodes:  # in execution order, so every input of a node is ranked before it
        sources = [rank[a] for a in graph.into(n.key) if a in rank]
        rank[n.key] = 1 + max(sources) if sources else (0 if n.key == INPUT else 1)
    slots: dict[int, float] = {}
    by_rank: dict[int, list[int]] = {}
    for n in graph.nodes:
        by_rank.setdefault(rank[n.key], []).append(n.key)
    for level in sorted(by_rank):
        members = by_rank[level]

        def centre(key: int) -> float:
            inputs = [slots[a] for a in graph.into(key) if a in slots]
            return sum(inputs) / len(inputs) if inputs else 0.0

        ordered = sorted(members, key=lambda k: (centre(k), k))
        start = round(min(centre(k) for k in members))
        for i, key in enumerate(ordered):
            slots[key] = start + i
    left = min(slots.values())
    return {key: (_MARGIN + (slots[key] - left) * (_W + _GAP_X), _MARGIN + rank[key] * (_H + _GAP_Y))
            for key in slots}


def layered_svg(graph: Graph) -> str:
    at = positions(graph)
    width = max(x for x, _ in at.values()) + _W + _MARGIN + 160
    height = max(y for _, y in at.values()) + _H + _MARGIN
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
             f'font-family="Helvetica, Arial, sans-serif" font-size="11" role="img">',
             f"<title>{escape(graph.title)}</title>",
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>']
    for a, b in graph.edges:
        (x1, y1), (x2, y2) = at[a], at[b]
        sx, sy, ex, ey = x1 + _W / 2, y1 + _H, x2 + _W / 2, y2
        ranks = round((y2 - y1) / (_H + _GAP_Y))
        if ranks <= 1:
            d = f"M {sx:.1f} {sy:.1f} C {sx:.1f} {sy + _GAP_Y:.1f}, {ex:.1f} {ey - _GAP_Y:.1f}, {ex:.1f} {ey:.1f}"
        elif sx != ex:  # down its own column to the rank above, then across
            d = (f"M {sx:.1f} {sy:.1f} L {sx:.1f} {ey - _GAP_Y:.1f} C {sx:.1f} {ey - _GAP_Y / 2:.1f}, {ex:.1f} "
                 f"{ey - _GAP_Y / 2:.1f}, {ex:.1f} {ey:.1f}")
        else:  # a path that skips ranks (a shortcut, a dense connection): a curve beside the column
            bulge = _W / 2 + 18 + 10 * min(ranks, 8)
            d = (f"M {x1 + _W:.1f} {y1 + _H / 2:.1f} C {sx + bulge:.1f} {y1 + _H / 2:.1f}, {ex + bulge:.1f} "
                 f"{y2 + _H / 2:.1f}, {x2 + _W:.1f} {y2 + _H / 2:.1f}")
        parts.append(f'<path class="edge" data-from="{a}" data-to="{b}" d="{d}" fill="none" stroke="#555" '
                     f'stroke-width="1.2" marker-end="url(#arrow)"/>')
    for n in graph.nodes:
        x, y = at[n.key]
        fill = "#fdf1e0" if n.key == INPUT else "#eef3fb"
        parts.append(f'<g class="node" data-key="{n.key}"><rect x="{x:.1f}" y="{y:.1f}" width="{_W}" height="{_H}" '
                     f'rx="6" fill="{fill}" stroke="#6b7f99"/>'
                     f'<text x="{x + 8:.1f}" y="{y + 15:.1f}" font-weight="600">{escape(n.label[:34])}</text>'
                     f'<text x="{x + 8:.1f}" y="{y + 29:.1f}">{escape(n.detail[:38])}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
