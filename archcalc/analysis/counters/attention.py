"""Attention: F.scaled_dot_product_attention, nn.MultiheadAttention, and its functional forms.

Symbols (Vaswani et al. 2017): batch N, heads h, query length L, key/value length S, query/key width
d_k and value width d_v per head, model width E = h*d_k; K/V inputs of kdim and vdim features.
  attention(Q, K, V) = softmax(QKᵀ/√d_k + mask) V
    QKᵀ:           N*h*L*S*d_k MACs          (one dot product per score)
    softmax(·) V:  N*h*L*S*d_v MACs          (one weighted sum per output)
    element-wise:  per score 1 scale + 1 softmax (+ 1 mask add) (+ 2 dropout: its mask scaled and applied,
                   where dropout_p > 0: SDPA's argument, a MultiheadAttention's in train mode)
  Causal attention is counted in full (N*h*L*S scores), as PyTorch's math kernel and
  torch.utils.flop_counter count it; grouped-query attention (enable_gqa, h_kv < h key/value heads)
  costs the same per query head.
  MultiheadAttention = in-projections (Q: N*L*E*E, K: N*S*kdim*E, V: N*S*vdim*E)
                     + attention over S' = S (+1 with add_bias_kv) (+1 with add_zero_attn) keys
                     + out-projection N*L*E*E_out; biases 1 add per output element
  (E_out = E, but in the functional form, whose out_proj_weight (E_out, E) may be narrower or wider: the
  attention pool of CLIP's ResNets projects E = 2048 to E_out = 1024).
Every path gives the same count: need_weights true or false, the fused fast path PyTorch takes in
eval mode without grad (torch._native_multi_head_attention), and F.multi_head_attention_forward.
Backward (the math kernel's, as autograd runs it and torch.utils.flop_counter counts it on the meta
device and the CPU): ∂P = ∂O·Vᵀ (N*h*L*S*d_v, when Q or K needs a gradient), ∂V = Pᵀ·∂O (N*h*L*S*d_v),
∂Q = ∂S·K and ∂K = ∂Sᵀ·Q (N*h*L*S*d_k each): twice the forward. (The fused flash and memory-efficient
kernels recompute QKᵀ as well: 2.5 x the forward, as flop_counter counts them on CUDA.) MultiheadAttention
adds the projections' gradients: ∂W of each (trainable) and ∂x of each input that needs one (its functional
form F.multi_head_attention_forward the same, its weights being arguments).
Forward-mode AD (jvp, jacfwd, hessian's forward: attention_tangents), each product's tangent A'·B + A·B' where one
of its operands carries one (PyTorch multiplies the other's zeros too, once), each term as many times as its
tangent is batched (jacfwd's basis): Ṡ = Q̇·Kᵀ + Q·K̇ᵀ where Q or K carries one, Ȯ = Ṗ·V + P·V̇ where P (of Q, K
and a float mask) or V does; MultiheadAttention's projections x·Wᵀ where x or W carries one (a cross-attention's
memory and frozen weights: none), its out-projection where the attention's output or W_out does.
"""

from __future__ import annotations

import re
from functools import partial
from math import prod
from typing import NamedTuple

from torch import nn

from archcalc.analysis.counters.text import tensor_shape
from torch import Tensor

from archcalc.analysis.counting import (GRAD_MODULES, GRAD_OPS, MODULES, OPS, Count, ModuleCall, Needs, OpCall,
                                        gradients, own_tangent, tangent_products)
from archcalc.analysis.shapes import elements_text
from archcalc.formulas.numbers import grouped


def attention_count(batch: tuple, L: int, S: int, d_k: int, d_v: int, masked: bool, dropout: bool) -> Count:
    """softmax(QKᵀ/√d_k + mask)V over batch dims ``batch`` (N, h): MACs = (N*h*L*S)*(d_k + d_v)."""
    scores = (*batch, L, S)
    n = prod(scores)
    macs = n * (d_k + d_v)
    per = 2 + masked + 2 * dropout
    return Count(macs, per * n, partial(_attention_text, scores, d_k, d_v, macs, per, masked, dropout))


