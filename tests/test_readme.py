"""The README's console examples, run as written: every line the README shows under a command is a line
of what the command prints now (the README shows excerpts: rows left out, never rows changed). Timing
output is measured, so `archcalc time` examples are only run, not compared."""

import shlex
from pathlib import Path

import pytest

README = (Path(__file__).parent.parent / "README.md").read_text()


def _examples() -> list[tuple[str, list[str]]]:
    examples, inside = [], False
    for line in README.splitlines():
        if line.startswith("```console"):
            inside = True
        elif line.startswith("```"):
            inside = False
        elif inside and line.startswith("$ "):
            examples.append((line[2:], []))
        elif inside and examples and line.strip() and not line.startswith("..."):  # ("...": rows left out)
            examples[-1][1].append(line.rstrip())
    return examples


EXAMPLES = _examples()


def test_the_readme_has_console_examples():
    assert len(EXAMPLES) >= 6 and all(command.startswith("archcalc ") for command, _ in EXAMPLES)


@pytest.mark.parametrize("command,shown", EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_a_readme_example_prints_what_the_readme_shows(cli, command, shown, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = shlex.split(command)[1:]
    if args[0] == "time":  # measured: run it quickly, and check the shape of what it says
        args = [a if a != "10" else "1" for a in args]
        run = cli(*args, "--warmup", "0")
        estimates = sum(line.startswith("Run estimate") for line in shown)
        assert run.code == 0 and run.out.count("Run estimate: ") == estimates
        return
    monkeypatch.setattr("archcalc.output.render.PIPE_WIDTH", 1000)  # the README shows each row on one line
    run = cli(*args)
    printed = {line.rstrip() for line in (run.out + run.err).splitlines()}
    missing = [line for line in shown if line not in printed]
    assert not missing, f"{command}: the README shows lines it no longer prints: {missing[:3]}"
