"""The one exception family the library raises for bad input; the CLI turns it into one line. And where in the
user's own code an error happened, which its line names."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator


class ArchcalcError(Exception):
    """A domain error with a message that says what was wrong and what would be right."""


class InputError(ArchcalcError):
    """A value given by the user (size, kernel, model name, option) cannot be used."""


class ForwardError(ArchcalcError):
    """The model's forward pass failed; the message names the layer where it failed.

    ``ran`` holds the analysis of the layers that ran before the failure, when there is one.
    """

    ran = None


def chain(error: BaseException | None) -> Iterator[BaseException]:
    """The error, then the one it was raised from or during (``raise ... from``, or in an ``except``), and so on."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def user_frames(error: BaseException) -> list[traceback.FrameSummary]:
    """The frames of ``error``'s traceback in the user's own code: not archcalc's package, not a library's
    (site-packages, PyTorch's folder), not generated code (<string>). Told by folder, not by name: a project
    checked out as .../archcalc/ (git's folder for this repository) is the user's."""
    folders = [os.path.dirname(os.path.abspath(__file__))]
    torch = sys.modules.get("torch")
    if getattr(torch, "__file__", None):
        folders.append(os.path.dirname(os.path.abspath(torch.__file__)))
    libraries = tuple(os.path.join(folder, "") for folder in folders)
    return [f for f in traceback.extract_tb(error.__traceback__)
            if not f.filename.startswith("<") and "site-packages" not in f.filename
            and not os.path.abspath(f.filename).startswith(libraries)]
