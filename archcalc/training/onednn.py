"""What an LSTM keeps for backward on the CPU, where oneDNN runs it, on the meta device.

On the CPU, nn.LSTM in float32 (no proj_size, oneDNN enabled, not a packed sequence) is run by oneDNN's
fused RNN primitive, one call per layer and direction (PyTorch's mkldnn_rnn: aten.mkldnn_rnn_layer), which
returns, beside y, h_T and c_T, a workspace that autograd saves for the backward (made wherever grad mode is
on, in eval mode too). The meta device instead decomposes the LSTM into its gates, step by step (other
tensors saved), and its mkldnn_rnn_layer returns an empty workspace. mkldnn_rnn runs the CPU's path on the
meta device (native_rnn.cpu_recurrence calls it for such an LSTM), with the workspace oneDNN allocates
(oneDNN 3's rnn_utils: set_workspace_sizes, set_offsets) for T steps, a batch of N, input size I (SLC),
hidden size H (DHC), G = 4 gates, L = 1 layer and one direction a call, in float32:

  gates                        T * N * ld(G*H)
  ht                           T * N * ld(H)
  states (layer and iter)      (L+1) * (T+1) * N * ld(max(I, H))
  c states                     (L+1) * (T+1) * N * H
  diff states, layer and iter  (L+1) * (T+1) * N * ld(max(I, H)), each
  diff c states                (L+1) * (T+1) * N * H

each part starting at a 4096-byte page, ld(d) = d rounded up to 16 floats (64 bytes), plus 16 where that
is a multiple of 256 (oneDNN's get_good_ld, against 4K aliasing). tests/test_onednn.py checks it against the
real kernel's workspace on layers of random shapes, and whole networks against real CPU tensors.

In bfloat16 or float16 (a bfloat16 model where oneDNN has the kernel, or any float32 LSTM under autocast, which
casts at mkldnn_rnn_layer, inside the LSTM: PyTorch chose oneDNN on the float32 input) the workspace's layout is
another, not modelled here: such a step is refused (refusal), and where this CPU's oneDNN has no such kernel
(no AVX-512 BF16 or FP16, asked once by a call on a few zeros: lacks) the refusal says the real step fails.
"""

from __future__ import annotations

from functools import cache

import torch
from torch.utils._python_dispatch import _disable_current_modes

from archcalc.errors import option

PAGE = 4096
_LSTM = 2  # ideep::rnn_kind::LSTM