def _attention_text(scores, d_k, d_v, macs, per, masked, dropout) -> dict[str, str]:
    n = prod(scores)
    extra = (" + mask" if masked else "") + (" + dropout" if dropout else "")
    return {
        "macs": f"QKᵀ {elements_text(scores)}*{d_k} + AV {elements_text(scores)}*{d_v} = {grouped(macs)}",
        "elementwise": f"(scale + softmax{extra}) per score: {per}*{elements_text(scores)} = {grouped(per * n)}",
    }


# -- F.scaled_dot_product_attention ----------------------------------------------------------

@OPS.register("scaled_dot_product_attention")
def scaled_dot_product_attention(call: OpCall) -> Count:
    """query (..., h, L, d_k), key (..., h_kv, S, d_k), value (..., h_kv, S, d_v)."""
    q, k, v = (tensor_shape(call.arg(i, name)) for i, name in ((0, "query"), (1, "key"), (2, "value")))
    masked = call.arg(3, "attn_mask") is not None or bool(call.arg(5, "is_causal", False))
    dropout = bool(call.arg(4, "dropout_p", 0.0))
    return attention_count(q[:-2], q[-2], k[-2], q[-1], v[-1], masked, dropout)


@OPS.register("flex_attention")
def flex_attention(call: OpCall) -> Count:
    """torch.nn.attention.flex_attention's kernel (query, key, value, score_mod, block_mask, scale, ...): every
    score counted, as flop_counter counts it (a block mask's skipped blocks too, as causal SDPA's); a score_mod
    other than the identity is one more operation a score, as a mask's add."""
    q, k, v = (tensor_shape(call.args[i]) for i in range(3))
    modified = getattr(call.arg(3, "score_mod"), "__name__", "") != "_identity"
    return attention_count(q[:-2], q[-2], k[-2], q[-1], v[-1], modified, False)


# -- multi-head attention ------------------------------------------------------------------------

class Heads(NamedTuple):
    """One multi-head attention call, in the symbols above."""

    N: int
    L: int
    S: int  # keys and values as given
    E: int
    kdim: int
    vdim: int
    h: int
    extra_keys: int  # add_bias_kv and add_zero_attn each append one key and value
    in_bias: bool
    out_bias: bool
    masked: bool
    weights: tuple | None  # the attention weights returned (need_weights), averaged over heads or not
    dropout: bool = False  # on the attention weights (train mode, dropout_p > 0)
    E_out: int | None = None  # the out-projection's width where it is not E (the functional form's, CLIP's pool)

    @property
    def out(self) -> int:
        return self.E if self.E_out is None else self.E_out


def multi_head_count(a: Heads) -> Count:
    N, L, S, E, h = a.N, a.L, a.S + a.extra_keys, a.E, a.h
    d = E // h
    projections = N * L * E * E + N * a.S * a.kdim * E + N * a.S * a.vdim * E
    inner = attention_count((N, h), L, S, d, d, a.masked, a.dropout)
    out = N * L * E * a.out
    bias = (N * L * E + 2 * N * a.S * E if a.in_bias else 0) + (N * L * a.out if a.out_bias else 0)
    averaged = prod(a.weights) * h if a.weights is not None and len(a.weights) == 3 else 0  # mean over h heads
    macs = projections + inner.macs + out
    elementwise = bias + inner.elementwise + averaged
    return Count(macs, elementwise, partial(_multi_head_text, a, macs, bias, inner.elementwise, averaged))


def _multi_head_text(a: Heads, macs: int, bias: int, scores: int, averaged: int) -> dict[str, str]:
    N, L, E, h = a.N, a.L, a.E, a.h
    S = a.S + a.extra_keys
    d = E // h
    keys = f"({a.S} + {a.extra_keys})" if a.extra_keys else f"{a.S}"
    text = {
        "macs": (f"Q {N}*{L}*{E}*{E} + K {N}*{a.S}*{a.kdim}*{E} + V {N}*{a.S}*{a.vdim}*{E} + "
                 f"QKᵀ,AV {N}*{h}*{L}*{keys}*({d} + {d}) + out {N}*{L}*{E}*{a.out} = {grouped(macs)}"),
    }
    parts = []
    if bias:
        parts.append(f"biases {grouped(bias)}")
    per = 2 + a.masked + 2 * a.dropout
    extra = (" + mask" if a.masked else "") + (" + dropout 2" if a.dropout else "")
    parts.append(f"(scale + softmax{extra}) {per}*({N}*{h}*{L}*{S}) = {grouped(scores)}")
    if averaged:
        parts.append(f"weights averaged over {h} heads {grouped(averaged)}")
    text["elementwise"] = " + ".join(parts) + f" = {grouped(bias + scores + averaged)}"
    return text


