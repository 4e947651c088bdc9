"""check(): every row of the given tables, recomputed and judged."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from archcalc.checking.quantities import Computer
from archcalc.checking.table import PaperRow, default_files, load
from archcalc.errors import ArchcalcError


@dataclass(frozen=True)
class Verdict:
    row: PaperRow
    computed: str
    difference: str
    passed: bool
    error: str = ""


def _judge(row: PaperRow, computer: Computer) -> Verdict:
    try:
        value = computer.compute(row)
    except ArchcalcError as error:
        return Verdict(row, "", "", False, str(error))
    if isinstance(value, str):
        return Verdict(row, value, "" if value == row.value else "differs", value == row.value)
    difference = value - Decimal(row.value)
    shown = f"{value:.4f}".rstrip("0").rstrip(".") if value != value.to_integral() else f"{int(value)}"
    diff = f"{difference:+.4f}".rstrip("0").rstrip(".") if difference else "0"
    return Verdict(row, shown, diff, row.tolerance.holds(row.value, value))


def check(files: list[Path] | None = None) -> list[Verdict]:
    paths = files or default_files()
    rows = [row for path in paths for row in load(Path(path))]
    computer = Computer()
    return [_judge(row, computer) for row in rows]
