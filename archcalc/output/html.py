"""A Report as HTML: a self-contained fragment (Jupyter's _repr_html_) or page (--format html), with no
script, font or style sheet from outside, so that it opens offline: the table with the arithmetic,
the footer (totals, conventions, notes), a chart of each layer's MACs and parameters drawn inline
as SVG bars (a bar's length is its share of the largest; its number is printed beside it), and the
report's figures (the network's drawing, output/graph.py).
"""

from __future__ import annotations

from html import escape

from archcalc.formulas.numbers import grouped, human
from archcalc.output.render import cell_text
from archcalc.output.report import INT, Report

_STYLE = """
.archcalc{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;font-size:13px;color:#222}
.archcalc table{border-collapse:collapse;margin:6px 0}
.archcalc th,.archcalc td{border-bottom:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}
.archcalc th{background:#f3f3f3;font-weight:600}
.archcalc td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.archcalc caption{text-align:left;font-weight:600;font-size:14px;padding:4px 0}
.archcalc ul{margin:4px 0;padding-left:18px}
.archcalc .chart text{font-size:11px;fill:#222}
""".strip()

_CHARTED = (("macs", "MACs", "#3b6fb6"), ("params", "Params", "#d08a2e"))


def fragment(report: Report) -> str:
    """The report as one <div> (its style inside it): what a notebook shows."""
    head = "".join(f"<th>{escape(c.header)}</th>" for c in report.columns)
    body = []
    for row in report.rows:
        cells = []
        for c in report.columns:
            text = cell_text(row.get(c.key), c.kind)
            cells.append(f'<td class="n">{escape(text)}</td>' if c.kind == INT else f"<td>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    footer = "".join(f"<li>{escape(line)}</li>" for line in report.footer)
    return (f'<div class="archcalc"><style>{_STYLE}</style>'
            f"<table><caption>{escape(report.title)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
            + (f"<ul>{footer}</ul>" if footer else "") + chart(report)
            + "".join(f'<div class="figure">{figure}</div>' for figure in report.figures) + "</div>")


def page(report: Report) -> str:
    """A whole HTML document around the fragment."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(report.title)}</title>'
            f"</head><body>\n{fragment(report)}\n</body></html>\n")


def chart(report: Report, width: int = 260, bar: int = 12) -> str:
    """Per-layer bars of MACs and parameters (those of the two the report has, for rows with a name)."""
    series = [(key, label, colour) for key, label, colour in _CHARTED
              if any(isinstance(r.get(key), int) and r.get(key) for r in report.rows)]
    rows = [r for r in report.rows if "name" in r]
    if not series or not rows:
        return ""
    label_width, gap = 150, 90
    column = width + gap
    height = bar * len(rows) + 24
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{label_width + column * len(series)}" '
             f'height="{height}" role="img" aria-label="MACs and parameters per layer">']
    for i, (key, label, colour) in enumerate(series):
        x0 = label_width + i * column
        parts.append(f'<text x="{x0}" y="12" font-weight="600">{escape(label)}</text>')
        largest = max((r.get(key) or 0) for r in rows) or 1
        for j, r in enumerate(rows):
            value = r.get(key) or 0
            y = 18 + j * bar
            length = round(width * value / largest, 1)
            parts.append(f'<rect x="{x0}" y="{y}" width="{length}" height="{bar - 3}" fill="{colour}">'
                         f"<title>{escape(str(r['name']))}: {grouped(value)}</title></rect>")
            if value:
                parts.append(f'<text x="{x0 + length + 3}" y="{y + bar - 4}">{escape(human(value))}</text>')
    for j, r in enumerate(rows):
        parts.append(f'<text x="0" y="{18 + j * bar + bar - 4}">{escape(str(r["name"])[:24])}</text>')
    parts.append("</svg>")
    return "".join(parts)