_SCORES = re.compile(r"QKᵀ,AV (\d+)\*(\d+)\*(\d+)\*(?:\((\d+) \+ (\d+)\)|(\d+))\*\((\d+) \+ (\d+)\)")


def scores_of(text: str) -> tuple[int, int, int] | None:
    """(scores N*h*L*S', d_k, d_v) read back from a multi-head row's MACs text (_multi_head_text's), for a
    convention that counts its projections apart from its attention; None for any other text."""
    found = _SCORES.search(text)
    if found is None:
        return None
    N, h, L, S, extra, keys, d_k, d_v = (int(g) if g else 0 for g in found.groups())
    return N * h * L * (keys or S + extra), d_k, d_v


def layout(query: tuple, key: tuple, batch_first: bool) -> tuple[int, int, int]:
    """(N, L, S) from (N, L, E) / (L, N, E) shapes, or unbatched (L, E)."""
    if len(query) == 2:
        return 1, query[0], key[0]
    if batch_first:
        return query[0], query[1], key[1]
    return query[1], query[0], key[0]


@MODULES.register(nn.MultiheadAttention)
def multihead_attention(call: ModuleCall) -> Count:
    m = call.module
    query, key, value = call.inputs[:3]
    N, L, S = layout(query, key, m.batch_first)
    weights = call.outputs[1] if len(call.outputs) > 1 else None  # need_weights: (N, L, S) or (N, h, L, S)
    return multi_head_count(Heads(
        N, L, S, m.embed_dim, key[-1], value[-1], m.num_heads,
        (m.bias_k is not None) + bool(m.add_zero_attn), m.in_proj_bias is not None, m.out_proj.bias is not None,
        len(call.inputs) > 3, weights, m.training and m.dropout > 0))


@OPS.register("multi_head_attention_forward")
def multi_head_attention_forward(call: OpCall) -> Count:
    """F.multi_head_attention_forward(query (L, N, E), key, value, embed_dim, num_heads, in_proj_weight,
    in_proj_bias, bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias, training,
    key_padding_mask, need_weights, attn_mask, ...)."""
    query, key, value = (tensor_shape(call.arg(i, n)) for i, n in ((0, "query"), (1, "key"), (2, "value")))
    N, L, S = layout(query, key, False)
    masked = any(call.arg(i, n) is not None for i, n in ((14, "key_padding_mask"), (16, "attn_mask"))) or bool(
        call.arg(24, "is_causal", False))
    weights = call.outputs[1] if len(call.outputs) > 1 else None
    extra = (call.arg(7, "bias_k") is not None) + bool(call.arg(9, "add_zero_attn", False))
    return multi_head_count(Heads(
        N, L, S, call.arg(3, "embed_dim_to_check"), key[-1], value[-1], call.arg(4, "num_heads"), extra,
        call.arg(6, "in_proj_bias") is not None, call.arg(12, "out_proj_bias") is not None, masked, weights,
        bool(call.arg(13, "training", True)) and call.arg(10, "dropout_p", 0.0) > 0, _out_width(call)))


def _out_width(call: OpCall) -> int:
    """The functional form's out-projection width: its out_proj_weight's rows (E_out, E)."""
    return tensor_shape(call.arg(11, "out_proj_weight"))[0]


@OPS.register("_native_multi_head_attention")
def native_multi_head_attention(call: OpCall) -> Count:
    """The fused kernel of the fast path: (query (N, L, E), key, value, embed_dim, num_head, qkv_weight,
    qkv_bias, proj_weight, proj_bias, mask, need_weights, average_attn_weights, mask_type)."""
    query, key, value = (tensor_shape(call.args[i]) for i in range(3))
    N, L, S = layout(query, key, True)
    weights = call.outputs[1] if len(call.outputs) > 1 and call.arg(10, "need_weights", True) else None
    return multi_head_count(Heads(
        N, L, S, call.args[3], key[-1], value[-1], call.args[4], 0, call.arg(6, "qkv_bias") is not None,
        call.arg(8, "proj_bias") is not None, call.arg(9, "mask") is not None, weights))


