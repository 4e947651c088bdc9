"""How close a computed number must be to the printed one (torch-free).

  round     the paper's own rounding: 3.6 holds for [3.55, 3.65), 156 only for 156 (default)
  exact     equal
  truncate  the paper cut digits off: 3.8 holds for [3.8, 3.9); needs a note saying why
  rel:X     |computed - paper| <= X * paper; needs a note saying why
  abs:X     |computed - paper| <= X (in the row's unit); needs a note saying why
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from archcalc.errors import InputError

NEEDS_NOTE = ("truncate", "rel", "abs")


@dataclass(frozen=True)
class Tolerance:
    kind: str
    amount: Decimal = Decimal(0)

    @classmethod
    def parse(cls, text: str) -> "Tolerance":
        text = (text or "round").strip()
        kind, _, amount = text.partition(":")
        if kind in ("round", "exact", "truncate") and not amount:
            return cls(kind)
        if kind in ("rel", "abs") and amount:
            try:
                return cls(kind, Decimal(amount))
            except ArithmeticError:
                pass
        raise InputError(f"tolerance {text!r} is not one of round, exact, truncate, rel:X, abs:X")

    def interval(self, printed: str) -> tuple[Decimal, Decimal, bool]:
        """[low, high] and whether high is included, for the value as printed."""
        value = Decimal(printed)
        unit = Decimal(1).scaleb(value.as_tuple().exponent)  # one unit in the last printed digit
        if self.kind == "exact":
            return value, value, True
        if self.kind == "round":
            return value - unit / 2, value + unit / 2, False
        if self.kind == "truncate":
            return value, value + unit, False
        slack = self.amount * abs(value) if self.kind == "rel" else self.amount
        return value - slack, value + slack, True

    def holds(self, printed: str, computed: Decimal) -> bool:
        low, high, closed = self.interval(printed)
        return low <= computed and (computed <= high if closed else computed < high)

    def __str__(self) -> str:
        return self.kind if self.kind in ("round", "exact", "truncate") else f"{self.kind}:{self.amount}"
