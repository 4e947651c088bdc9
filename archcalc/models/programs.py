"""Models that come as programs instead of Python code: a program torch.export.save wrote (.pt2), and a TorchScript
module (torch.jit.script or torch.jit.trace, or a .pt file torch.jit.save wrote), which torch.export's converter
turns into such a program. Either becomes the modules it was exported from (torch.export.unflatten), whose graphs
call ATen's operators (analysis/aten.py counts each as the function it stands for)."""

from __future__ import annotations

import logging
import warnings
from functools import partial
from pathlib import Path

from archcalc.errors import InputError


def load(path: str):
    """The ExportedProgram in a .pt2 file; one line where there is none."""
    import torch

    if not Path(path).is_file():
        raise InputError(f"no file {path!r}")
    try:
        with warnings.catch_warnings():  # (PyTorch's own deprecation notices while it reads the file)
            warnings.simplefilter("ignore")
            return torch.export.load(path)
    except Exception as error:  # noqa: BLE001 (whatever the file holds: one line)
        raise InputError(f"{Path(path).name} is not a program torch.export.save wrote: {_first(error)}") from None


def load_torchscript(path: str):
    """The TorchScript module in a file torch.jit.save wrote; one line where there is none (a state_dict, a
    pickled model: they hold no graph to convert)."""
    import torch

    if not Path(path).is_file():
        raise InputError(f"no file {path!r}")
    try:
        return torch.jit.load(path, map_location="cpu")
    except Exception:  # noqa: BLE001
        raise InputError(f"{Path(path).name} is not a TorchScript module torch.jit.save wrote: a state_dict "
                         f"(torch.save(model.state_dict(), ...)) holds weights, not the network; give the Python class "
                         f"as FILE.py:NAME") from None


def declared_input(program):
    """What the program's example inputs say of its input: the sizes without the batch where every input is a
    floating-point tensor with a dynamic batch (any --batch then), else the examples themselves (their batch)."""
    example = program.example_inputs
    if example is None or not (example[0] or example[1]):
        return None
    args, kwargs = example
    if kwargs:
        return kwargs if not args else None
    if all(t.is_floating_point() for t in args) and _batch_is_dynamic(program):
        sizes = [tuple(t.shape[1:]) for t in args]
        return sizes[0] if len(sizes) == 1 else sizes
    return args[0] if len(args) == 1 else tuple(args)


