"""Attention, recurrence, normalisation and matrix products: whole networks from torch.nn against
torch.utils.flop_counter (meta device) and hand arithmetic; single operations in each of their paths."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archcalc.analysis.counters.linear import contraction, einsum
from archcalc.analysis.counting import OpCall
from archcalc.analysis.engine import analyse_module
from archcalc.analysis.views import rows
from tests.networks import NETWORKS, MHABlock, TinyViT

META = torch.device("meta")


def _input(shape, dtype, device="meta"):
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype, device=device)
    return torch.empty(shape, device=device) if device == "meta" else torch.randn(shape, device=device)


def _flop_counter_macs(model, x) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def _analyse(model, shape, dtype=torch.float32, device=META):
    return analyse_module(model, type(model).__name__, shape, device, torch.float32, input_dtype=dtype)


def _built(make, device="meta"):
    torch.manual_seed(0)
    with torch.device(device):
        return make().eval()


@pytest.mark.parametrize("name", list(NETWORKS))
def test_macs_equal_flop_counter_and_nothing_is_left_uncounted(name):
    make, shape, dtype = NETWORKS[name]
    model = _built(make)
    a = _analyse(model, shape, dtype)
    assert a.totals.macs == _flop_counter_macs(model, _input(shape, dtype))
    assert a.not_counted == ()
    for depth in (None, 1):
        shown = rows(a, depth)
        assert sum(r.macs or 0 for r in shown) == a.totals.macs
        assert sum(r.activation_bytes for r in shown) == a.totals.activation_bytes


@pytest.mark.parametrize("name", ["tiny_vit", "lstm_tagger", "mha_no_weights", "swin_stage"])
def test_a_real_cpu_run_gives_the_meta_numbers(name):
    make, shape, dtype = NETWORKS[name]
    meta = _analyse(_built(make), shape, dtype)
    cpu = _analyse(_built(make, "cpu"), shape, dtype, torch.device("cpu"))
    if name == "swin_stage":
        # CPU's attention kernel returns (N, L, h, d) memory under its (N, h, L, d) shape, so the reshape
        # after it is a view there and a copy on meta (whose kernel is the math one): only the bytes differ
        assert cpu.totals.activation_bytes == meta.totals.activation_bytes - 2 * 18 * 16 * 32 * 4
        assert replace(cpu.totals, activation_bytes=0) == replace(meta.totals, activation_bytes=0)
    else:
        assert cpu.totals == meta.totals


def test_vit_by_hand():
    # batch 2, 32x32 image, 8x8 patches: 16 tokens + the class token; width 64, 4 heads, MLP 128, 2 layers
    a = _analyse(_built(TinyViT), (2, 3, 32, 32))
    patch = 2 * 64 * 4 * 4 * (8 * 8 * 3)
    projections = 4 * 2 * 17 * 64 * 64  # Q, K, V and out
    attention = 2 * 4 * 17 * 17 * (16 + 16)  # QKᵀ and AV per head
    mlp = 2 * 2 * 17 * 64 * 128
    head = 2 * 64 * 10
    assert a.totals.macs == patch + 2 * (projections + attention + mlp) + head == 2_770_688
    attn = next(r for r in a.records if r.name == "encoder.layers.0.self_attn")
    assert attn.macs == projections + attention
    assert attn.receptive.whole  # attention sees every patch
    assert next(r for r in a.records if r.name == "patch_embed").receptive.size == (8, 8)


def test_lstm_tagger_by_hand():
    a = _analyse(_built(NETWORKS["lstm_tagger"][0]), (2, 12), torch.int64)
    rows_ = 2 * 12
    layer0 = 2 * 4 * 24 * (16 + 24)  # two directions, 4 gates of 24 units over the 16-wide input and h
    layer1 = 2 * 4 * 24 * (48 + 24)  # the input is both directions' 24 outputs
    lstm = next(r for r in a.records if r.type == "LSTM")
    assert lstm.macs == rows_ * (layer0 + layer1) == 516_096
    assert lstm.elementwise == rows_ * 2 * 2 * 24 * (13 + 8)  # gates and biases, every layer and direction
    assert next(r for r in a.records if r.type == "Embedding").macs == 0
    assert a.totals.macs == 516_096 + rows_ * 48 * 5


def test_formula_text_shows_the_arithmetic():
    a = _analyse(_built(MHABlock), (2, 10, 32))
    attn = next(r for r in a.records if r.type == "MultiheadAttention")
    assert attn.formulas["macs"] == ("Q 2*10*32*32 + K 2*10*32*32 + V 2*10*32*32 + QKᵀ,AV 2*4*10*10*(8 + 8) + "
                                     "out 2*10*32*32 = 94,720")
    assert "weights averaged over 4 heads 800" in attn.formulas["elementwise"]
    sdpa = next(r for r in _analyse(_built(NETWORKS["sdpa_attention"][0]), (2, 10, 32)).records
                if r.type == "scaled_dot_product_attention")
    assert sdpa.formulas["macs"] == "QKᵀ (2*4*10*10)*8 + AV (2*4*10*10)*8 = 12,800"
    ein = next(r for r in _analyse(_built(NETWORKS["einsum_attention"][0]), (2, 10, 32)).records if r.type == "einsum")
    assert ein.formulas["macs"] == "'bihd,bjhd->bhij': #1#2 b2*i10*h4*d8*j10 = 6,400"
    norm = next(r for r in _analyse(_built(NETWORKS["unet_block"][0]), (2, 3, 16, 16)).records if r.name == "norm1")
    assert norm.formulas["elementwise"] == "GroupNorm, 8 groups: (5 + 2 affine)*(2*32*16*16) = 114,688"
    assert norm.receptive.whole


def test_layer_norm_over_channels_keeps_the_field():
    a = _analyse(_built(NETWORKS["convnext_block"][0]), (2, 3, 32, 32))
    norm = next(r for r in a.records if r.name == "norm")
    assert norm.receptive.size == (28, 28)  # 4x4 stem, then the 7x7 depthwise conv: 4 + 6*4
    assert next(r for r in a.records if r.name == "pwconv1").receptive.size == (28, 28)  # per position


class _Op(nn.Module):
    def __init__(self, fn, *shapes):
        super().__init__()
        self.fn = fn
        self.weights = nn.ParameterList([nn.Parameter(torch.randn(*s)) for s in shapes])

    def forward(self, x):
        return self.fn(x, *self.weights)


def _heads(x, h=4):
    n, length, width = x.shape
    return x.view(n, length, h, width // h).transpose(1, 2)


OPERATIONS = {
    "sdpa": (lambda x: F.scaled_dot_product_attention(_heads(x), _heads(x), _heads(x)), (2, 10, 32)),
    "sdpa_causal": (lambda x: F.scaled_dot_product_attention(_heads(x), _heads(x), _heads(x), is_causal=True),
                    (2, 10, 32)),
    "sdpa_bool_mask": (lambda x: F.scaled_dot_product_attention(
        _heads(x), _heads(x), _heads(x), attn_mask=torch.ones(10, 10, dtype=torch.bool, device=x.device)), (2, 10, 32)),
    "sdpa_additive_mask": (lambda x: F.scaled_dot_product_attention(
        _heads(x), _heads(x), _heads(x), attn_mask=torch.zeros(10, 10, device=x.device)), (2, 10, 32)),
    "sdpa_other_lengths": (lambda x: F.scaled_dot_product_attention(_heads(x), _heads(x[:, :6]), _heads(x[:, :6])),
                           (2, 10, 32)),
    "sdpa_gqa": (lambda x: F.scaled_dot_product_attention(_heads(x), _heads(x[..., :16], 2), _heads(x[..., :16], 2),
                                                         enable_gqa=True), (2, 10, 32)),
    "sdpa_scale": (lambda x: F.scaled_dot_product_attention(_heads(x), _heads(x), _heads(x), scale=0.5), (2, 10, 32)),
    "matmul_broadcast": (lambda x, w: torch.matmul(x.unsqueeze(0), w), (2, 10, 32), (3, 1, 32, 8)),
    "matmul_vector_matrix": (lambda x, w: x[0, 0] @ w, (2, 10, 32), (32, 8)),
    "bmm": (lambda x: torch.bmm(x, x.transpose(1, 2)), (2, 10, 32)),
    "baddbmm": (lambda x: torch.baddbmm(torch.zeros(2, 10, 10, device=x.device), x, x.transpose(1, 2)), (2, 10, 32)),
    "addmm": (lambda x, w: torch.addmm(torch.zeros(8, device=x.device), x[0], w), (2, 10, 32), (32, 8)),
    "linear_3d": (lambda x, w: F.linear(x, w), (2, 10, 32), (8, 32)),
    "einsum_three": (lambda x, a, b: torch.einsum("bld,de,ef->blf", x, a, b), (2, 10, 32), (32, 16), (16, 8)),
    "einsum_summed_first": (lambda x, w: torch.einsum("bld,ed->be", x, w), (2, 10, 32), (16, 32)),
    "einsum_ellipsis": (lambda x, w: torch.einsum("...d,de->...e", x, w), (2, 10, 32), (32, 16)),
    "einsum_outer": (lambda x, w: torch.einsum("bld,e->blde", x, w), (2, 10, 32), (5,)),
}


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_operation_macs_equal_flop_counter(name):
    fn, shape, *weights = OPERATIONS[name]
    model = _built(lambda: _Op(fn, *weights))
    a = _analyse(model, shape)
    assert a.not_counted == ()
    assert a.totals.macs == _flop_counter_macs(model, _input(shape, torch.float32))


class _Attention(nn.Module):
    def __init__(self, need_weights=True, batch_first=True, kdim=None, mask=False, **kw):
        super().__init__()
        self.attn = nn.MultiheadAttention(32, 4, batch_first=batch_first, kdim=kdim, vdim=kdim, **kw)
        self.need_weights, self.kdim, self.mask = need_weights, kdim, mask

    def forward(self, x):
        kv = x if self.kdim is None else x[..., :self.kdim]
        if not self.attn.batch_first:
            x, kv = x.transpose(0, 1), kv.transpose(0, 1)
        mask = torch.zeros(10, 10, device=x.device) if self.mask else None
        return self.attn(x, kv, kv, need_weights=self.need_weights, attn_mask=mask)[0]


MULTI_HEAD = {
    "weights": {}, "no_weights": {"need_weights": False}, "sequence_first": {"batch_first": False},
    "kdim_vdim": {"kdim": 20}, "kdim_vdim_no_weights": {"kdim": 20, "need_weights": False},
    "mask": {"mask": True}, "bias_kv_zero_attn": {"add_bias_kv": True, "add_zero_attn": True},
    "no_bias": {"bias": False, "need_weights": False},
}


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", list(MULTI_HEAD))
def test_multihead_attention_every_path(name, training):
    model = _built(lambda: _Attention(**MULTI_HEAD[name]))
    model.train(training)
    a = _analyse(model, (2, 10, 32))
    assert a.totals.macs == _flop_counter_macs(model, _input((2, 10, 32), torch.float32))


def test_multihead_attention_fast_path_on_cpu():
    """In eval mode without grad PyTorch runs torch._native_multi_head_attention (no Python to trace)."""
    model = _built(lambda: _Attention(need_weights=False), "cpu")
    assert _analyse(model, (2, 10, 32), device=torch.device("cpu")).totals.macs == 94_720
    call = (torch.randn(2, 10, 32),) * 3
    with torch.no_grad():
        m = model.attn
        native = _Op(lambda x: torch._native_multi_head_attention(
            x, x, x, 32, 4, m.in_proj_weight, m.in_proj_bias, m.out_proj.weight, m.out_proj.bias, None, False)[0])
        assert native(call[0]).shape == (2, 10, 32)
        assert _analyse(native, (2, 10, 32), device=torch.device("cpu")).totals.macs == 94_720


@pytest.mark.parametrize("kind, kwargs", [
    ("LSTM", {"batch_first": True}), ("LSTM", {"num_layers": 2, "bidirectional": True}),
    ("LSTM", {"num_layers": 2, "proj_size": 8, "batch_first": True}), ("GRU", {"num_layers": 2}),
    ("RNN", {"bidirectional": True, "nonlinearity": "relu"}),
])
def test_recurrent_layers(kind, kwargs):
    model = _built(lambda: _Recurrent(kind, kwargs))
    a = _analyse(model, (2, 10, 32))
    assert a.totals.macs == _flop_counter_macs(model, _input((2, 10, 32), torch.float32))


class _Recurrent(nn.Module):
    def __init__(self, kind, kwargs):
        super().__init__()
        self.rnn = getattr(nn, kind)(32, 24, **kwargs)

    def forward(self, x):
        return self.rnn(x)[0]


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
def test_recurrent_cells_over_a_sequence(kind):
    class Loop(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = getattr(nn, kind)(32, 24)

        def forward(self, x):
            h = None
            for t in range(x.shape[1]):
                h = self.cell(x[:, t], h)
            return h[0] if isinstance(h, tuple) else h

    model = _built(Loop)
    a = _analyse(model, (2, 10, 32))
    gates = {"LSTMCell": 4, "GRUCell": 3, "RNNCell": 1}[kind]
    assert a.totals.macs == 10 * 2 * gates * 24 * (32 + 24) == _flop_counter_macs(model, _input((2, 10, 32),
                                                                                                  torch.float32))


def test_einsum_contracts_left_to_right():
    """PyTorch's own order (where opt_einsum is installed, torch follows its path: off here)."""
    with torch.backends.opt_einsum.flags(enabled=False):
        _left_to_right()


