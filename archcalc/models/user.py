"""A user's own model: `path/to/net.py:Net` or `package.module:build`, with one-line errors that
name the file, the line and the error."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from archcalc.errors import InputError, argument_option, example_sizes, input_words, user_frames
from archcalc.models import programs
from archcalc.models.registry import ModelEntry


def is_user_spec(name: str) -> bool:
    return ":" in name


def _where(error: BaseException, file: str | None) -> str:
    """'net.py line 12' for the deepest frame of the error inside the user's file."""
    if isinstance(error, SyntaxError) and error.lineno:
        return f"{Path(error.filename or file or '?').name} line {error.lineno}"
    frames = traceback.extract_tb(error.__traceback__)
    if file is not None:
        frames = [f for f in frames if Path(f.filename).resolve() == Path(file).resolve()] or frames
    else:
        frames = user_frames(error) or frames
    last = frames[-1] if frames else None
    return f"{Path(last.filename).name} line {last.lineno}" if last else "?"


def _describe(error: BaseException) -> str:
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def load_object(spec: str) -> tuple[Callable[..., Any], str | None]:
    """The class or function a spec names, and the file it came from (None for a module path)."""
    location, _, attr = spec.rpartition(":")
    if not location or not attr:
        raise InputError(f"{spec!r} is not FILE.py:NAME or package.module:NAME")
    if location.endswith(".py") or "/" in location or "\\" in location:
        path = Path(location)
        if not path.is_file():
            raise InputError(f"no file {location!r}")
        module_name = f"archcalc_user_{abs(hash(str(path.resolve())))}"
        try:
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            sys.path.insert(0, str(path.parent.resolve()))
            try:
                module_spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.parent.resolve()))
        except Exception as error:
            raise InputError(f"{_where(error, str(path))}: importing {path.name} failed: {_describe(error)}") from None
        file = str(path)
    else:
        here = str(Path.cwd())
        added = here not in sys.path  # the console script's sys.path lacks the current folder; python -m has it
        if added:
            sys.path.insert(0, here)
        try:
            module = importlib.import_module(location)
        except ModuleNotFoundError as error:
            if error.name is not None and location.split(".")[0] == error.name.split(".")[0]:
                raise InputError(f"{spec}: no module named {error.name!r} in the current folder ({here}) or the "
                                 f"installed packages; run archcalc from the folder that holds it, or give "
                                 f"path/to/file.py:NAME") from None
            raise InputError(f"{_where(error, None)}: importing {location} failed: {_describe(error)}") from None
        except Exception as error:
            raise InputError(f"{_where(error, None)}: importing {location} failed: {_describe(error)}") from None
        finally:
            if added:
                sys.path.remove(here)
        file = getattr(module, "__file__", None)
    if not hasattr(module, attr):
        names = sorted(n for n, v in vars(module).items() if not n.startswith("_") and callable(v)
                       and getattr(v, "__module__", None) == module.__name__)
        raise InputError(f"{Path(file).name if file else location} has no {attr!r}"
                         + (f"; it defines: {', '.join(names)}" if names else ""))
    return getattr(module, attr), file


def _defined_in(path: str) -> list[str]:
    """The public classes (nn.Module's subclasses first) and functions a Python file defines, read without running
    it; none where it cannot be read."""
    import ast

    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return []
    found = [node for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))
             and not node.name.startswith("_")]
    modules = [n.name for n in found if isinstance(n, ast.ClassDef) and "Module" in " ".join(map(ast.unparse, n.bases))]
    return modules + [n.name for n in found if n.name not in modules]


def construct(spec: str, kwargs: dict[str, Any]):
    """Call the user's class or function; anything it raises becomes one line naming file and line."""
    import torch

    obj, file = load_object(spec)
    if not callable(obj):
        raise InputError(f"{spec} is {type(obj).__name__} {obj!r:.40}, not a model: name an nn.Module class, a model "
                         f"instance or a function that returns one")
    try:
        model = obj(**kwargs)
    except TypeError as error:
        if "argument" in str(error):
            try:
                accepted = ", ".join(inspect.signature(obj).parameters) or "none"
            except (TypeError, ValueError):
                accepted = "?"
            raise InputError(f"{spec}: {_describe(error)} (it takes: {accepted}; pass them with "
                             f"{argument_option('key', 'value')})") from None
        raise InputError(f"{_where(error, file)}: constructing {spec} failed: {_describe(error)}") from None
    except Exception as error:
        raise InputError(f"{_where(error, file)}: constructing {spec} failed: {_describe(error)}") from None
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    return traceable(model, spec)


def traceable(model, spec: str):
    """The Python module archcalc can trace: torch.compile's wrapper gives its original; a TorchScript
    module (torch.jit.script or torch.jit.trace), whose forward runs in the TorchScript interpreter
    where no layer can be seen, is refused rather than counted as nothing."""
    import torch

    original = getattr(model, "_orig_mod", None)
    if type(model).__name__ == "OptimizedModule" and isinstance(original, torch.nn.Module):
        model = original
    for name, module in model.named_modules():
        if isinstance(module, torch.jit.ScriptModule):
            what = f"its module {name!r}" if name else "it"
            raise InputError(f"{spec}: {what} is a TorchScript module (torch.jit.script or torch.jit.trace), whose "
                             f"layers run in the TorchScript interpreter where archcalc cannot see them; give the "
                             f"Python module it was made from")
    return model


