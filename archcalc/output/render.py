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
from archcalc.output.report import INT, Report

FORMATS = ("table", "csv", "json", "md", "html")
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


def to_markdown(report: Report) -> str:
    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"## {report.title}", ""]
    lines.append("| " + " | ".join(c.header for c in report.columns) + " |")
    lines.append("|" + "|".join("---:" if c.kind == INT else "---" for c in report.columns) + "|")
    for row in report.rows:
        lines.append("| " + " | ".join(escape(cell_text(row.get(c.key), c.kind)) for c in report.columns) + " |")
    if report.footer:
        lines.append("")
        lines.extend(f"- {escape(line)}" for line in report.footer)
    return "\n".join(lines) + "\n"


def rich_table(report: Report):
    """The report as a rich renderable: the table, then its footer lines (rich.print, a notebook's __rich__)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=report.title, title_justify="left", header_style="bold")
    for column in report.columns:
        table.add_column(column.header, justify="right" if column.kind == INT else "left",
                         overflow="fold")
    for row in report.rows:
        table.add_row(*(cell_text(row.get(c.key), c.kind) for c in report.columns))
    return Group(table, *(Text(line) for line in report.footer))


def to_table(report: Report, width: int | None = None, color: bool = False) -> str:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=width or 200, force_terminal=bool(color), no_color=not color,
                      highlight=False, soft_wrap=False)
    console.print(rich_table(report))
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


def write_atomic(path: str, text: str) -> None:
    """Write the whole file or nothing: a temporary file beside it, then an atomic rename."""
    target = Path(path)
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
