"""The one exception family the library raises for bad input; the CLI turns it into one line. And where in the
user's own code an error happened, which its line names."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextvars import ContextVar

# Whether the calls come from the command line (cli/app.py's main sets it while a command runs, and resets it): its
# --input, the size without the batch, may be a shorthand (HxW with the model's channels, one number for a square),
# which a Python caller's input_size, a full shape, is not (api._full_shape); and a message names an option as the
# caller gave it (option).
COMMAND_LINE: ContextVar[bool] = ContextVar("archcalc_command_line", default=False)


def option(name: str, value: str = "") -> str:
    """An option as the caller gave it, in a message: ``--fit 16GiB`` on the command line, ``fit='16GiB'`` in Python
    (the functions' keyword: input_size for --input); ``value`` as the command line shows it."""
    if COMMAND_LINE.get():
        return f"--{name}" + (f" {value}" if value else "")
    keyword = _KEYWORDS.get(name, name.replace("-", "_"))
    if not value:
        return keyword
    shown = value if value[:1] in _QUOTES or value.isdigit() else repr(value)
    return f"{keyword}={shown}"


_KEYWORDS = {"input": "input_size", "input-dtype": "input_dtypes", "arg": "args"}
_QUOTES = ("'", '"')


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
