"""Torch's functions replaced while a simulation runs, for the simulating thread only.

The simulations of fused attention and of autocast replace functions of torch, torch.nn.functional and
torch.Tensor (module attributes: every thread sees them). So that a notebook's other threads, or a data
loader's, keep PyTorch's own functions while one simulates, each replacement calls the simulation's function
only on the thread that opened it and PyTorch's everywhere else; and simulations on two threads take turns
(one lock), so that each puts back PyTorch's functions and not the other's.
"""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from functools import partial
from types import ClassMethodDescriptorType

TURN = threading.RLock()  # held by the thread whose simulation has torch's functions replaced


@contextmanager
def replaced(points):
    """Open while ``points`` ((owner, name, replacement) each) are set on their owners for this thread. A
    name the owner inherits (a tensor method of the C base class) is deleted afterwards, not set back. A
    class method (torch.autograd.Function.apply) stays one: its replacement is called with the class."""
    with TURN:
        thread = threading.get_ident()
        saved = [(owner, name, vars(owner)[name] if name in vars(owner) else getattr(owner, name), name in vars(owner))
                 for owner, name, _ in points]
        try:
            for (owner, name, replacement), (_, _, original, _) in zip(points, saved):
                if isinstance(original, (classmethod, ClassMethodDescriptorType)):  # (2.14's Function.apply: C's)
                    setattr(owner, name, classmethod(_on(thread, replacement, partial(on_class, original))))
                else:
                    setattr(owner, name, _on(thread, replacement, original))
            yield
        finally:
            for owner, name, original, owned in reversed(saved):
                if owned:
                    setattr(owner, name, original)
                elif name in vars(owner):
                    delattr(owner, name)


def on_class(method, cls, *args, **kwargs):
    """A class method (Python's or C's) called on ``cls``."""
    return method.__get__(None, cls)(*args, **kwargs)


def _on(thread: int, replacement, original):
    def call(*args, **kwargs):
        return (replacement if threading.get_ident() == thread else original)(*args, **kwargs)

    # (functools.wraps's names, set directly: a trace replaces eight functions, and wraps' copying of the
    # original's __dict__ cost more than the rest of the replacing)
    call.__wrapped__ = original
    for name in _NAMES:
        value = getattr(original, name, None)
        if value is not None:
            setattr(call, name, value)
    return call


_NAMES = ("__module__", "__name__", "__qualname__", "__doc__")
