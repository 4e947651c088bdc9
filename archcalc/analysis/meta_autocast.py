"""torch.autocast opened by a model inside a forward pass archcalc runs on the meta device.

Code that wants part of its forward in float32 whatever the caller's mixed precision turns autocast off
around it, on the device its tensors are on: ``with torch.autocast(device_type=x.device.type,
enabled=False):`` (rotary embeddings, losses, EfficientViT's linear attention). On the meta device that is
``torch.autocast("meta", ...)``, which PyTorch refuses ("unsupported scalarType"): the analysis failed on
such a model. While meta_autocast is open, an autocast region of one of ``devices`` neither fails nor calls
PyTorch's (which does nothing to meta tensors anyway); with ``states`` (the stack of (enabled, dtype) that
the simulated autocast of training/autocast.py keeps, innermost last), entering one pushes its (enabled,
dtype: the enclosing one's where it names none) and leaving it pops, as PyTorch's sets and restores its
device's state. A region of another device is PyTorch's own: nothing it does reaches these operations.
torch.cuda.amp.autocast and the decorator form go through the same three methods. The state's queries answer for
those devices too, where PyTorch's refuse "meta" ("unsupported scalarType"): torch.is_autocast_enabled(device) (the
innermost region's, False with none) and torch.get_autocast_dtype(device) (its dtype, else the CPU's), which
torch.amp.custom_fwd asks of the device its inputs are on (speechbrain's features, Fbank and MFCC: its
fwd_default_precision); and torch._C._is_any_autocast_enabled(), which nn.RNN asks before it refuses an input
whose dtype is not its weights' (a bfloat16 sequence from a projected LSTM under autocast).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable

import torch

from archcalc.patching import replaced


@contextmanager
def meta_autocast(devices: Iterable[str] = ("meta",), states: list | None = None):
    cls = torch.amp.autocast_mode.autocast
    devices = frozenset(devices)
    init, enter, leave = cls.__init__, cls.__enter__, cls.__exit__

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if device_type not in devices:
            return init(self, device_type, dtype, enabled, cache_enabled)
        self.device, self.fast_dtype, self._enabled = device_type, dtype, bool(enabled)

    def __enter__(self):
        if self.device not in devices:
            return enter(self)
        if states is not None:
            states.append((self._enabled, self.fast_dtype or states[-1][1]))
        return self

    def __exit__(self, *exception):
        if self.device not in devices:
            return leave(self, *exception)
        if states is not None:
            states.pop()
        return False

    enabled, dtype = torch.is_autocast_enabled, torch.get_autocast_dtype

    def is_autocast_enabled(*args, **kwargs):  # (device_type, by position or by name; none: CUDA's, PyTorch's)
        if kwargs.get("device_type", args[0] if args else None) in devices:
            return bool(states and states[-1][0])
        return enabled(*args, **kwargs)

    def get_autocast_dtype(*args, **kwargs):
        if kwargs.get("device_type", args[0] if args else None) in devices:
            return states[-1][1] if states and states[-1][1] else dtype("cpu")
        return dtype(*args, **kwargs)

    anywhere = torch._C._is_any_autocast_enabled

    def is_any_autocast_enabled():  # (nn.RNN's check of its input's dtype against its weights' skips under autocast)
        return bool(states and states[-1][0]) or anywhere()

    with replaced([(cls, "__init__", __init__), (cls, "__enter__", __enter__), (cls, "__exit__", __exit__),
                   (torch, "is_autocast_enabled", is_autocast_enabled),
                   (torch, "get_autocast_dtype", get_autocast_dtype),
                   (torch._C, "_is_any_autocast_enabled", is_any_autocast_enabled)]):
        yield
