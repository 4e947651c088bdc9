"""A set's three files: questions.md (for students), answers.md (each answer with its working) and
answers.csv (id, kind, question, answer, arithmetic, then every number of the layer or network, then which
of them the answer gives). Same set, same bytes: no dates, no machine names."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from archcalc.errors import InputError
from archcalc.homework.generate import HomeworkSet
from archcalc.homework.words import say
from archcalc.output.render import make_folder, markdown_text as _md, write_atomic

FILES = ("questions.md", "answers.md", "answers.csv")


def _what(s: HomeworkSet) -> str:
    return say(s.lang, f"kind.{s.kind}")


def _heading(s: HomeworkSet, title: str) -> list[str]:
    return [f"# {say(s.lang, title, what=_what(s))}", "",
            say(s.lang, "set.made", seed=s.seed, level=s.level, command=s.command), ""]


def _numbered(s: HomeworkSet):
    for number, q in enumerate(s.questions, 1):
        yield number, q, _md(q.text.replace("{net}", str(number)))


def questions_md(s: HomeworkSet) -> str:
    lines = _heading(s, "set.title")
    for number, q, text in _numbered(s):
        lines += [f"**{number}.** {text}", ""]
        if q.figure:
            lines += [q.figure, ""]
    return "\n".join(lines).rstrip() + "\n"


def answers_md(s: HomeworkSet) -> str:
    lines = _heading(s, "set.answers")
    answer, working = say(s.lang, "set.answer"), say(s.lang, "set.working")
    for number, q, text in _numbered(s):
        lines += [f"**{number}.** {text}", ""]
        if q.rows:  # a network: the filled table, then each row's working
            lines += [_md(q.answer), ""]
            for row in q.rows:
                label = row.numbers["row"] or say(s.lang, "network.total")
                lines.append(f"- {label}: " + "; ".join(_md(line) for line in row.arithmetic))
            lines.append("")
            continue
        lines += [f"{answer}: **{_md(q.answer)}**", "", f"{working}:", ""]
        lines += [f"- {_md(line)}" for line in q.arithmetic] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv_rows(s: HomeworkSet):
    for number, q, _ in _numbered(s):
        for i, row in enumerate(q.rows or (q,)):
            ident = str(number) if not q.rows else f"{number}.{row.numbers['row'] or 'total'}"
            yield [ident, q.kind, row.text.replace("{net}", str(number)), row.answer, "; ".join(row.arithmetic)] + [
                _cell(row.numbers[name]) for name in s.columns[5:-1]] + [" ".join(row.asked)]


def answers_csv(s: HomeworkSet) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(s.columns)
    writer.writerows(_csv_rows(s))
    return buffer.getvalue()


def write(s: HomeworkSet, folder: Path, force: bool = False) -> list[Path]:
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out {str(folder)!r} is a file; give a folder (it is made if missing)")
    paths = [folder / name for name in FILES]
    there = [p.name for p in paths if p.exists()]
    if there and not force:
        raise InputError(f"{folder}/ already holds {', '.join(there)}; add --force to overwrite, or give another --out")
    make_folder(folder)
    for path, text in zip(paths, (questions_md(s), answers_md(s), answers_csv(s))):
        write_atomic(path, text)
    return paths
