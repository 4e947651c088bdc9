"""ptflops's counting rules (ptflops 0.7.5, ``get_model_complexity_info`` with its default
"pytorch" backend), read from its source and checked against it (tests/test_conventions.py runs
ptflops itself).

ptflops hooks modules by their *exact* type, and patches a list of Python attributes (F.relu,
F.max_pool2d, torch.add, torch.matmul, ...) so that every call made through them also counts,
including the call a module's own forward makes: nn.ReLU, the pooling modules and nn.Upsample
are therefore counted twice (module hook + F.relu / F.max_pool2d / F.interpolate inside).
Per call, with x the input and y the output:

  Conv{1,2,3}d              prod(kernel) x C_in x C_out/g x N x prod(y spatial), + numel(y) with a bias
  ConvTranspose{1,2,3}d     the same with the input's spatial size, + numel(y) with a bias
  Linear                    (in x out + out with a bias) x prod(x.shape[:-1])
  BatchNorm, InstanceNorm, GroupNorm, LayerNorm   numel(x), doubled when .affine (LayerNorm has none)
  ReLU, PReLU, ELU, LeakyReLU, ReLU6, GELU        numel(y)
  every pooling module      numel(x)
  Upsample                  numel(y) (ptflops takes the first sample's size: right for its batch of one)
  LocalResponseNorm         3 numel(x) + N (C + size - 1) prod(x spatial): not hooked itself, but
                            F.local_response_norm calls x.mul(x), F.avg_pool3d on the padded squares,
                            .mul(alpha) and .add(k), all patched
  F.relu, F.prelu, F.elu, F.relu6, F.gelu, F.silu, F.softmax, F.*pool*   numel(x)
  F.interpolate, F.upsample                       numel(y)
  torch.matmul, torch.mm, torch.bmm and the methods x.matmul(w), x.mm(w), x.bmm(w)   prod(x.shape) x other.shape[-1]
  torch.addmm, torch.baddbmm, x.addmm(...)        prod(mat1.shape) x mat2.shape[-1] + numel(input)
  torch.add, torch.mul, x.add(y), x.mul(y)        numel of the two shapes' element-wise maximum,
                                                  aligned from the left
  everything else (torch.cat, the operators x + y, x * y, x @ w, F.conv2d, F.linear)    0
  (F.local_response_norm called directly is not reproduced: its count needs the size argument)

ptflops runs a batch of one and reports one image (given a bigger batch it divides the module hooks'
sum, not the functional calls, by the batch size). archcalc's convention at batch N is N x these rules applied to
a trace of one sample (the engine makes it: tools.Counts), which is ptflops's figure for one image N times by
construction, with what does not grow as the batch does: an addmm's bias, added once a call; work done once a
forward whatever the batch (a position embedding resized to the image); torch.add's left-aligned shapes ((1, T, E)
and (E,) give E x T x E, not the batch's max(N, E) x T x E); a recurrent state made of the input's size (N x 2
directions). Example inputs (no sizes), inputs that share no batch and a sample that cannot run alone (BatchNorm
in a training step) get the rules applied to the batch as it is.
The operators x + y, x * y, x @ y reach archcalc's trace as the methods x.add(y), x.mul(y), x.matmul(y),
which ptflops counts where the operators it does not; the calling line's instruction tells them apart
(origins.operator_spelling).
Its own formulas:
  MultiheadAttention        N x [L*E (Q scaled) + L*E*E + S*kdim*kdim + S*vdim*vdim (as ptflops writes
                            them) + (2S + L)*E in-projection bias + h*L*S*(d_k + 1 + d_v) + L*vdim*(vdim + 1)],
                            and with need_weights the torch.bmm and F.softmax inside F.multi_head_attention_forward
                            (given a mask, its QKᵀ a torch.baddbmm: + the merged mask's elements, per image h*S'
                            for a key-padding mask (N, S), L*S' for an attention mask (L, S), h*L*S' for both or
                            one (N*h, L, S); S' = S + the keys add_bias_kv and add_zero_attn append)
  RNN, GRU, LSTM            N*T x Σ over layers of (W_ih + W_hh elements + biases + 1H (RNN), 7H (GRU) or 10H
                            (LSTM)), x 2 when bidirectional; the cells: N x the same for one step
  an F.* function a module keeps as an attribute (a TransformerEncoderLayer's activation="gelu", Hugging Face's
  GELUActivation: self.act = nn.functional.gelu), bound before ptflops patches it, is not counted
A module held by k parents: hooked once, but its count added from each parent, k times (the patched calls
inside it once: count's paths, from tools._shared).
Two hooks ptflops adds when their library imports (and a model holding one has imported it):
  torchvision.ops.DeformConv2d   prod(kernel) x (C_in x C_out/g + 24, + 1 given a mask positionally) x N x
                            prod(y spatial), + numel(y) with a bias (24: its "cost of bilinear interpolation
                            and fractional coordinates")
  timm's Attention (timm.models.vision_transformer.Attention, the ViT/DeiT block's)
                            N x [T*d*h (Q scaled) + h*(2*T*T*d + T*T)] for T tokens, h heads of d; ptflops's total
                            takes a hooked module's own count in place of its children's, so the qkv and proj
                            Linear layers inside it are left out (their patched F.* calls still count)
"""

