"""The CPU's kernels that have no float16 or bfloat16 version, where the meta device's take any dtype.

A training step in reduced precision on the CPU (``--dtype bfloat16`` or ``float16``, no autocast) that reaches
one of these fails for real; simulated on the meta device it would run, and give a peak for a step that cannot
run. training/layout.py's dispatch mode, for the CPU, asks refusal() of each operation first. Under autocast
they run in float32 (each is on the CPU's float32 list), so they are never reached in low precision there.

  avg_pool3d     "avg_pool3d_out_frame" not implemented: nn.LocalResponseNorm pools with it (AlexNet, GoogLeNet)
  _cdist_forward torch.cdist
  _ctc_loss      F.ctc_loss
  polar          torch.polar (float16 on the CPU since PyTorch 2.14)

Which dtypes each lacks is asked of the installed PyTorch, once, by a call on a few CPU numbers (lacks()):
PyTorch adds kernels between releases.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import _disable_current_modes

from archcalc.errors import option

_ATEN = torch.ops.aten
MISSING = {  # aten overload packet -> (how a model reaches it, a call of it on a few CPU numbers of a dtype)
    _ATEN.avg_pool3d: ("avg_pool3d (nn.LocalResponseNorm and F.avg_pool3d call it)",
                       lambda dtype: F.avg_pool3d(torch.ones(1, 1, 2, 2, 2, dtype=dtype), 2)),
    _ATEN._cdist_forward: ("torch.cdist", lambda dtype: torch.cdist(torch.ones(2, 2, dtype=dtype),
                                                                    torch.ones(2, 2, dtype=dtype))),
    _ATEN._ctc_loss: ("F.ctc_loss", lambda dtype: F.ctc_loss(torch.zeros(3, 1, 3, dtype=dtype),
                                                             torch.tensor([[1]]), [3], [1])),
    _ATEN.polar: ("torch.polar", lambda dtype: torch.polar(torch.ones(2, dtype=dtype), torch.ones(2, dtype=dtype))),
}
_LOW = (torch.float16, torch.bfloat16)


@cache
def lacks(packet, dtype: torch.dtype) -> bool:
    """Whether the installed PyTorch's CPU kernel of ``packet`` refuses ``dtype`` (asked outside any simulation)."""
    with _disable_current_modes(), torch._C.DisableTorchFunction(), torch.no_grad():
        try:
            MISSING[packet][1](dtype)
        except (RuntimeError, NotImplementedError):
            return True
    return False


def refusal(func, args: tuple) -> str | None:
    """Why the CPU cannot run ``func`` on these arguments (None: it can)."""
    packet = func.overloadpacket
    if packet not in MISSING:
        return None
    low = next((a.dtype for a in args if isinstance(a, torch.Tensor) and a.dtype in _LOW), None)
    if low is None or not lacks(packet, low):
        return None
    name = str(low).removeprefix("torch.")
    return (f"the CPU has no {name} kernel for {MISSING[packet][0]}, so this step cannot run there in {name}: use "
            f"{option('dtype', 'float32')}, or {option('amp', name)} (autocast runs it in float32)")
