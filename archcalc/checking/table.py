"""tables/*.csv: one row per number a paper or lecture prints.

Columns: model, input, quantity, value, unit, convention, tolerance, source, note.
  model      a registry name, or `bottleneck` / `outsize` for the lectures' arithmetic
  input      CxHxW (blank: the model's default); for bottleneck C_IN,C_MID,C_OUT,SIZE,KERNEL;
             for outsize IN,K,STRIDE,PADDING
  quantity   params | trainable_params | macs | senet_flops | layer_params:NAME | output:NAME |
             direct_memory | direct_mults | bottleneck_memory | bottleneck_mults | output
  value      as printed (its digits set the rounding)
  unit       G (1e9), M (1e6), K (1e3) or blank for counts; for output:NAME the layout
             CxHxW, HxWxC, HxW or C
  convention what the paper's number counts (e.g. multiply-adds)
  tolerance  see archcalc.checking.tolerance; anything but round/exact needs a note
  source     seed document, paper, table and page
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from archcalc.checking.tolerance import NEEDS_NOTE, Tolerance
from archcalc.errors import InputError

COLUMNS = ("model", "input", "quantity", "value", "unit", "convention", "tolerance", "source", "note")
# The copy a wheel carries (setup.py), else the repository's tables/ (a clone or an editable install).
# The packaged copy comes first: beside an installed package, ../tables may be another project's
# (PyTables installs a package named tables).
_PACKAGED, _REPOSITORY = Path(__file__).resolve().parents[1] / "_tables", Path(__file__).resolve().parents[2] / "tables"
DEFAULT_DIR = _PACKAGED if _PACKAGED.is_dir() else _REPOSITORY


@dataclass(frozen=True)
class PaperRow:
    table: str
    line: int
    model: str
    input: str
    quantity: str
    value: str
    unit: str
    convention: str
    tolerance: Tolerance
    source: str
    note: str


def default_files() -> list[Path]:
    files = sorted(DEFAULT_DIR.glob("*.csv"))
    if not files:
        raise InputError(f"no tables found in {DEFAULT_DIR}; pass CSV files: archcalc check FILE.csv")
    return files


def load(path: Path) -> list[PaperRow]:
    import pandas as pd

    if not path.is_file():
        raise InputError(f"table {str(path)!r} does not exist")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, comment="#")
    except Exception as error:  # pandas' parser errors have many types
        raise InputError(f"cannot read {path.name}: {error}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{path.name} lacks the column(s) {', '.join(missing)}; a table has {', '.join(COLUMNS)}")
    rows = []
    for number, record in enumerate(frame.to_dict("records"), start=2):
        tolerance = Tolerance.parse(record["tolerance"])
        if tolerance.kind in NEEDS_NOTE and not record["note"].strip():
            raise InputError(f"{path.name} line {number}: tolerance {tolerance} needs a note saying why")
        rows.append(PaperRow(path.stem, number, *(record[c].strip() for c in COLUMNS[:6]), tolerance,
                             record["source"].strip(), record["note"].strip()))
    return rows