def given(call: OpCall, values, *arguments) -> list:
    """Of ``values``, one per tensor of the call in the order the trace gives them (its arguments', then its
    keywords': a Needs' flags, the times forward-mode AD's tangents run), those of the tensors given as these
    arguments (found by identity: a functional form's weights and masks, wherever they were passed)."""
    order = [t for t in (*call.args, *call.kwargs.values()) if isinstance(t, Tensor)]
    return [value for t, value in zip(order, values) if any(t is a for a in arguments if a is not None)]


# -- backward ------------------------------------------------------------------------------

def attention_gradients(batch: tuple, L: int, S: int, d_k: int, d_v: int, q: bool, k: bool, v: bool,
                        mask: bool = False) -> list:
    """∂P = ∂O·Vᵀ where Q, K or a float mask (a learned position bias given as attn_mask: ∂mask = ∂S) needs a
    gradient, ∂V = Pᵀ·∂O, ∂Q = ∂S·K, ∂K = ∂Sᵀ·Q."""
    scores = (*batch, L, S)
    n, shape = prod(scores), elements_text(scores)
    return [("∂P=∂O·Vᵀ", q or k or mask, n * d_v, f"{shape}*{d_v}"), ("∂V=Pᵀ·∂O", v, n * d_v, f"{shape}*{d_v}"),
            ("∂Q=∂S·K", q, n * d_k, f"{shape}*{d_k}"), ("∂K=∂Sᵀ·Q", k, n * d_k, f"{shape}*{d_k}")]


def attention_tangents(batch: tuple, L: int, S: int, d_k: int, d_v: int, q: int, k: int, v: int,
                       mask: int = 0) -> list[tuple[str, int, int, str]]:
    """The products of attention's tangent, given how many times Q's, K's, V's and a float mask's tangents run (0:
    none): Ṡ = Q̇·Kᵀ + Q·K̇ᵀ where Q or K carries one, Ṗ (softmax's, element-wise) batched as Ṡ and the mask's,
    Ȯ = Ṗ·V + P·V̇ where P or V carries one; a term whose operand carries none multiplies its zeros once."""
    scores = (*batch, L, S)
    n, shape = prod(scores), elements_text(scores)
    p = max(q, k, mask)
    terms = []
    if q or k:
        terms += [("Q̇·Kᵀ", n * d_k, max(q, 1), f"{shape}*{d_k}"), ("Q·K̇ᵀ", n * d_k, max(k, 1), f"{shape}*{d_k}")]
    if p or v:
        terms += [("Ṗ·V", n * d_v, max(p, 1), f"{shape}*{d_v}"), ("P·V̇", n * d_v, max(v, 1), f"{shape}*{d_v}")]
    return terms


def scaled_dot_product_attention_tangent(call: OpCall, extra: tuple[int, ...], weights: int) -> Count:
    """F.scaled_dot_product_attention under forward-mode AD: query, key, value and a float attn_mask, each by how
    many times its tangent runs (the operation's tensors in order, as the trace gives them)."""
    q, k, v = (tensor_shape(call.arg(i, name)) for i, name in ((0, "query"), (1, "key"), (2, "value")))
    f = [max(given(call, extra, call.arg(i, name)), default=0)
         for i, name in ((0, "query"), (1, "key"), (2, "value"), (3, "attn_mask"))]
    return tangent_products(attention_tangents(q[:-2], q[-2], k[-2], q[-1], v[-1], *f))


@GRAD_OPS.register("scaled_dot_product_attention")
@own_tangent(scaled_dot_product_attention_tangent)
def scaled_dot_product_attention_backward(call: OpCall, needs: Needs) -> Count:
    q, k, v = (tensor_shape(call.arg(i, name)) for i, name in ((0, "query"), (1, "key"), (2, "value")))
    return gradients(attention_gradients(q[:-2], q[-2], k[-2], q[-1], v[-1], *(
        any(given(call, needs.inputs, call.arg(i, name)))
        for i, name in ((0, "query"), (1, "key"), (2, "value"), (3, "attn_mask")))))


