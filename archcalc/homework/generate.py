"""A homework set: ``count`` different questions of one kind, drawn from the seed, each checked in PyTorch."""

from __future__ import annotations

import random
from dataclasses import dataclass

from archcalc.errors import InputError
from archcalc.homework.kinds import KINDS
from archcalc.homework.question import Question, SelfCheckError
from archcalc.homework.words import LANGUAGES

LEVELS = (1, 2, 3)
MOST = 500  # questions in one set


@dataclass(frozen=True)
class HomeworkSet:
    kind: str
    count: int
    seed: int
    level: int
    lang: str
    questions: tuple[Question, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """answers.csv's header."""
        return ("id", "kind", "question", "answer", "arithmetic") + KINDS[self.kind].COLUMNS + ("asked",)

    @property
    def command(self) -> str:
        lang = f" --lang {self.lang}" if self.lang != "en" else ""
        return f"archcalc homework {self.kind} --count {self.count} --seed {self.seed} --level {self.level}{lang}"


def validate(kind: str, count: int, seed: int, level: int, lang: str) -> None:
    if kind not in KINDS:
        raise InputError(f"unknown homework kind {kind!r}; use one of {', '.join(KINDS)}")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MOST:
        raise InputError(f"--count must be a whole number from 1 to {MOST}, got {count!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"--seed must be a whole number >= 0, got {seed!r}")
    if level not in LEVELS:
        raise InputError(f"--level must be 1, 2 or 3, got {level!r}")
    if lang not in LANGUAGES:
        raise InputError(f"--lang must be {' or '.join(LANGUAGES)}, got {lang!r}")


def generate(kind: str, count: int, seed: int = 0, level: int = 1, lang: str = "en") -> HomeworkSet:
    """The set: the same (kind, count, seed, level, lang) gives the same questions, on any machine."""
    validate(kind, count, seed, level, lang)
    module = KINDS[kind]
    rng = random.Random(f"archcalc homework {kind} level {level} seed {seed}")
    questions: list[Question] = []
    seen: set[tuple] = set()
    for _ in range(count * 200):
        if len(questions) == count:
            break
        question = module.ask(rng, level, lang)
        if question.key() in seen:
            continue
        problems = module.check(question)
        if problems:
            raise SelfCheckError(f"self-check failed on {kind} question {len(questions) + 1}: {problems[0]} "
                                 f"(a formula disagrees with PyTorch; no answer key was written)")
        seen.add(question.key())
        questions.append(question)
    if len(questions) < count:
        raise InputError(f"only {len(questions)} different {kind} questions at level {level}; "
                         f"ask for --count {len(questions)} or fewer, or another level")
    return HomeworkSet(kind, count, seed, level, lang, tuple(questions))