def entry_for(spec: str, given_input: tuple[int, ...] | None) -> ModelEntry:
    """A registry-like entry for a user's model; its input is --input (any size without the batch:
    3x224x224, 784, 1x16000), or the archcalc_input attribute of its class or function: a size, several
    sizes ((3, 32, 32), (10,)), or example inputs (a tensor, a tuple of them, or a dict of keyword inputs,
    with the batch)."""
    obj, _ = load_object(spec)
    entry = _entry(spec, spec, getattr(obj, "archcalc_input", None), given_input)
    if _is_module(obj):  # a model the file made (`model = Net()`): analysed as its twin, as one given from Python
        made = _converted(obj, entry, spec) if programs.is_torchscript(obj) else obj
        return replace(entry, module=traceable(made, spec))
    return entry


def program_entry(path: str, given_input) -> ModelEntry:
    """A program torch.export.save wrote (a .pt2 file): its module, a graph of ATen operators (analysis/aten.py),
    analysed as a twin; its input the example inputs it was exported with, unless --input is given (a program
    exported without dynamic shapes runs at those sizes only, and says so)."""
    program = programs.load(path)
    entry = _entry(path, "", programs.declared_input(program), given_input,
                   f"{Path(path).name} holds no example inputs: give its input size with "
                   f"{input_words()}")
    return replace(entry, description="a program torch.export saved", module=traceable(programs.modules(program), path))


def torchscript_entry(path: str, given_input, input_dtypes=None) -> ModelEntry:
    """A TorchScript archive torch.jit.save wrote (a .pt file): converted to an exported program (programs.py) at
    the size given, in the dtypes given, its batch left free."""
    module = programs.load_torchscript(path)
    entry = _entry(path, "", None, given_input, f"a TorchScript file holds no input size: give it with "
                                                f"{input_words()}")
    return replace(entry, description="a TorchScript module, converted",
                   module=_converted(module, entry, path, input_dtypes))


def _converted(module, entry: ModelEntry, name: str, input_dtypes=None):
    """A TorchScript module as the program torch.export's converter makes of it, at the entry's input (a batch of
    2: the converter leaves a batch of more than one free), or an example's."""
    example = entry.example
    if example is not None and not (isinstance(example, (tuple, list)) and all(_is_size(s) for s in example)):
        return programs.from_torchscript(module, example, name)  # (example tensors)
    sizes = [entry.default_input] if example is None else [tuple(s) for s in example]
    return programs.from_torchscript(module, [(2, *size) for size in sizes], name, input_dtypes)


def _is_module(obj) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def module_entry(model, given_input) -> ModelEntry:
    """The entry of an nn.Module given from Python (archcalc.memory(net, ...), archcalc.time(net, ...)):
    built as its twin on each device (analysis/twin.py), so the module itself is never moved or run; its
    input as entry_for's (the size given, else its archcalc_input)."""
    name = type(model).__name__
    entry = _entry(name, "", getattr(model, "archcalc_input", None), given_input, f"give the input of {name}: "
                   f"input_size=(1, 3, 224, 224) (with the batch), or set archcalc_input = (3, 224, 224) on it")
    if programs.is_torchscript(model):
        model = _converted(model, entry, name)
    model = traceable(model, name)
    return replace(entry, description="a module given from Python", source="", module=model)


def example_entry(model, inputs) -> ModelEntry:
    """The entry of an nn.Module given from Python with example inputs (archcalc.reconcile(net, inputs=...))."""
    model = traceable(model, type(model).__name__)
    return replace(_entry(type(model).__name__, "", inputs, None), description="a module given from Python",
                   source="", module=model)


def _entry(name: str, builder: str, declared, given_input, missing: str | None = None) -> ModelEntry:
    default, example = (), None
    if declared is not None:
        if _is_size(declared):
            default = tuple(declared)
        else:
            example = declared
    if given_input is not None and _is_size(given_input):  # the size given becomes the entry's own
        size = tuple(given_input)
        default, example = (default[:1] + size if len(default) == 3 and len(size) == 2 else size), None
    elif given_input is not None:  # several sizes
        example = [tuple(s) for s in given_input]
    if given_input is None and not default and example is None:
        raise InputError(missing or f"give the input size of {name} with {input_words()} (e.g. "
                                    f"{example_sizes()}), or set archcalc_input = (3, 224, 224) on it")
    return ModelEntry(name, "user", builder, default, "a user's model", name, example=example)


def _is_size(value) -> bool:
    return isinstance(value, (tuple, list)) and len(value) > 0 and all(
        isinstance(n, int) and not isinstance(n, bool) for n in value)


def lookup(name: str, given_input: tuple[int, ...] | None = None, input_dtypes=None) -> ModelEntry:
    """A registered model by name, or a user's model by FILE.py:NAME / package.module:NAME, a .pt2 program or a
    TorchScript file (``input_dtypes``: its inputs' dtypes, for the example the converter runs)."""
    if is_user_spec(name):
        return entry_for(name, given_input)
    if name.endswith(".pt2"):
        return program_entry(name, given_input)
    if name.endswith((".pt", ".pth", ".ptl")):
        return torchscript_entry(name, given_input, input_dtypes)
    if name.endswith(".py") or "/" in name or "\\" in name:
        if name.endswith(".py") and not Path(name).exists():
            raise InputError(f"no file {name!r} in {Path.cwd()}; a model in a file is named FILE.py:NAME, e.g. "
                             f"{name}:Net")
        defined = _defined_in(name) if name.endswith(".py") else []
        example = f"{name}:{defined[0] if defined else 'Net'}" if name.endswith(".py") else "path/to/net.py:Net"
        raise InputError(f"{name!r} is a file, not a model: name the class or function in it as FILE.py:NAME, e.g. "
                         f"{example}" + (f" (it defines: {', '.join(defined)})" if len(defined) > 1 else ""))
    from archcalc.models.catalog import REGISTRY

    return REGISTRY.get(name)
