"""One homework question: its text, its answer, the working, and every number of what it is about."""

from __future__ import annotations

from dataclasses import dataclass, field

from archcalc.errors import ArchcalcError


@dataclass(frozen=True)
class Question:
    """``numbers``: the layer's or network's numbers, in the CSV's column order (None: does not apply);
    ``asked``: the names among them that the answer gives; ``rows``: a network's questions, one per row."""

    kind: str
    text: str
    answer: str
    arithmetic: tuple[str, ...]
    numbers: dict[str, object]
    asked: tuple[str, ...]
    layers: tuple = ()  # the Layer(s) it is about, in order, which the check rebuilds in PyTorch
    size: int = 0  # their input's height and width
    figure: str = ""  # markdown shown under the question (a table of layers, PyTorch code)
    rows: tuple["Question", ...] = field(default=())

    def key(self) -> tuple:
        """What makes two questions the same question (a set asks each once)."""
        return self.kind, self.text, self.figure


class SelfCheckError(ArchcalcError):
    """A formula's answer disagrees with PyTorch's: a bug in archcalc, so no key is written."""


def disagreements(q: Question, found: dict[str, int]) -> list[str]:
    """What PyTorch ``found`` (name -> number) says against the question's numbers and its answer."""
    problems = [f"{name}: the formula gives {q.numbers[name]}, PyTorch {value}" for name, value in found.items()
                if q.numbers[name] != value]
    asked = found[q.asked[0]]
    return problems + ([] if q.answer == str(asked) else [f"answer {q.answer}, PyTorch {asked}"])