def good_ld(d: int) -> int:
    """oneDNN's leading dimension for d floats: a multiple of 16 (64 bytes), never of 256."""
    ld = -(-d // 16) * 16
    return ld + 16 if ld % 256 == 0 else ld


def workspace_bytes(T: int, N: int, I: int, H: int) -> int:
    """The workspace of one LSTM layer and direction, training, float32 (the table above)."""
    L, G, f32 = 1, 4, 4
    states = (L + 1) * (T + 1) * N * good_ld(max(I, H)) * f32
    c_states = (L + 1) * (T + 1) * N * H * f32
    parts = (T * N * good_ld(G * H) * f32, T * N * good_ld(H) * f32, states, c_states, states, states, c_states)
    offset = 0
    for part in parts:
        offset = -(-offset // PAGE) * PAGE + part
    return -(-offset // PAGE) * PAGE


def takes_onednn(x: torch.Tensor, hx) -> bool:
    """Whether the CPU would run this LSTM call with oneDNN (PyTorch's use_mkldnn: float32, or bfloat16 where this
    CPU's oneDNN has the kernel; no projection)."""
    low = x.dtype == torch.bfloat16 and lacks(torch.bfloat16) is None
    return _enabled() and (x.dtype == torch.float32 or low) and x.numel() > 0 and hx[0].size(-1) == hx[1].size(-1)


@cache
def lacks(dtype: torch.dtype) -> str | None:
    """PyTorch's words where this CPU's oneDNN cannot run an LSTM layer in ``dtype`` (a call on a few zeros, outside
    any simulation); None where it can."""
    T, N, H = 2, 1, 4
    zeros = [torch.zeros(*size, dtype=dtype) for size in ((T, N, H), (4 * H, H), (4 * H, H), (4 * H,), (4 * H,),
                                                           (N, H), (N, H))]
    with _disable_current_modes(), torch._C.DisableTorchFunction():
        try:
            torch.ops.aten.mkldnn_rnn_layer(*zeros, False, [], _LSTM, H, 1, True, False, False, True)
        except (RuntimeError, NotImplementedError) as error:
            return str(error).splitlines()[0].split(". ")[0].removesuffix(".")  # (its first sentence)
    return None


def refusal(dtype: torch.dtype, amp: torch.dtype | None) -> str | None:
    """Why an LSTM call that oneDNN takes (its input in ``dtype``) is not simulated: oneDNN runs it in a low
    precision (a bfloat16 input, or any under autocast ``amp``, which casts inside the LSTM), whose workspace is not
    modelled, or which this CPU's oneDNN has no kernel for (the real step fails). None in float32."""
    low = amp or dtype
    if low == torch.float32:
        return None
    name = str(low).removeprefix("torch.")
    missing = lacks(low)
    if missing is not None:
        return f"under {option('amp', name)} oneDNN runs the LSTM in {name} (autocast casts inside it), which " \
               f"this CPU's oneDNN has no kernel for: the real step fails (PyTorch: '{missing}'); drop {option('amp')}"
    how = f"under {option('amp', name)}" if amp else f"in {name}"
    return f"oneDNN runs the LSTM {how}, whose {name} workspace is not modelled: not simulated; drop " \
           f"{option('amp') if amp else option('dtype')}"


def runs(module: torch.nn.Module) -> bool:
    """Whether the CPU runs this module with oneDNN's LSTM (float32, no proj_size)."""
    return (isinstance(module, torch.nn.LSTM) and not module.proj_size and _enabled()
            and next(module.parameters()).dtype == torch.float32)


def _enabled() -> bool:
    return torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled


def mkldnn_rnn(x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """PyTorch's mkldnn_rnn (aten/src/ATen/native/mkldnn/RNN.cpp), op for op."""
    x = (x.transpose(0, 1) if batch_first else x).contiguous()
    h0, c0 = hx[0].contiguous(), hx[1].contiguous()
    stride, directions = (4 if has_biases else 2), (2 if bidirectional else 1)
    hidden = h0.size(2)
    layer_input, hy, cy = x, [], []
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            w = params[index * stride:(index + 1) * stride]
            b_ih = w[2] if has_biases else torch.zeros(w[0].shape, dtype=w[0].dtype, device=w[0].device)
            b_hh = w[3] if has_biases else torch.zeros(w[1].shape, dtype=w[1].dtype, device=w[1].device)
            options = (direction > 0, hidden, num_layers, has_biases, bidirectional, batch_first, train,
                       torch.is_grad_enabled())
            out, h, c = _Layer.apply(layer_input, w[0], w[1], b_ih, b_hh, h0[index], c0[index], options)
            outputs.append(out)
            hy.append(h)
            cy.append(c)
        layer_input = outputs[0] if directions == 1 else torch.cat(outputs, -1)
        if dropout and train and layer < num_layers - 1:
            layer_input = torch.dropout(layer_input, dropout, True)
    output = layer_input.transpose(0, 1) if batch_first else layer_input
    return output, torch.stack(hy, 0), torch.stack(cy, 0)


class _Layer(torch.autograd.Function):
    """aten.mkldnn_rnn_layer with the workspace oneDNN makes, saved for mkldnn_rnn_layer_backward as
    PyTorch's own autograd formula saves it (the inputs, the outputs and the workspace)."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0, c0, options):
        reverse, hidden, num_layers, has_biases, bidirectional, batch_first, train, grad = options
        out, hy, cy, _ = torch.ops.aten.mkldnn_rnn_layer(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse, [], _LSTM,
                                                          hidden, num_layers, has_biases, bidirectional,
                                                          batch_first, train)
        T, N, I = x.shape
        size = workspace_bytes(T, N, I, hidden) if grad else 0  # the CPU makes one wherever grad mode is on
        workspace = torch.empty(size, dtype=torch.uint8, device=x.device)
        ctx.save_for_backward(x, w_ih, w_hh, b_ih, b_hh, h0, c0, out, hy, cy, workspace)
        ctx.options = options
        ctx.set_materialize_grads(False)
        return out, hy, cy

    @staticmethod
    def backward(ctx, d_out, d_hy, d_cy):
        x, w_ih, w_hh, b_ih, b_hh, h0, c0, out, hy, cy, workspace = ctx.saved_tensors
        reverse, hidden, num_layers, has_biases, bidirectional, batch_first, train, _ = ctx.options
        # The CPU's ∂b is 4H floats. PyTorch 2.11's meta kernel gives it b_ih's shape, which without biases is
        # the zeros of w_ih's shape (2.12 fixed it): a 1-d view of them gives 4H on every version, for free.
        b_ih, b_hh = b_ih.view(-1)[:4 * hidden], b_hh.view(-1)[:4 * hidden]
        grads = torch.ops.aten.mkldnn_rnn_layer_backward(x, w_ih, w_hh, b_ih, b_hh, h0, c0, out, hy, cy, d_out,
                                                         d_hy, d_cy, reverse, _LSTM, hidden, num_layers,
                                                         has_biases, train, bidirectional, [], batch_first,
                                                         workspace)
        dx, dw_ih, dw_hh, db, db2, dh0, dc0 = grads
        if db2 is db:  # the meta kernel returns one tensor twice; the CPU's returns a clone (diff_b2)
            db2 = db.clone()
        return dx, dw_ih, dw_hh, db, db2, dh0, dc0, None
