"""A value with the arithmetic that produced it, so every printed number can show its working."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from archcalc.formulas.numbers import grouped, product_text


@dataclass(frozen=True)
class Term:
    """An exact integer and the expression, in the lecture's symbols, that gives it."""

    value: int
    text: str

    def __str__(self) -> str:
        return f"{self.text} = {grouped(self.value)}"


def product(*factors: int) -> Term:
    """A product of factors: product(14, 14, 48) -> 14*14*48 = 9,408."""
    return Term(prod(factors), product_text(factors))


def total(terms: list[Term], bracket: bool = False) -> Term:
    """A sum of terms, written term by term then value by value when there is more than one."""
    if len(terms) == 1:
        return terms[0]
    texts = [f"({t.text})" if bracket else t.text for t in terms]
    value = sum(t.value for t in terms)
    return Term(value, " + ".join(texts))


def expanded(term_list: list[Term]) -> str:
    """'a + b = 1 + 2 = 3': each term's expression, then each term's value, then the sum."""
    whole = total(term_list)
    if len(term_list) == 1:
        return str(whole)
    values = " + ".join(grouped(t.value) for t in term_list)
    return f"{whole.text} = {values} = {grouped(whole.value)}"
