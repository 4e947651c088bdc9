"""The README's console examples, run as written: every line the README shows under a command is a line
of what the command prints now (the README shows excerpts: rows left out, never rows changed). Timing
output is measured, so `archcalc time` examples are only run, not compared. The commands written inline
in its prose (`archcalc compare se_resnet50 se_resnet50@reduction=8`) are run too: each must succeed."""

import re
import shlex
from pathlib import Path

import pytest
import torch

README_FILE = Path(__file__).parent.parent / "README.md"
README = README_FILE.read_text()


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
    monkeypatch.chdir(README_FILE.parent if "examples/" in command else tmp_path)  # (examples/: the repository's)
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


def _inline_commands() -> list[str]:
    """The concrete commands in the README's prose: those with real arguments, not a synopsis
    (`archcalc shapes MODEL`, `[--device cpu|cuda]`) or a reference to a command's name alone."""
    found, inside = [], False
    for line in README.splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        for command in ([] if inside else re.findall(r"`(archcalc [^`]*)`", line)):
            args = shlex.split(command)[1:]
            synopsis = any(mark in command for mark in "|[") or "path/to" in command or "mypkg" in command
            placeholder = any(re.fullmatch(r"[A-Z_]+(\.csv)?", a) for a in args)
            bare = not args or (args[0].startswith("-") and args[0] not in ("--help", "--version")) or (
                len(args) == 1 and args[0] not in ("--help", "--version", "models", "check"))
            if not (synopsis or placeholder or bare) and command not in found:
                found.append(command)
    return found


INLINE = _inline_commands()


def _runs_on_a_gpu(command: str) -> bool:
    """Whether a command measures on CUDA (`memory --device cuda` only simulates, and runs anywhere)."""
    args = shlex.split(command)[1:]
    pairs = set(zip(args, args[1:]))
    return bool({("--measure", "cuda"), ("--time", "cuda")} & pairs) or (
        args[0] != "memory" and ("--device", "cuda") in pairs)


def test_the_readme_names_concrete_commands_in_its_prose():
    assert {"archcalc bottleneck 480 16 48", "archcalc compare se_resnet50 se_resnet50@reduction=8",
            "archcalc reconcile vit_b_16"} <= set(INLINE)  # (the filter keeps what it should)
    assert "archcalc shapes MODEL" not in INLINE and "archcalc flops -f csv" not in INLINE
    assert _runs_on_a_gpu("archcalc time resnet50_tv --device cuda --batch 64")
    assert not _runs_on_a_gpu("archcalc memory resnet50 --fit 16GiB --device cuda")


@pytest.mark.parametrize("command", INLINE)
def test_a_command_in_the_readmes_prose_runs_as_written(cli, command, tmp_path, monkeypatch):
    if _runs_on_a_gpu(command) and not torch.cuda.is_available():
        pytest.skip(f"{command}: needs a CUDA device")
    monkeypatch.chdir(README_FILE.parent if "examples/" in command else tmp_path)  # (examples/: the repository's)
    run = cli(*shlex.split(command)[1:])
    assert run.code == 0, f"{command}: exit {run.code}: {(run.err or run.out).strip().splitlines()[-1:]}"
    written = [a for a in shlex.split(command) if a.endswith((".svg", ".dot"))]
    assert run.out.strip() or all((tmp_path / name).stat().st_size for name in written)