def multihead_attention_tangent(call: ModuleCall, extra: tuple[int, ...], weights: int) -> Count:
    """nn.MultiheadAttention under forward-mode AD: query, key and value (and a float mask) by how many times each
    one's tangent runs, its weights' ``weights`` (multi_head_tangents)."""
    m = call.module
    query, key, value = call.inputs[:3]
    N, L, S = layout(query, key, m.batch_first)
    f = (*extra, 0, 0, 0)
    return multi_head_tangents(N, L, S, m.embed_dim, m.num_heads, key[-1], value[-1],
                               (m.bias_k is not None) + bool(m.add_zero_attn), f[:3], weights, max(f[3:], default=0))


@GRAD_MODULES.register(nn.MultiheadAttention)
@own_tangent(multihead_attention_tangent)
def multihead_attention_backward(call: ModuleCall, needs: Needs) -> Count:
    m = call.module
    query, key, value = call.inputs[:3]
    N, L, S = layout(query, key, m.batch_first)
    extra = (m.bias_k is not None) + bool(m.add_zero_attn)
    weights = tuple(needs.weight("in_proj_weight" if m._qkv_same_embed_dim else f"{p}_proj_weight") for p in "qkv")
    bias, bias_k, bias_v = (getattr(m, n) is not None and needs.weight(n) for n in ("in_proj_bias", "bias_k", "bias_v"))
    trained = Trained(weights, needs.weight("out_proj.weight"),
                      (weights[0] or bias, weights[1] or bias or bias_k, weights[2] or bias or bias_v))
    return multi_head_gradients(N, L, S, m.embed_dim, m.num_heads, key[-1], value[-1], extra, trained,
                                tuple(needs.input(i) for i in range(3)), mask=any(needs.inputs[3:]))


def multi_head_attention_forward_tangent(call: OpCall, extra: tuple[int, ...], weights: int) -> Count:
    """F.multi_head_attention_forward under forward-mode AD: its weights are its arguments, each found among the
    operation's tensors (in the order the trace gives them: its arguments', then its keywords') by identity."""
    query, key, value = (tensor_shape(call.arg(i, n)) for i, n in ((0, "query"), (1, "key"), (2, "value")))
    N, L, S = layout(query, key, False)

    def carried(*arguments) -> int:
        return max(given(call, extra, *arguments), default=0)

    w = carried(*(call.arg(i, n) for i, n in ((5, "in_proj_weight"), (6, "in_proj_bias"), (7, "bias_k"),
                                               (8, "bias_v"), (11, "out_proj_weight"), (12, "out_proj_bias"),
                                               (18, "q_proj_weight"), (19, "k_proj_weight"), (20, "v_proj_weight"))))
    mask = carried(call.arg(14, "key_padding_mask"), call.arg(16, "attn_mask"))
    inputs = tuple(carried(call.arg(i, n)) for i, n in ((0, "query"), (1, "key"), (2, "value")))
    extra_keys = (call.arg(7, "bias_k") is not None) + bool(call.arg(9, "add_zero_attn", False))
    return multi_head_tangents(N, L, S, call.arg(3, "embed_dim_to_check"), call.arg(4, "num_heads"), key[-1],
                               value[-1], extra_keys, inputs, w, mask, _out_width(call))


@GRAD_OPS.register("multi_head_attention_forward")
@own_tangent(multi_head_attention_forward_tangent)
def multi_head_attention_forward_backward(call: OpCall, needs: Needs) -> Count:
    """The functional form's weights are its arguments (in_proj_weight 5, out_proj_weight 11): ∂W where the
    engine computes one for them (a parameter or another tensor that requires a gradient; not for another's sake:
    a learned position bias given as attn_mask, a bias), ∂ of query, key and value (its first three tensors) where
    it computes theirs."""
    query, key, value = (tensor_shape(call.arg(i, n)) for i, n in ((0, "query"), (1, "key"), (2, "value")))
    N, L, S = layout(query, key, False)

    def gets(*arguments) -> bool:
        return any(given(call, needs.inputs, *arguments))

    weights = tuple(gets(call.arg(5, "in_proj_weight"), call.arg(18 + i, f"{p}_proj_weight"))
                    for i, p in enumerate("qkv"))
    bias = gets(call.arg(6, "in_proj_bias"))
    trained = Trained(weights, gets(call.arg(11, "out_proj_weight")),
                      (weights[0] or bias, weights[1] or bias or gets(call.arg(7, "bias_k")),
                       weights[2] or bias or gets(call.arg(8, "bias_v"))))
    extra = (call.arg(7, "bias_k") is not None) + bool(call.arg(9, "add_zero_attn", False))
    inputs = tuple(needs.input(i) for i in range(3))
    mask = any(given(call, needs.inputs, call.arg(14, "key_padding_mask"), call.arg(16, "attn_mask")))
    return multi_head_gradients(N, L, S, call.arg(3, "embed_dim_to_check"), call.arg(4, "num_heads"), key[-1],
                                value[-1], extra, trained, inputs, _out_width(call), mask)


