"""A call run in a process of its own, so that a native abort inside it is a reported failure, not archcalc's.

TorchScript's tracer, which fvcore counts by, can fail one of PyTorch's internal checks, and a failed check in C++
aborts the whole process (SIGABRT, a C++ stack dump, exit 134), which no ``except`` catches: a model that calls a
module, catches the TypeError, and calls it again (speechbrain's Xvector: ``try: layer(x, lengths=lens) except
TypeError: layer(x)``) leaves fvcore's trace with a scope it cannot close ("n->owningGraph() == this &&
n->inBlockList() INTERNAL ASSERT FAILED"). On Linux the call runs in a forked child (its memory the parent's, copied
on write): its integer result, or its exception's text, comes back through a pipe, and where the child dies instead,
the line PyTorch wrote before it did. Elsewhere the call runs here.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import tempfile
from collections.abc import Callable


class Failed(Exception):
    """The call's own exception, as ``Type: message`` (raised in the child, so only its text came back)."""


def run(call: Callable[[], int]) -> int:
    if not (sys.platform.startswith("linux") and hasattr(os, "fork")):
        return call()
    read, write = os.pipe()
    with tempfile.TemporaryFile() as said:  # (what the child writes to its stderr: PyTorch's "what():" line)
        pid = os.fork()
        if pid == 0:  # the child: nothing it does returns here
            _child(call, read, write, said.fileno())
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            answer = pipe.read().decode("utf-8", "replace")
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status) or not answer:
            said.seek(0)
            raise Failed(_death(status, said.read().decode("utf-8", "replace")))
    kind, _, text = answer.partition("\n")
    if kind == "error":
        raise Failed(text)
    return int(text)


def _child(call: Callable[[], int], read: int, write: int, stderr: int) -> None:
    try:
        os.close(read)
        os.dup2(stderr, 2)
        faulthandler.disable()  # (pytest's, or PYTHONFAULTHANDLER's: its dump of an abort goes to its own stderr)
        import torch

        torch.set_num_threads(1)  # (the parent's OpenMP pool is not the child's: a data loader's workers do so too)
        try:
            answer = f"ok\n{int(call())}"
        except BaseException as error:  # (reported to the parent, which decides)
            answer = f"error\n{type(error).__name__}: {error}"
        os.write(write, answer.encode("utf-8", "replace"))
    finally:
        os._exit(0)


def _death(status: int, stderr: str) -> str:
    what = next((line.split("what():", 1)[1].strip() for line in stderr.splitlines() if "what():" in line), "")
    how = f"killed by {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status) else "ended with no answer"
    return f"its process was {how}" + (f": {what}" if what else "")