def modules(program):
    """The program as the modules it was exported from (torch.export.unflatten: each submodule under its own name,
    its part of the graph its forward), else as one graph (ExportedProgram.module()); each input's size checked
    where the program fixed it."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            made = torch.export.unflatten(program)
    except Exception:  # noqa: BLE001 (a program unflatten cannot take apart: its one graph)
        made = program.module()
    else:
        for module in made.modules():  # (the fake tensors of its shapes, symbolic where exported with dynamic
            graph = getattr(module, "graph", None)  # shapes, cannot be copied; running the graph needs none)
            if isinstance(graph, torch.fx.Graph):
                for node in graph.nodes:
                    for key in ("val", "example_value", "tensor_meta", "unbacked_bindings"):
                        node.meta.pop(key, None)
    made.register_forward_pre_hook(partial(_sizes_checked, _exported_sizes(program)))
    return made


def is_torchscript(model) -> bool:
    import torch

    return isinstance(model, torch.jit.ScriptModule)


def from_torchscript(module, example, name: str, dtypes=None):
    """A TorchScript module as the program torch.export's converter (torch._export.converter, PyTorch 2.4 on) makes
    of it, run on ``example``: full shapes (with the batch) in ``dtypes`` (one for all or one each: "int64" or
    "int64:N" for token ids, zeros; float32 where None) or example tensors."""
    import torch

    if isinstance(example, torch.Tensor):
        example = (example,)
    elif isinstance(example, list) and all(isinstance(s, (tuple, list)) for s in example):
        kinds = list(dtypes) if isinstance(dtypes, (list, tuple)) else [dtypes] * len(example)
        example = tuple(_sample(s, kind) for s, kind in zip(example, kinds + [None] * len(example)))
    elif not isinstance(example, (tuple, list)):  # (keyword inputs: a TorchScript module is called by position)
        raise InputError(f"{name} is a TorchScript module: give its inputs by position (sizes or tensors), not "
                         f"{type(example).__name__}")
    try:
        from torch._export.converter import TS2EPConverter
    except ImportError:
        raise InputError(f"{name} is a TorchScript module, and this PyTorch has no converter of TorchScript to a "
                         f"program (torch._export.converter): give the Python module it was made from") from None
    quiet = logging.root.manager.disable  # (the converter logs each size it fixes or frees: not the user's concern)
    try:
        logging.disable(logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = TS2EPConverter(module.cpu(), tuple(example)).convert()
    except Exception as error:  # noqa: BLE001 (what the converter cannot take: one line)
        raise InputError(f"{name} is a TorchScript module that torch.export's converter could not turn into a "
                         f"program ({_first(error)}): give the Python module it was made from") from None
    finally:
        logging.disable(quiet)
    return _parameters_restored(modules(program), module)


def _parameters_restored(made, module):
    """The converter lifts the parameters of a TorchScript module that torch.jit.load read as buffers (it cannot
    tell them apart there): each one the TorchScript module calls a parameter becomes one again, trainable as it
    was, so that parameters, gradients and optimizer state count it (one Parameter for a tensor several
    submodules hold)."""
    import torch

    trainable = {name: p.requires_grad for name, p in module.named_parameters()}
    made_as: dict[int, torch.nn.Parameter] = {}
    trees = [made]  # (and the module that owns the graph of one, which unflatten keeps beside it)
    trees += [owner for m in made.modules() if isinstance(owner := getattr(getattr(m, "graph", None),
                                                                            "_owning_module", None), torch.nn.Module)
              and owner is not m and all(owner is not t for t in trees)]
    for prefix, holder in (pair for tree in trees for pair in tree.named_modules(remove_duplicate=False)):
        for leaf, tensor in list(holder._buffers.items()):
            name = f"{prefix}.{leaf}" if prefix else leaf
            if tensor is None or (name not in trainable and id(tensor) not in made_as):
                continue
            if id(tensor) not in made_as:
                made_as[id(tensor)] = torch.nn.Parameter(tensor.detach(), requires_grad=trainable[name])
            del holder._buffers[leaf]
            holder._parameters[leaf] = made_as[id(tensor)]
    return made


def _sample(shape, kind):
    """An input of ``shape`` for the converter to run: zeros of an integer dtype (token ids), else random floats."""
    import torch

    dtype = kind if isinstance(kind, torch.dtype) else getattr(torch, str(kind).split(":")[0], None) if kind else None
    if isinstance(dtype, torch.dtype) and not (dtype.is_floating_point or dtype.is_complex):
        return torch.zeros(shape, dtype=dtype)
    return torch.randn(shape, dtype=dtype if isinstance(dtype, torch.dtype) else torch.float32)


def _exported_sizes(program) -> list:
    """Each input's size as the program was exported for it: a number where it is fixed, None where dynamic."""
    import torch

    users = set(program.graph_signature.user_inputs)
    values = [n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder" and n.name in users]
    return [tuple(None if isinstance(n, torch.SymInt) else int(n) for n in v.shape) if hasattr(v, "shape") else None
            for v in values]


def _sizes_checked(sizes: list, module, args) -> None:
    """A program's sizes are fixed where it was exported without dynamic shapes: say so before its graph fails
    somewhere inside on a size it was traced with (a batch of another size meets a reshape to the old one)."""
    import torch

    given = [a for a in args if isinstance(a, torch.Tensor)]
    for i, (t, size) in enumerate(zip(given, sizes)):
        if size is not None and (t.dim() != len(size) or any(s is not None and s != n for s, n in zip(size, t.shape))):
            wanted = "x".join("*" if s is None else str(s) for s in size)
            raise RuntimeError(f"Guard failed: input {i} is {'x'.join(map(str, t.shape))}, the program takes "
                               f"{wanted} (* any size)")


def _batch_is_dynamic(program) -> bool:
    """Whether every input the user gives was exported with a dynamic first dimension (torch.export.Dim)."""
    sizes = _exported_sizes(program)
    return bool(sizes) and all(size and size[0] is None for size in sizes)


def _first(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:160]}" if text else type(error).__name__