class Trained(NamedTuple):
    """Which of a multi-head attention's parameters get a gradient: each in-projection's weight (W_q, W_k, W_v), the
    out-projection's, and whether one that feeds Q, K or V does (its weight, the in-projection's bias, add_bias_kv's
    bias_k or bias_v: the attention's gradients are computed for it, ∂W not for a bias's sake)."""

    weights: tuple[bool, bool, bool]
    out: bool
    feeds: tuple[bool, bool, bool]


def multi_head_gradients(N: int, L: int, S: int, E: int, h: int, kdim: int, vdim: int, extra: int, trained: Trained,
                         inputs: tuple[bool, bool, bool], E_out: int | None = None, mask: bool = False) -> Count:
    """∂W of each projection whose weight is trained, ∂ of each input that needs one, the attention's gradients
    where Q, K, V or a float mask needs one (as it does when a parameter feeding them is trained)."""
    q, k, v = (fed or needed for fed, needed in zip(trained.feeds, inputs))
    w_q, w_k, w_v = trained.weights
    out = E if E_out is None else E_out
    terms = [
        ("∂W_q", w_q, N * L * E * E, f"{N}*{L}*{E}*{E}"), ("∂W_k", w_k, N * S * kdim * E, f"{N}*{S}*{kdim}*{E}"),
        ("∂W_v", w_v, N * S * vdim * E, f"{N}*{S}*{vdim}*{E}"),
        ("∂query", inputs[0], N * L * E * E, f"{N}*{L}*{E}*{E}"),
        ("∂key", inputs[1], N * S * kdim * E, f"{N}*{S}*{kdim}*{E}"),
        ("∂value", inputs[2], N * S * vdim * E, f"{N}*{S}*{vdim}*{E}"),
        *attention_gradients((N, h), L, S + extra, E // h, E // h, q, k, v, mask),
        ("∂out-projection input", q or k or v or mask, N * L * E * out, f"{N}*{L}*{E}*{out}"),
        ("∂W_out", trained.out, N * L * E * out, f"{N}*{L}*{E}*{out}"),
    ]
    return gradients(terms)


def multi_head_tangents(N: int, L: int, S: int, E: int, h: int, kdim: int, vdim: int, extra: int,
                        inputs: tuple[int, ...], w: int, mask: int = 0, E_out: int | None = None) -> Count:
    """The products of a multi-head attention's tangent: each in-projection x·Wᵀ where its input (``inputs``: how
    many times query's, key's and value's tangents run, 0: none) or the weights (``w``) carry one, its output's
    tangent batched as the larger; the attention's (attention_tangents); the out-projection where the attention's
    output or W_out carries one."""
    out = E if E_out is None else E_out
    terms = []
    carried = []
    for name, times, rows, width in (("query", inputs[0], L, E), ("key", inputs[1], S, kdim),
                                     ("value", inputs[2], S, vdim)):
        carried.append(max(times, w))
        if times or w:
            n, text = N * rows * width * E, f"{N}*{rows}*{width}*{E}"
            terms += [(f"{name}'·Wᵀ", n, max(times, 1), text), (f"{name}·W'ᵀ", n, max(w, 1), text)]
    q, k, v = carried
    terms += attention_tangents((N, h), L, S + extra, E // h, E // h, q, k, v, mask)
    o = max(q, k, v, mask)
    if o or w:
        n, text = N * L * E * out, f"{N}*{L}*{E}*{out}"
        terms += [("out'·W_outᵀ", n, max(o, 1), text), ("out·W_out'ᵀ", n, max(w, 1), text)]
    return tangent_products(terms)
