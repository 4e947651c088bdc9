"""One output function: a Report as a rich table, CSV, JSON or markdown, to stdout or a file."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from archcalc.errors import InputError
from archcalc.formulas.numbers import grouped
from archcalc.output.report import FORMULA, INT, Column, Report

FORMATS = ("table", "csv", "json", "md", "html")
PIPE_WIDTH = 200  # a table's width when stdout is no terminal (a file, a pipe): laid out as it comes
_SUFFIXES = {".csv": "csv", ".json": "json", ".md": "md", ".markdown": "md", ".txt": "table", ".html": "html",
             ".htm": "html"}


def choose_format(fmt: str | None, output: str | None) -> str:
    """The --format given, else the one the --output suffix names, else a table."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    if output is None:
        return "table"
    suffix = Path(output).suffix.lower()
    if suffix not in _SUFFIXES:
        raise InputError(
            f"cannot tell the format from {output!r}; use a .csv, .json, .md, .html or .txt name, or give --format"
        )
    return _SUFFIXES[suffix]


def cell_text(value, kind: str) -> str:
    if value is None:
        return "—"
    if kind == INT and isinstance(value, int):
        return grouped(value)
    return str(value)


def to_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = report.csv_columns or report.columns
    writer.writerow([c.header for c in columns])
    for row in report.rows:
        writer.writerow(["" if row.get(c.key) is None else row.get(c.key) for c in columns])
    return buffer.getvalue()


def to_json(report: Report) -> str:
    return json.dumps(report.data, indent=2, ensure_ascii=False) + "\n"


def markdown_text(text: str) -> str:
    """Text that markdown shows as written: '*' escaped outside `code` (``5*5*1`` would otherwise read as 5,
    an italic 5, then 1), '|' escaped everywhere (it would end a table cell)."""
    parts = text.split("`")
    return "`".join(part if i % 2 else part.replace("*", "\\*") for i, part in enumerate(parts)).replace("|", "\\|")


def markdown_cell(text: str) -> str:
    """A table cell: arithmetic (a '*' in it) as `code`, which shows it as written and reads the same raw."""
    if "*" in text and "`" not in text:
        return f"`{text}`".replace("|", "\\|")
    return markdown_text(text)


def to_markdown(report: Report) -> str:
    escape = markdown_cell
    lines = [f"## {report.title}", ""]
    lines.append("| " + " | ".join(c.header for c in report.columns) + " |")
    lines.append("|" + "|".join("---:" if c.kind == INT else "---" for c in report.columns) + "|")
    for row in report.rows:
        lines.append("| " + " | ".join(escape(cell_text(row.get(c.key), c.kind)) for c in report.columns) + " |")
    if report.footer:
        lines.append("")
        lines.extend(f"- {markdown_text(line)}" for line in report.footer)
    return "\n".join(lines) + "\n"


# What a narrow terminal leaves out first, by column key (each is in the CSV and JSON): FLOPs (2 x the
# MACs beside them), the trainable count, element-wise work, activation bytes, the receptive field,
# input shapes, the bottleneck's rounded figure, timing's spread, and last the layer's type (its name says
# where it is; `archcalc shapes` at a wider width says what it is).
DROP_ORDER = ("flops", "trainable_params", "elementwise", "activation_bytes", "rf", "input_shape", "mults_human",
              "iqr_ms", "min_max", "images_per_s", "type")


