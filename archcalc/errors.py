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
    keyword = _keyword(name)
    if not value:
        return keyword
    shown = value if value[:1] in _QUOTES or value.isdigit() else repr(value)
    return f"{keyword}={shown}"


def input_option(size=None, batch: int = 1) -> str:
    """An input size as the caller gave it: ``--input 3x224x224`` on the command line (without the batch),
    ``input_size=(1, 3, 224, 224)`` in Python (the full shape, the batch first); without a size, the name."""
    if size is None:
        return option("input")
    return f"--input {size_text(size)}" if COMMAND_LINE.get() else f"input_size={size_text(size, batch)}"


def choices(name: str, values: tuple[str, ...], named: bool = True) -> str:
    """An option and the values it takes: ``--device cpu, cuda or auto``, ``device='cpu', 'cuda' or 'auto'``;
    not ``named``, the values alone."""
    shown = list(values) if COMMAND_LINE.get() else [repr(v) for v in values]
    listed = ", ".join(shown[:-1]) + f" or {shown[-1]}" if len(shown) > 1 else shown[0]
    if not named:
        return listed
    return f"--{name} {listed}" if COMMAND_LINE.get() else f"{_keyword(name)}={listed}"


def real_device() -> str:
    """What counts an operation that reads values the meta device does not hold."""
    return f"run it on a real device ({option('device', 'cpu')})"


def size_text(size, batch: int = 1) -> str:
    """A size (without the batch) as the caller writes it: 3x224x224 on the command line, (1, 3, 224, 224) in
    Python (the full shape)."""
    return "x".join(str(s) for s in size) if COMMAND_LINE.get() else str((batch, *size))


def input_words() -> str:
    """How the caller gives an input size: the option and what it holds."""
    return "--input, without the batch" if COMMAND_LINE.get() else "input_size, the full shape with the batch first"


def example_sizes(batch: int = 1) -> str:
    """Inputs of three kinds (an image, a vector, a sound) as the caller writes their sizes."""
    first, second, third = (size_text(s, batch) for s in ((3, 224, 224), (784,), (1, 16000)))
    return f"{first}, {second} or {third}"


def argument_option(key: str, value: object) -> str:
    """A builder argument as the caller gives it: ``--arg num_classes=10``, ``args={'num_classes': 10}``."""
    if COMMAND_LINE.get():
        return f"--arg {key}={value}"
    return f"args={{{key!r}: {value!r}}}"


def _keyword(name: str) -> str:
    """A flag's keyword in Python: input_size for --input, channels_last for --channels-last."""
    return _KEYWORDS.get(name, name.replace("-", "_"))


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
