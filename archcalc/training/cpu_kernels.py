"""The CPU's kernels that have no float16 or bfloat16 version, where the meta device's take any dtype.

A training step in reduced precision on the CPU (``--dtype bfloat16`` or ``float16``, no autocast) that reaches
one of these fails for real; simulated on the meta device it would run, and give a peak for a step that cannot
run. training/layout.py's dispatch mode, for the CPU, asks refusal() of each operation first. Under autocast
they run in float32 (each is on the CPU's float32 list), so they are never reached in low precision there.

  avg_pool3d     "avg_pool3d_out_frame" not implemented: nn.LocalResponseNorm pools with it (AlexNet, GoogLeNet)
  _cdist_forward torch.cdist
  _ctc_loss      F.ctc_loss
  polar          torch.polar

(tests/test_peak.py checks each against the installed PyTorch's CPU, so that a kernel PyTorch adds is noticed.)
"""

from __future__ import annotations

import torch

_ATEN = torch.ops.aten
MISSING = {  # aten overload packet -> how a model reaches it
    _ATEN.avg_pool3d: "avg_pool3d (nn.LocalResponseNorm and F.avg_pool3d call it)",
    _ATEN._cdist_forward: "torch.cdist",
    _ATEN._ctc_loss: "F.ctc_loss",
    _ATEN.polar: "torch.polar",
}
_LOW = (torch.float16, torch.bfloat16)


def refusal(func, args: tuple) -> str | None:
    """Why the CPU cannot run ``func`` on these arguments (None: it can)."""
    what = MISSING.get(func.overloadpacket)
    if what is None:
        return None
    low = next((a.dtype for a in args if isinstance(a, torch.Tensor) and a.dtype in _LOW), None)
    if low is None:
        return None
    name = str(low).removeprefix("torch.")
    return (f"the CPU has no {name} kernel for {what}, so this step cannot run there in {name}: use --dtype "
            f"float32, or --amp {name} (autocast runs it in float32)")
