"""An independent count: torch.utils.flop_counter's formulas applied to every aten operation that runs, without
FlopCounterMode itself, whose module tracking fails on a module called inside autograd's engine ("Expected gradient
function to be set": a reversible block's backward) and on torch.autograd.grad inside a forward ("A leaf node was
passed to _will_engine_execute_node": a physics-informed network)."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import conv_flop_count, flop_registry


def _convolution_backward(grad_out, x, w, _bias, _stride, _padding, _dilation, transposed, _output_padding, _groups,
                          output_mask, out_val=None) -> int:
    """∂x and ∂W of a convolution, each as many FLOPs as its forward: flop_counter's own formula (PyTorch 2.13)
    multiplies a grouped convolution's ∂W by all C_in channels, not C_in/g (benchmarks/hf_zoo.py corrects it the
    same way; vmap's per-sample ∂W is such a grouped convolution, g = the batch)."""
    forward = conv_flop_count(list(x.shape), list(w.shape), list(grad_out.shape), transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


_RULES = {**flop_registry, torch.ops.aten.convolution_backward: _convolution_backward}


class AtenMacs(TorchDispatchMode):
    """Inside it, ``macs`` adds up flop_counter's FLOPs / 2 of each operation run (backward kernels included), but
    for one given an efficient zero tensor (forward-mode AD's tangent of an input that has none: `_efficientzerotensor`),
    whose kernel returns zeros without arithmetic."""

    macs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        rule = _RULES.get(func._overloadpacket)
        if rule is not None and not any(isinstance(a, torch.Tensor) and a._is_zerotensor() for a in args):
            self.macs += rule(*args, **(kwargs or {}), out_val=out) // 2
        return out


def step_macs(model, shape) -> tuple[int, int]:
    """(forward, backward) MACs of a real training step on the CPU by these formulas: the model on a random input of
    ``shape``, the loss the sum of every output that needs a gradient (none: no backward)."""
    torch.manual_seed(0)
    with AtenMacs() as counter:
        y = model(torch.randn(shape))
        outputs = [t for t in tree_leaves(y) if isinstance(t, torch.Tensor) and t.requires_grad]
        forward = counter.macs
        if outputs:
            sum(t.sum() for t in outputs).backward()
    return forward, counter.macs - forward
