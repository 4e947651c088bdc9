"""Which attention kernel a device runs, on the meta device.

F.scaled_dot_product_attention picks its kernel at run time from the device and the inputs. On the meta
device it always takes PyTorch's math path, which makes the L x S attention matrix softmax(Q K^T / sqrt(d))
and saves it for backward: B*h*L*S numbers per call. A CPU or a GPU runs a fused kernel when it can, which
keeps only the output and one log-sum-exp per query row (B*h*L), and recomputes the rest in backward. For a
simulated training step to hold what the device holds, FusedAttention calls the kernel the device would run,
through its meta implementation (the same outputs, shapes and saved tensors; its backward is the fused
backward), while fused_attention(device) is open:

  cpu    _scaled_dot_product_flash_attention_for_cpu, where PyTorch's own choice
         (torch._fused_sdp_choice, asked with real tensors of one sample, with the inputs' strides) is
         flash attention
  cuda   flash attention for float16 and bfloat16 (head size at most 256, no attention mask; a head size
         not a multiple of 8 is padded to one first, the padded Q, K and V kept for backward, as
         attention.cpp does it), else the memory-efficient kernel (head size a multiple of 4 in float32, 8 in half
         precision; its log-sum-exp padded to a multiple of 32 rows), else the math path.
         Both fused kernels want Q, K and V with stride 1 along the head dimension, and a mask with
         stride 1 along its last dimension
         (check_last_dim_stride_equals_1_dense): Q, K and V cut from one projection by a permute and a
         chunk (timm's LowFormer) take the math path, which keeps the attention matrix. cuDNN's attention,
         which recent PyTorch prefers on sm90 and sm100 with cuDNN 9.15 or newer, saves the same tensors as
         flash attention. (The rule is PyTorch's sdp_utils.cpp for sm80 and newer, without a GPU to ask.)

Grouped-query attention (enable_gqa: K and V with fewer heads, as Hugging Face's Llama, Qwen and Gemma pass
them) runs the CPU's flash kernel, which takes them as they are (PyTorch's choice, asked the same way); on
CUDA it keeps the math path here (not checked on a GPU). Nested tensors and anything else keep the math path.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from archcalc.patching import TURN, replaced

_ATEN = torch.ops.aten
_FLASH = 1  # torch.nn.attention.SDPBackend.FLASH_ATTENTION


@contextmanager
def fused_attention(device: str):
    """While it is open, F.scaled_dot_product_attention (also as multi_head_attention_forward and the
    transformer layers call it, by its module's name) runs the kernel ``device`` would run. (A function of
    torch.nn.functional, not a torch-function mode: a mode steps aside inside the Python functions it sees,
    such as multi_head_attention_forward, and would miss the call they make. Other threads keep PyTorch's:
    patching.py.)"""
    chooser = _Chooser(device)
    with TURN:  # (math is PyTorch's function, not another thread's simulation's)
        math = F.scaled_dot_product_attention

        def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                      enable_gqa=False):
            out = chooser.fused(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
            if out is None:
                return math(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                            scale=scale, enable_gqa=enable_gqa)
            return out

        with replaced([(F, "scaled_dot_product_attention", attention)]):
            yield


class _Chooser:
    def __init__(self, device: str):
        self.device = device

    def fused(self, query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa):
        tensors = [t for t in (query, key, value) if isinstance(t, torch.Tensor)]
        if len(tensors) < 3 or any(t.dim() != 4 or t.is_nested for t in tensors):
            return None
        if enable_gqa and self.device != "cpu":  # (the CPU's flash kernel takes K and V of fewer heads itself)
            return None
        if attn_mask is not None and attn_mask.dtype == torch.bool:  # as PyTorch converts it: 0 or -inf
            attn_mask = torch.zeros_like(attn_mask, dtype=query.dtype).masked_fill_(attn_mask.logical_not(),
                                                                                    float("-inf"))
        if self.device == "cpu":
            return self._cpu(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        return self._cuda(query, key, value, attn_mask, dropout_p, is_causal, scale)

    @staticmethod
    def _cpu(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa=False):
        grad = torch.is_grad_enabled()  # (a mask that needs a gradient, a learned position bias: the math path)
        one = [torch.empty_strided((1, *t.shape[1:]), t.stride(), dtype=t.dtype).requires_grad_(
            grad and t.requires_grad) for t in (query, key, value)]  # (the strides: a fused kernel wants stride 1)
        mask = None if attn_mask is None else torch.empty(
            (1, *attn_mask.shape[1:]) if attn_mask.dim() == 4 else attn_mask.shape, dtype=attn_mask.dtype
        ).requires_grad_(grad and attn_mask.requires_grad)
        if torch._fused_sdp_choice(*one, mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa) != _FLASH:
            return None
        return _ATEN._scaled_dot_product_flash_attention_for_cpu(query, key, value, dropout_p, is_causal,
                                                                 attn_mask=attn_mask, scale=scale)[0]

    @staticmethod
    def _cuda(query, key, value, attn_mask, dropout_p, is_causal, scale):
        kernel, d = cuda_kernel(query, key, value, attn_mask), query.shape[-1]
        if kernel == "flash":
            if d % 8:  # attention.cpp: pad_last_dim<8> of Q, K and V (copies autograd keeps), output sliced back
                query, key, value = (F.pad(t, [0, 8 - d % 8]) for t in (query, key, value))
                scale = d ** -0.5 if scale is None else scale  # (the unpadded head size's)
            out = _ATEN._scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal, scale=scale)[0]
            return out[..., :d]
        if kernel == "efficient":
            grad = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
            return _ATEN._scaled_dot_product_efficient_attention(query, key, value, attn_mask, grad, dropout_p,
                                                                 is_causal, scale=scale)[0]
        return None


def cuda_kernel(query, key, value, attn_mask=None) -> str | None:
    """The fused kernel a GPU of sm80 or newer runs for these 4-d inputs, by sdp_utils.cpp's rule: "flash",
    "efficient" or None (the math path). benchmarks/sdpa_rule.py compares it with torch._fused_sdp_choice on
    a GPU."""
    d, d_v = query.shape[-1], value.shape[-1]
    half = query.dtype in (torch.float16, torch.bfloat16)
    unit = all(t.stride(-1) == 1 for t in (query, key, value)) and (attn_mask is None or attn_mask.stride(-1) == 1)
    if half and attn_mask is None and d == key.shape[-1] == d_v and d <= 256 and unit:
        return "flash"
    alignment = 8 if half else 4
    if query.dtype in (torch.float32, torch.float16, torch.bfloat16) and d == key.shape[-1] \
            and d % alignment == 0 and d_v % alignment == 0 and unit:
        return "efficient"
    return None