def rich_table(report: Report, width: int | None = None):
    """The report as a rich renderable: the table, then its footer lines (rich.print, a notebook's __rich__).
    Given a ``width`` the table is laid out to fit it without breaking a number or a formula inside a
    token: the arithmetic columns move onto lines of their own under the table, then columns leave in
    DROP_ORDER (said in a line), and the remaining columns wrap only at spaces."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    columns, folded, dropped = fit_columns(report, width)
    table = Table(title=report.title, title_justify="left", header_style="bold")
    sizes = _widths(columns, report.rows, width) if width else [None] * len(columns)
    for column, size in zip(columns, sizes):
        table.add_column(column.header, justify="right" if column.kind == INT else "left", overflow="fold",
                         width=size)
    for row in report.rows:
        table.add_row(*(cell_text(row.get(c.key), c.kind) for c in columns))
    lines = []
    for column in folded:  # each row's arithmetic on a line of its own: "conv1: (1*32*30*30)*(3*3*3) = 777,600"
        texts = [(row.get("name") or row.get(columns[0].key, ""), row.get(column.key)) for row in report.rows]
        texts = [(name, text) for name, text in texts if text]
        if texts:
            lines.append(Text(f"{column.header}:", style="bold"))
            lines.extend(Text(f"  {name}: {text}") for name, text in texts)
    if dropped:
        lines.append(Text(f"(left out at {width} columns: {', '.join(c.header for c in dropped)}; a wider terminal, "
                          f"-f csv or -f json has them)"))
    return Group(table, *lines, *(Text(line) for line in report.footer))


def fit_columns(report: Report, width: int | None) -> tuple[list[Column], list[Column], list[Column]]:
    """(the table's columns, the arithmetic columns moved under it, the columns left out) at ``width``."""
    columns, folded, dropped = list(report.columns), [], []
    if width is not None and _needed(columns, report.rows) > width:
        folded = [c for c in columns if c.kind == FORMULA]
        columns = [c for c in columns if c.kind != FORMULA]
        for key in DROP_ORDER:
            if _needed(columns, report.rows) <= width:
                break
            dropped += [c for c in columns if c.key == key]
            columns = [c for c in columns if c.key != key]
    return columns, folded, dropped


_WHOLE = ("name", "model")  # a row's label ("max_pool2d (2)") stays on one line


def _least(column: Column, rows) -> int:
    """The narrowest the column can be without breaking a word of its header or a token of a cell (a
    number is one token)."""
    words = [len(w) for w in column.header.split()]
    for row in rows:
        text = cell_text(row.get(column.key), column.kind)
        whole = column.kind == INT or column.key in _WHOLE
        words.extend([len(text)] if whole else [len(w) for w in text.split()])
    return max(words, default=1)


def _widths(columns: list[Column], rows, width: int) -> list[int]:
    """Each column's width: its natural one (the longest header or cell), narrowed one character at a time
    from the column with the most to spare over its least (_least) until the table fits ``width``."""
    natural = [max([len(c.header)] + [len(cell_text(r.get(c.key), c.kind)) for r in rows]) for c in columns]
    least = [_least(c, rows) for c in columns]
    sizes = list(natural)
    while sum(sizes) + 3 * len(sizes) + 1 > width:
        spare = [size - low for size, low in zip(sizes, least)]
        widest = max(range(len(sizes)), key=lambda i: (spare[i], sizes[i]))
        if spare[widest] <= 0:
            break
        sizes[widest] -= 1
    return sizes


def _needed(columns: list[Column], rows) -> int:
    """The width of the table at its narrowest: each column's least width, its padding and rules."""
    return sum(_least(c, rows) + 3 for c in columns) + 1


def to_table(report: Report, width: int | None = None, color: bool = False) -> str:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=width or PIPE_WIDTH, force_terminal=bool(color), no_color=not color,
                      highlight=False, soft_wrap=False)
    console.print(rich_table(report, width))
    return buffer.getvalue()


def render(report: Report, fmt: str) -> str:
    if fmt == "csv":
        return to_csv(report)
    if fmt == "json":
        return to_json(report)
    if fmt == "md":
        return to_markdown(report)
    if fmt == "html":
        from archcalc.output.html import page

        return page(report)
    return to_table(report)


def make_folder(folder: Path) -> None:
    """The folder, with its parents, made if missing; one line where it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot make the folder {str(folder)!r}: {error.strerror or error}") from None


def write_atomic(path: str | Path, text: str) -> None:
    """Write the whole file or nothing: a temporary file beside it, then an atomic rename."""
    target, path = Path(path), str(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"cannot write {path!r}: folder {str(directory)!r} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except OSError as error:
        if "tmp" in locals() and os.path.exists(tmp):
            os.unlink(tmp)
        raise InputError(f"cannot write {path!r}: {error.strerror or error}") from None


def emit(report: Report, fmt: str, output: str | None, force: bool = False) -> None:
    """Print to stdout (a table in color when stdout is a terminal), or write --output; an existing
    file is replaced only with force."""
    if output is None:
        if fmt == "table" and sys.stdout.isatty():
            sys.stdout.write(to_table(report, width=shutil.get_terminal_size().columns, color=True))
        else:
            sys.stdout.write(render(report, fmt))
        return
    if os.path.exists(output) and not force:
        raise InputError(f"{output} exists; add --force to replace it")
    write_atomic(output, render(report, fmt))
    print(f"wrote {output} ({fmt})", file=sys.stderr)
