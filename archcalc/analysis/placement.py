"""Where a model is built and run, decided here: the meta device or the CPU (``--device auto``), and the
CPU where the meta device refuses.

  - auto: the first operations on the meta device make PyTorch import about a second of its own modules
    (its Python meta kernels, sympy, torch._dynamo), which costs more than a real pass of a small model.
    A model of at most 30 M parameters on an input of at most 2 M elements, in float32 or float64, runs
    on the CPU (the same counts); anything larger, or a CPU pass that runs out of memory, on meta.

The meta device holds shapes and no values, so anything that reads a value back fails there: a
constructor that computes its widths with tensors and calls ``.tolist()`` or ``.item()``
(torchvision's RegNets), or a forward pass whose control flow reads a tensor (``if x.mean() > 0``).
  - Such a constructor runs on the CPU with every parameter and buffer moved to the meta device as
    it is registered (the ``init_empty_weights`` approach of Hugging Face's accelerate): its own
    arithmetic sees real numbers, its weights take no memory.
  - Such a forward pass runs again on the CPU with a random input, when the model's parameters fit
    in memory; its costs are then those of the branch that input took.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin

from archcalc.analysis.packed import quantized
from archcalc.errors import chain, option, user_frames


CPU_PARAMS, CPU_INPUT = 30_000_000, 2_000_000  # the largest model and input ``auto`` runs on the CPU


def auto(model: nn.Module, elements: int, dtype: torch.dtype) -> tuple[str, str]:
    """("cpu" or "meta", why) for a model built on the meta device and inputs of ``elements`` in all."""
    if quantized(model):
        return "cpu", ("device auto: the CPU (a quantized network: its int8 kernels, FBGEMM's or QNNPACK's, are the "
                       "CPU's, with no meta version)")
    params = sum(p.numel() for p in model.parameters() if not isinstance(p, UninitializedTensorMixin))  # lazy: unmade
    if dtype not in (torch.float32, torch.float64):
        return "meta", f"device auto: meta ({str(dtype).removeprefix('torch.')} runs slowly or not at all on the CPU)"
    if params <= CPU_PARAMS and elements <= CPU_INPUT:
        return "cpu", (f"device auto: the CPU ({params:,} parameters, an input of {elements:,} elements: a real pass "
                       f"costs less than the meta device's start-up; {option('device', 'meta')} gives the same counts, "
                       f"but for an operation whose work its values decide: matrix_exp, ctc_loss, "
                       f"multilabel_margin_loss, NMS)")
    return "meta", (f"device auto: meta ({params:,} parameters, an input of {elements:,} elements: too large to run "
                    f"for real here at no cost)")


_KERNEL_ELSEWHERE = "tensors on meta device"  # (flex_attention's device check)
_NO_META_KERNEL = ("no fake impl or Meta kernel",  # (an aten operator without a meta version: torch.geqrf)
                   "could not find the fake impl",  # (another namespace's: quantized::linear_dynamic)
                   "from the 'SparseMeta' backend", "from the 'SparseCsrMeta' backend")  # (a sparse matrix's mm)


def _elsewhere(error: BaseException) -> bool:
    """A kernel with no meta version refusing meta tensors (flex_attention's device check, torch.geqrf)."""
    return (isinstance(error, ValueError) and _KERNEL_ELSEWHERE in str(error)
            or isinstance(error, NotImplementedError) and any(text in str(error) for text in _NO_META_KERNEL))


def _laid_out_otherwise(error: BaseException) -> bool:
    """A view the meta kernels' strides refuse where the CPU's allow it (PyTorch 2.11's meta attention, in a graph
    torch.export recorded as aten.view on the CPU's layout)."""
    return isinstance(error, RuntimeError) and str(error).startswith(_VIEW_REFUSED)


_VIEW_REFUSED = "view size is not compatible with input tensor's size and stride"


_DEVICES_MIXED = ("Expected all tensors to be on the same device", "is not on the expected device meta")


def refusal(error: BaseException | None, name: str) -> tuple[str, bool]:
    """What the meta device's refusal was, said as a note's start, and whether the forward read a value (its costs
    then those of the branch a random input takes): a kernel with no meta version (flex_attention, torch.geqrf), a
    view its layout refuses, a tensor made on the CPU meeting the meta device's, else the forward reading a value."""
    if any(_laid_out_otherwise(e) for e in chain(error)):
        return (f"a view in the forward pass of {name} is refused by the meta device's strides, which differ from the "
                f"CPU's there"), False
    if any(isinstance(e, RuntimeError) and any(words in str(e) for words in _DEVICES_MIXED) for e in chain(error)):
        return (f"the forward pass of {name} makes a tensor on the CPU, which meets the meta device's (a tensor made "
                f"without device=x.device)"), False
    kernel = next((e for e in chain(error) if _elsewhere(e)), None)
    if kernel is not None:
        first = str(kernel).splitlines()[0]
        operator = re.search(r"\w+::\w+", first) if isinstance(kernel, NotImplementedError) else None
        sparse = " for a sparse tensor" if "Sparse" in first else ""
        why = f"{operator.group()} has no meta kernel{sparse}" if operator else first
        return f"a kernel in the forward pass of {name} runs on real devices only ({why})", False
    return f"the forward pass of {name} reads a tensor's value, which the meta device cannot give", True


def refuses_meta(error: BaseException | None) -> bool:
    """Whether an error is the meta device refusing to give a value ('Cannot copy out of meta tensor',
    'Tensor.item() cannot be called on meta tensors', a data-dependent shape), or refusing meta tensors."""
    return any(isinstance(e, (NotImplementedError, RuntimeError)) and "meta" in str(e).lower() or _elsewhere(e)
               or _laid_out_otherwise(e) for e in chain(error))


@contextlib.contextmanager
def parameters_on(device: torch.device) -> Iterator[None]:
    """Every parameter and buffer registered inside is moved to ``device`` as it is registered."""
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter(module: nn.Module, name: str, param) -> None:
        register_parameter(module, name, param)
        if param is not None:
            made = module._parameters[name]
            module._parameters[name] = type(made)(made.to(device), requires_grad=made.requires_grad)

    def buffer(module: nn.Module, name: str, tensor, persistent: bool = True) -> None:
        register_buffer(module, name, tensor, persistent)
        if tensor is not None:
            module._buffers[name] = module._buffers[name].to(device)

    nn.Module.register_parameter, nn.Module.register_buffer = parameter, buffer
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer


CONSTRUCTED_ON_CPU = ("its constructor reads tensor values, which the meta device cannot give: built on the CPU "
                      "with its parameters and buffers on the meta device")
CONSTRUCTED_ON_CPU_WITH_WEIGHTS = ("its constructor runs tensors through its own weights, which neither the meta device "
                                   "nor meta parameters allow: built on the CPU, then moved to the meta device")


def construct(make: Callable[[], nn.Module], device: torch.device) -> tuple[nn.Module, str]:
    """The model ``make`` builds on ``device``, and a note when it had to be built another way."""
    try:
        with torch.device(device):
            return make(), ""
    except Exception:
        # On meta, any failure may be the meta device's (a value read back, a torch.jit.trace of a CPU
        # example through meta weights, a check on a tensor): build on the CPU with the parameters on meta.
        if device.type != "meta":
            raise
    try:
        with torch.device("cpu"), parameters_on(device):
            return make(), CONSTRUCTED_ON_CPU
    except Exception:  # (a torch.jit.trace in the constructor runs its CPU example through the weights)
        pass
    with torch.device("cpu"):  # a plain CPU build: should this fail too, its error is the one to tell
        model = make()
    return model.to(device), CONSTRUCTED_ON_CPU_WITH_WEIGHTS


def user_line(error: BaseException) -> str:
    """'net.py line 12': the deepest frame of the error in code that is neither torch's nor archcalc's."""
    frames = user_frames(error)
    return f"{Path(frames[-1].filename).name} line {frames[-1].lineno}" if frames else ""


def free_memory() -> int | None:
    """The bytes this machine can give now without swapping: /proc/meminfo's MemAvailable (what the page cache
    holds counts as free), else the free pages; None where neither can be read."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def fits_in_memory(model: nn.Module) -> bool:
    """Whether the model's parameters and buffers take under a quarter of the memory free now."""
    size = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers())
               if not isinstance(t, UninitializedTensorMixin))
    free = free_memory()
    return size < (2**30 if free is None else free // 4)