def _left_to_right():
    steps, elementwise = contraction("ij,jk,kl->il", ((2, 3), (3, 4), (4, 5)))
    assert [(s.pair, s.sizes) for s in steps] == [("#1#2", {"i": 2, "j": 3, "k": 4}),
                                                 ("(#1#2)#3", {"i": 2, "k": 4, "l": 5})]
    assert [(set(s.left), set(s.right)) for s in steps] == [({0}, {1}), ({0, 1}, {2})]
    assert elementwise == 0
    steps, elementwise = contraction("bld,ed->be", ((2, 10, 32), (16, 32)))
    assert [(s.pair, s.sizes) for s in steps] == [("#1#2", {"b": 2, "d": 32, "e": 16})]
    assert elementwise == 2 * 10 * 32 - 2 * 32  # l summed within the first operand first


def test_einsum_takes_a_size_1_index_of_a_later_operand_as_broadcast():
    """ATen contracts an index as soon as later operands hold it only as 1: 'cad,cda,da->dc' with da of 4x1
    contracts a in the first product (c3*a3*d4 = 36, flop_counter's count), where keeping it for the third
    operand gave two element-wise products and no matrix product. And on random equations without a contracted
    index of size 1 on one side (which archcalc counts as products, ATen as a sum and a mul), archcalc's MACs
    are flop_counter's."""
    from tests.test_conventions import _random_einsums

    with torch.backends.opt_einsum.flags(enabled=False):  # (PyTorch's own order, opt_einsum installed or not)
        steps, _ = contraction("cad,cda,da->dc", ((3, 3, 4), (1, 4, 3), (4, 1)))
    assert [(s.pair, s.sizes) for s in steps] == [("#1#2", {"c": 3, "a": 3, "d": 4})]
    compared = 0
    for equation, shapes in _random_einsums(300, seed=2):
        operands = [torch.randn(*s) for s in shapes]
        try:
            torch.einsum(equation, *operands)
        except RuntimeError:
            continue
        if any(1 in s for s in shapes):
            continue
        with FlopCounterMode(display=False) as counter:
            torch.einsum(equation, *operands)
        call = OpCall("einsum", (equation, *operands), {}, tuple(shapes), ((),))
        assert 2 * einsum(call).macs == counter.get_total_flops(), (equation, shapes)
        compared += 1
    assert compared > 20
