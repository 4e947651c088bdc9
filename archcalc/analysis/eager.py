"""Compiled code run as Python while a trace runs, so that its operations are counted: flex_attention's kernel,
torch.compile'd functions and layers, and functions made by ``@torch.jit.script``."""

from __future__ import annotations

import contextlib
import sys

import torch

from archcalc.analysis.calls import tensors_in
from archcalc.patching import replaced


@contextlib.contextmanager
def flex_eagerly():
    """flex_attention (torch.nn.attention.flex_attention) runs its kernel through torch.compile even in eager
    mode, and Dynamo cannot trace this mode's __torch_function__ ("cls_source must not be None for MRO walk"):
    while a trace runs, its own debugging switch makes it call the kernel (one higher-order operation, counted
    by attention.py) directly. (Imported here, a few milliseconds once: a model may import it in its forward.)"""
    try:
        import torch.nn.attention.flex_attention as flex
    except ImportError:  # (a PyTorch without it)
        flex = None
    switch = "_FLEX_ATTENTION_DISABLE_COMPILE_DEBUG"
    if flex is None or not hasattr(flex, switch):
        yield
        return
    was = getattr(flex, switch)
    setattr(flex, switch, True)
    try:
        yield
    finally:
        setattr(flex, switch, was)


def compiled_eagerly():
    """A torch.compile'd function or layer inside the model (``@torch.compile``) runs as plain Python while a
    trace runs (torch.compiler.set_stance("force_eager")), so that its operations are counted: Dynamo cannot
    trace this mode's __torch_function__ and stopped the analysis. Nothing to do where Dynamo was never
    imported (then nothing was compiled)."""
    if "torch._dynamo" not in sys.modules or not hasattr(torch.compiler, "set_stance"):
        return contextlib.nullcontext()
    return torch.compiler.set_stance("force_eager")


def scripted_eagerly(tracer):
    """A function made by ``@torch.jit.script`` (a fused activation, as older repositories write Swish and Mish)
    runs in the TorchScript interpreter, out of this mode's sight: while a trace runs, each call runs the Python
    function it was made from (the one torch.compile inlines, ``_torchdynamo_inline``), whose operations are counted.
    One without it (compiled from a string) runs as it is, a row "not counted". A scripted module is refused apart
    (engine.check_arguments: give the Python module)."""
    script_function = getattr(torch.jit, "ScriptFunction", None)
    if script_function is None:
        return contextlib.nullcontext()
    scripted = script_function.__call__

    def call(function, *args, **kwargs):
        original = getattr(function, "_torchdynamo_inline", None)
        if callable(original):
            return original(*args, **kwargs)
        result = scripted(function, *args, **kwargs)
        tracer.unseen(function.name, tensors_in(args) + tensors_in(kwargs), tensors_in(result))
        return result

    return replaced([(script_function, "__call__", call)])
