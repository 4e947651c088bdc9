"""What a command returns: columns with units, rows of raw values, footer lines, and its JSON object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

INT = "int"
TEXT = "text"
FORMULA = "formula"  # a row's arithmetic: on a narrow terminal it moves onto a line of its own under the table


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    kind: str = TEXT


@dataclass(frozen=True)
class Report:
    title: str
    columns: tuple[Column, ...]
    rows: tuple[Mapping[str, Any], ...]
    footer: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)
    figures: tuple[str, ...] = ()  # SVG drawings that only the HTML page shows (the network's graph)
    csv_columns: tuple[Column, ...] | None = None  # the CSV's own columns (numbers a spreadsheet can use), if not these