from __future__ import annotations

import sys
from math import prod

import torch.nn.functional as F
from torch import nn

from archcalc.analysis.records import LAYER, OP, LayerRecord


def _conv(r: LayerRecord, m) -> int:
    x, y = r.input_shapes[0], r.output_shapes[0]
    spatial = x[2:] if isinstance(m, nn.modules.conv._ConvTransposeNd) else y[2:]
    per_position = prod(m.kernel_size) * m.in_channels * (m.out_channels // m.groups)
    bias = prod(y) if m.bias is not None else 0
    return per_position * x[0] * prod(spatial) + bias


def _linear(r: LayerRecord, m) -> int:
    x, y = r.input_shapes[0], r.output_shapes[0]
    return (x[-1] * y[-1] + (y[-1] if m.bias is not None else 0)) * prod(x[:-1])


def _local_response_norm(r: LayerRecord, m) -> int:
    x = r.input_shapes[0]
    return 3 * prod(x) + x[0] * (x[1] + m.size - 1) * prod(x[2:])


def _norm(r: LayerRecord, m) -> int:
    return prod(r.input_shapes[0]) * (2 if getattr(m, "affine", False) else 1)


def _input(r: LayerRecord, m=None) -> int:
    return prod(r.input_shapes[0])


def _output(r: LayerRecord, m=None) -> int:
    return prod(r.output_shapes[0])


def _multihead_attention(r: LayerRecord, m) -> int:
    q, k, v = r.input_shapes[:3]
    (n, length, _), (_, keys, _) = ((q[0], q[1], q[2]), (k[0], k[1], k[2])) if m.batch_first else \
        ((q[1], q[0], q[2]), (k[1], k[0], k[2]))
    e, kdim, vdim, h = q[-1], k[-1], v[-1], m.num_heads
    flops = length * e + length * e * e + keys * kdim * kdim + keys * vdim * vdim
    if m.in_proj_bias is not None:
        flops += (length + 2 * keys) * e
    flops += h * (length * keys * (e // h) + length * keys + length * keys * (vdim // h))
    flops += length * vdim * (vdim + 1)
    if len(r.output_shapes) > 1:  # need_weights: torch.bmm twice and F.softmax, patched, inside the functional
        flops += h * length * keys * (e // h + vdim // h) + h * length * keys
        flops += _merged_mask(r.input_shapes[3:], n, length, keys + (m.bias_k is not None) + bool(m.add_zero_attn), h)
    return n * flops


def _merged_mask(masks: tuple, n: int, length: int, keys: int, h: int) -> int:
    """The elements of the float mask F.multi_head_attention_forward hands torch.baddbmm for one image (0 without
    a mask: QKᵀ is a torch.bmm), from the masks given after query, key and value: a key-padding mask (N, S) is
    told from an attention mask (L, S) by its first size where N differs from L (where they are equal, a mask
    is taken as the attention mask)."""
    if not masks:
        return 0
    if len(masks) > 1 or len(masks[0]) == 3:
        return h * length * keys
    return h * keys if masks[0][0] == n != length else length * keys


_RECURRENT_EXTRA = {nn.RNN: 1, nn.RNNCell: 1, nn.GRU: 7, nn.GRUCell: 7, nn.LSTM: 10, nn.LSTMCell: 10}


def _recurrent(r: LayerRecord, m) -> int:
    per_step = 0
    for i in range(m.num_layers):
        per_step += getattr(m, f"weight_ih_l{i}").numel() + getattr(m, f"weight_hh_l{i}").numel()
        per_step += _RECURRENT_EXTRA[type(m)] * m.hidden_size
        if m.bias:
            per_step += getattr(m, f"bias_ih_l{i}").numel() + getattr(m, f"bias_hh_l{i}").numel()
    x = r.input_shapes[0]
    return per_step * prod(x[:2]) * (2 if m.bidirectional else 1)


def _recurrent_cell(r: LayerRecord, m) -> int:
    per_step = m.weight_ih.numel() + m.weight_hh.numel() + _RECURRENT_EXTRA[type(m)] * m.hidden_size
    if m.bias:
        per_step += m.bias_ih.numel() + m.bias_hh.numel()
    return per_step * r.input_shapes[0][0]


POOLS = tuple(getattr(nn, f"{kind}Pool{d}d") for kind in ("Max", "Avg", "AdaptiveMax", "AdaptiveAvg") for d in (1, 2, 3))

MODULE_RULES = {
    **dict.fromkeys((nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d),
                    _conv),
    nn.Linear: _linear,
    **dict.fromkeys((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d,
                     nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm), _norm),
    **dict.fromkeys((nn.ReLU, nn.PReLU, nn.ELU, nn.LeakyReLU, nn.ReLU6, nn.GELU), _output),
    **dict.fromkeys(POOLS, _input),
    nn.Upsample: _output,
    nn.LocalResponseNorm: _local_response_norm,
    nn.MultiheadAttention: _multihead_attention,
    **dict.fromkeys((nn.RNN, nn.GRU, nn.LSTM), _recurrent),
    **dict.fromkeys((nn.RNNCell, nn.GRUCell, nn.LSTMCell), _recurrent_cell),
}

def _deform_conv(r: LayerRecord, m) -> int:
    y = r.output_shapes[0]
    extra = 24 + (1 if len(r.input_shapes) > 2 else 0)
    per_position = prod(m.kernel_size) * (m.in_channels * (m.out_channels // m.groups) + extra)
    return per_position * y[0] * prod(y[2:]) + (prod(y) if m.bias is not None else 0)


def _timm_attention(r: LayerRecord, m) -> int:
    n, tokens, _ = r.input_shapes[0]
    h, d = m.num_heads, m.head_dim
    return n * (tokens * d * h + h * (2 * tokens * tokens * d + tokens * tokens))


def module_rules() -> dict:
    """MODULE_RULES with the hooks ptflops adds for torchvision's DeformConv2d and timm's Attention, where those
    libraries are loaded (worked out once a count: tools.counts)."""
    rules = dict(MODULE_RULES)
    for module, name, rule in (("torchvision.ops", "DeformConv2d", _deform_conv),
                               ("timm.models.vision_transformer", "Attention", _timm_attention)):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type):
            rules[cls] = rule
    return rules


def held(owner, origin: str) -> bool:
    """Whether the module that called torch.nn.functional's ``origin`` holds that function as an attribute
    (Hugging Face's GELUActivation: self.act = nn.functional.gelu; nn.TransformerEncoderLayer's activation; a
    functools.partial of it): bound before ptflops patched F.*, the call reaches the function itself, which
    ptflops does not count."""
    if owner is None or not origin.startswith(_F):
        return False
    fn = getattr(F, origin[len(_F):], None)
    return fn is not None and any(v is fn or getattr(v, "func", None) is fn for v in vars(owner).values())


# -- the patched functions, by the name the model called them under (archcalc.analysis.origins)
def _matmul(inputs, outputs) -> int:
    return prod(inputs[0]) * inputs[1][-1]


def _addmm(inputs, outputs) -> int:
    return prod(inputs[1]) * inputs[2][-1] + prod(inputs[0])


def _elementwise(inputs, outputs) -> int:
    if len(inputs) < 2:
        return prod(inputs[0])
    a, b = inputs[0], inputs[1]
    return prod(max(a[i] if i < len(a) else 1, b[i] if i < len(b) else 1) for i in range(max(len(a), len(b))))


_F = "torch.nn.functional."
FUNCTION_RULES = {
    **{_F + name: (lambda inputs, outputs: prod(inputs[0]))
       for name in ("relu", "prelu", "elu", "relu6", "gelu", "silu", "softmax",
                    *(f"{kind}_pool{d}d" for kind in ("avg", "max", "adaptive_avg", "adaptive_max") for d in (1, 2, 3)))},
    _F + "interpolate": lambda inputs, outputs: prod(outputs[0]),
    _F + "upsample": lambda inputs, outputs: prod(outputs[0]),
    **dict.fromkeys(("torch.matmul", "torch.mm", "torch.bmm", "Tensor.matmul", "Tensor.mm", "Tensor.bmm"), _matmul),
    **dict.fromkeys(("torch.addmm", "torch.baddbmm", "Tensor.addmm"), _addmm),
    **dict.fromkeys(("torch.add", "torch.mul", "Tensor.add", "Tensor.mul"), _elementwise),
}  # (the methods x.mul(y), x.matmul(w), ...; the operators x * y, x @ w are Tensor.__mul__, ... : 0)


def _calls(calls) -> int:
    total = 0
    for origin, inputs, outputs in calls:
        rule = FUNCTION_RULES.get(origin)
        if rule is not None and inputs:
            total += rule(inputs, outputs)
    return total


def count(r: LayerRecord, module, shadowed: bool = False, paths: int = 1, rules: dict | None = None) -> int:
    """``shadowed``: the layer is inside a module ptflops hooks (timm's Attention), whose own count replaces
    its children's hooks; ``paths``: the parents that hold the module (ptflops's total adds its hook's count
    from each), the patched calls inside it counted once; ``rules``: module_rules(), where known."""
    if r.kind == OP:
        return _calls([(r.origin, r.input_shapes, r.output_shapes)])
    total = 0
    rule = None if module is None or shadowed else (module_rules() if rules is None else rules).get(type(module))
    if rule is not None:
        total += rule(r, module) * paths
    if r.kind == LAYER:
        total += _calls(r.inner)
    return total
