"""The backward pass: each layer's gradients (∂x where its input needs one, ∂W where trainable), checked
against torch.utils.flop_counter around a forward pass and loss.backward() on the meta device."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from archcalc.analysis.engine import analyse, analyse_module, build
from archcalc.analysis.views import for_pass, rows
from archcalc.models.catalog import REGISTRY
from tests.networks import NETWORKS

META = torch.device("meta")


def _flop_counter(model, x) -> tuple[int, int]:
    """(forward, backward) MACs as flop_counter counts them: a forward pass, then loss.backward()."""
    with FlopCounterMode(display=False) as counter:
        y = model(x)
        forward = counter.get_total_flops()
        (y[0] if isinstance(y, tuple) else y).sum().backward()
    return forward // 2, (counter.get_total_flops() - forward) // 2


def _meta_input(shape, dtype=torch.float32):
    return torch.empty(shape, device="meta", dtype=dtype)


@pytest.mark.parametrize("name", ["lenet5", "cnnet", "vgg_base", "vgg_skip", "vgg_dense", "vgg_ca",
                                  "vgg_skip_dense_ca", "resnet50", "vit_b_16"])
def test_backward_equals_flop_counter_on_registered_networks(name):
    entry = REGISTRY.get(name)
    a = analyse(entry, batch=2, backward=True)
    model = build(entry, META, torch.float32)
    assert (a.totals.macs, a.totals.backward_macs) == _flop_counter(model, _meta_input((2, *entry.default_input)))
    assert all(r.backward.macs is not None for r in a.records if r.backward is not None)


@pytest.mark.parametrize("name", ["tiny_vit", "sdpa_attention", "einsum_attention", "einsum_chain", "swin_stage",
                                  "unet_block", "lstm_tagger", "row_gru", "lstm_stack", "mha_weights", "mha_no_weights",
                                  "functional_mha", "custom_functions"])
def test_backward_equals_flop_counter_beyond_cnns(name):
    make, shape, dtype = NETWORKS[name]
    with torch.device("meta"):
        model = make()
    a = analyse_module(model, name, shape, META, torch.float32, input_dtype=dtype, backward=True)
    assert (a.totals.macs, a.totals.backward_macs) == _flop_counter(model, _meta_input(shape, dtype))


class LearnedBias(nn.Module):
    """Attention whose only trainable tensor is a position bias given as a float attn_mask (T5's and Swin's relative
    position bias, the rest frozen): through SDPA, a frozen MultiheadAttention and the functional form."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.bias = nn.Parameter(torch.zeros(2, 5, 5))
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True).requires_grad_(False)

    def forward(self, x):
        if self.how == "sdpa":
            heads = x.view(1, 5, 2, 8).transpose(1, 2)
            return F.scaled_dot_product_attention(heads, heads, heads, attn_mask=self.bias)
        if self.how == "module":
            return self.mha(x, x, x, attn_mask=self.bias, need_weights=False)[0]
        m, t = self.mha, x.transpose(0, 1)
        return F.multi_head_attention_forward(t, t, t, 16, 2, m.in_proj_weight, m.in_proj_bias, None, None, False,
                                              0.0, m.out_proj.weight, m.out_proj.bias, training=False,
                                              attn_mask=self.bias, need_weights=False)[0]


@pytest.mark.parametrize("how", ["sdpa", "module", "functional"])
def test_a_learned_position_bias_alone_gets_the_scores_gradient(how):
    """∂mask = ∂S needs ∂P = ∂O·Vᵀ (1*2*5*5*8 = 400), though neither Q nor K needs a gradient: it was left out; a
    frozen MultiheadAttention adds ∂ of its out-projection's input, 1*5*16*16 = 1,280 (the input needs none)."""
    with torch.device("meta"):
        model = LearnedBias(how)
    a = analyse_module(model, how, (1, 5, 16), META, torch.float32, backward=True)
    assert (a.totals.macs, a.totals.backward_macs) == _flop_counter(model, _meta_input((1, 5, 16)))
    assert a.totals.backward_macs == 400 + (0 if how == "sdpa" else 1280)


class BiasOnly(nn.Module):
    """BitFit's and TinyTL's fine-tuning: every weight frozen, every bias trained (``part``: only the attention's
    in-projection bias, or its add_bias_kv's bias_k and bias_v), through a convolution, a transposed one, linear,
    multi-head attention (the module and its functional form), a GRU and an LSTM cell."""

    def __init__(self, part="biases"):
        super().__init__()
        self.conv, self.up = nn.Conv2d(3, 4, 3, padding=1), nn.ConvTranspose2d(4, 2, 2, stride=2)
        self.fc = nn.Linear(2 * 16 * 16, 16)
        self.attention = nn.MultiheadAttention(16, 2, batch_first=True, add_bias_kv=True)
        self.gru, self.cell = nn.GRU(16, 8, batch_first=True), nn.LSTMCell(8, 8)
        for name, p in self.named_parameters():
            p.requires_grad_(name.endswith("bias") if part == "biases" else
                             name == "attention.in_proj_bias" if part == "in-projection bias" else
                             name in ("attention.bias_k", "attention.bias_v"))

    def forward(self, x):
        h = self.fc(self.up(self.conv(x)).flatten(1)).view(2, 1, 16).expand(2, 3, 16)
        h = self.attention(h, h, h, need_weights=False)[0]
        a = self.attention
        h = F.multi_head_attention_forward(h.transpose(0, 1), h.transpose(0, 1), h.transpose(0, 1), 16, 2,
                                           a.in_proj_weight, a.in_proj_bias, a.bias_k, a.bias_v, False, 0.0,
                                           a.out_proj.weight, a.out_proj.bias, training=False,
                                           need_weights=False)[0].transpose(0, 1)
        return self.cell(self.gru(h)[0][:, -1])[0]


@pytest.mark.parametrize("part", ["biases", "in-projection bias", "bias_k and bias_v"])
def test_a_trained_bias_computes_no_weight_gradient(part):
    """A layer whose weight is frozen and its bias trained computes no ∂W (∂b sums ∂y), though one of its parameters
    needs a gradient: every such layer's ∂W was counted (a BitFit network's step read 4.7 times its backward); the
    gradients that reach a trained bias through the layers after it are all computed. Equal to flop_counter."""
    with torch.device("meta"):
        model = BiasOnly(part)
    a = analyse_module(model, part, (2, 3, 8, 8), META, torch.float32, backward=True)
    assert (a.totals.macs, a.totals.backward_macs) == _flop_counter(model, _meta_input((2, 3, 8, 8)))
    assert not any("∂W" in r.backward.text().get("macs", "") for r in a.records if r.backward is not None)


@pytest.mark.parametrize("kind", ["separate projections", "no biases but the output's"])
def test_multi_head_attention_whose_weights_are_frozen(kind):
    """A multi-head attention over a memory of other widths (kdim 12, vdim 10: q_proj_weight, k_proj_weight and
    v_proj_weight of its own) with only its biases trained, and one without in-projection biases whose out-projection
    bias alone trains (no gradient reaches the attention): equal to flop_counter."""
    class Attend(nn.Module):
        def __init__(self):
            super().__init__()
            separate = kind == "separate projections"
            self.memory = nn.Parameter(torch.randn(2, 4, 12), requires_grad=False)
            self.mha = nn.MultiheadAttention(16, 2, batch_first=True, bias=separate, kdim=12 if separate else None,
                                             vdim=10 if separate else None)
            if not separate:
                self.mha.out_proj.bias = nn.Parameter(torch.zeros(16))
            for name, p in self.mha.named_parameters():
                p.requires_grad_(name.endswith("bias"))

        def forward(self, x):
            m = self.memory if self.mha.kdim == 12 else self.memory[..., :4].repeat(1, 1, 4)
            return self.mha(x, m, m[..., :self.mha.vdim], need_weights=False)[0]

    with torch.device("meta"):
        model = Attend()
    a = analyse_module(model, kind, (2, 3, 16), META, torch.float32, backward=True)
    assert (a.totals.macs, a.totals.backward_macs) == _flop_counter(model, _meta_input((2, 3, 16)))


def test_a_bilinear_layer_with_its_weight_frozen_by_hand():
    """nn.Bilinear(4, 5, 3) on 2 rows, its weight frozen and its bias trained, both inputs needing a gradient: ∂x1
    and ∂x2 (_trilinear again, 2*3*4*5 = 120 each), no ∂A (flop_counter has no formula for _trilinear)."""
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.pair = nn.Linear(4, 4), nn.Linear(5, 5), nn.Bilinear(4, 5, 3)
            self.pair.weight.requires_grad_(False)

        def forward(self, x):
            return self.pair(self.a(x[:, :4]), self.b(x))

    a = analyse_module(Pair().to(META), "pair", (2, 5), META, torch.float32, backward=True)
    pair = next(r for r in a.records if r.type == "Bilinear")
    assert pair.backward.macs == 2 * 120 and pair.backward.text()["macs"] == "∂x1 2*3*4*5 + ∂x2 2*3*4*5 = 240"


class PooledEncoder(nn.Module):
    """BERT's shape: an encoder and a pooler over the first token, which a model that returns only the
    encoder's states (Hugging Face's last_hidden_state) runs but never uses."""

    def __init__(self, both=False):
        super().__init__()
        self.both = both
        self.embed, self.encode, self.pooler = nn.Embedding(50, 16), nn.Linear(16, 16), nn.Linear(16, 16)

    def forward(self, ids):
        states = self.encode(self.embed(ids))
        pooled = self.pooler(states[:, 0]).tanh()
        return (states, pooled) if self.both else states


def test_a_layer_whose_output_leads_nowhere_computes_no_gradient():
    """No gradient reaches the unused pooler: autograd's graph from the output does not contain it. (BERT-base
    from Hugging Face, 2 x 64 tokens: its pooler's 2,359,296 backward MACs were counted, 1.00007 of
    flop_counter's training step.) Returned as well, it has its ∂x and ∂W."""
    shape = (2, 8)
    with torch.device("meta"):
        alone, both = PooledEncoder(), PooledEncoder(both=True)
    a = analyse_module(alone, "encoder", shape, META, torch.float32, input_dtype=torch.int64, backward=True)
    pooler = next(r for r in a.records if r.name == "pooler")
    assert pooler.macs == 2 * 16 * 16 and pooler.backward.macs == 0
    assert pooler.backward.note.startswith("no gradient reaches it")
    assert (a.totals.macs, a.totals.backward_macs) == _flop_counter(alone, _meta_input(shape, torch.int64))
    b = analyse_module(both, "encoder", shape, META, torch.float32, input_dtype=torch.int64, backward=True)
    assert next(r for r in b.records if r.name == "pooler").backward.macs == 2 * 2 * 16 * 16
    with FlopCounterMode(display=False) as counter:
        states, pooled = both(_meta_input(shape, torch.int64))
        forward = counter.get_total_flops()
        (states.sum() + pooled.sum()).backward()
    assert b.totals.backward_macs == (counter.get_total_flops() - forward) // 2


class PositionMLP(nn.Module):
    """SwinV2's continuous position bias: a small MLP over a fixed table of coordinates (a buffer), its first
    layer's output, a view over the table's rows, then ReLU(inplace=True), which rebases that view's history."""

    def __init__(self):
        super().__init__()
        self.register_buffer("coords", torch.zeros(1, 5, 5, 2))
        self.mlp = nn.Sequential(nn.Linear(2, 16), nn.ReLU(inplace=True), nn.Linear(16, 4))
        self.proj = nn.Linear(4, 4)

    def forward(self, x):
        return self.proj(x) + self.mlp(self.coords).view(1, 25, 4)


def test_a_layer_whose_output_is_changed_in_place_still_gets_its_gradient():
    """(SwinV2-T's position-bias MLPs were given no gradient: 0.99993 of flop_counter's training step.)"""
    with torch.device("meta"):
        model = PositionMLP()
    a = analyse_module(model, "position_mlp", (2, 25, 4), META, torch.float32, backward=True)
    first = next(r for r in a.records if r.name == "mlp.0")
    assert first.backward.macs == first.macs == 25 * 2 * 16  # ∂W only: the coordinates need no gradient
    assert (a.totals.macs, a.totals.backward_macs) == _flop_counter(model, _meta_input((2, 25, 4)))


def test_a_first_layer_computes_no_input_gradient():
    a = analyse(REGISTRY.get("cnnet"), backward=True)
    conv1, conv2 = (next(r for r in a.records if r.name == n) for n in ("conv1", "conv2"))
    assert conv1.backward.macs == conv1.macs == 32 * 30 * 30 * 27
    assert conv1.backward.text()["macs"] == "∂W (1*32*30*30)*(3*3*3) = 777,600"
    assert conv2.backward.macs == 2 * conv2.macs
    assert conv2.backward.text()["macs"] == "∂x (1*64*12*12)*(4*4*32) + ∂W (1*64*12*12)*(4*4*32) = 9,437,184"


def test_a_frozen_layer_computes_no_weight_gradient():
    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten(),
                              nn.Linear(8 * 12 * 12, 10))
    for p in model[0].parameters():
        p.requires_grad_(False)
    a = analyse_module(model, "frozen", (2, 3, 16, 16), META, torch.float32, backward=True)
    first = next(r for r in a.records if r.name == "0")
    assert first.backward.macs == 0  # neither ∂x (the image) nor ∂W (frozen)
    assert (a.totals.macs, a.totals.backward_macs) == _flop_counter(model, _meta_input((2, 3, 16, 16)))


def test_element_wise_backward_work_follows_the_declared_rule():
    """One operation per forward element-wise operation where a gradient flows; none where it does not."""
    with torch.device("meta"):
        model = nn.Sequential(nn.ReLU(), nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3, bias=False))
    a = analyse_module(model, "rule", (2, 3, 10, 10), META, torch.float32, backward=True)
    relu0, conv1, relu2, conv3 = a.records
    assert relu0.backward.elementwise == 0  # its input (the image) needs no gradient, and it has no weights
    assert conv1.backward.elementwise == conv1.elementwise == 2 * 8 * 8 * 8  # ∂b: the sum of ∂y over N*H*W
    assert conv1.backward.text()["elementwise"] == "∂ through the forward's 1,024 element-wise operations, one each"
    assert relu2.backward.elementwise == relu2.elementwise == 2 * 8 * 8 * 8
    assert conv3.backward.elementwise == 0
    assert a.totals.backward_elementwise == 2 * 1024
    backward, train = for_pass(a, "backward"), for_pass(a, "train")
    assert backward.totals.elementwise == 2048 and train.totals.elementwise == a.totals.elementwise + 2048
    for view in (backward, train):
        assert sum(r.elementwise or 0 for r in rows(view)) == view.totals.elementwise
    assert next(r for r in train.records if r.name == "1").formulas["elementwise"] == (
        "forward 1,024 + backward 1,024 = 2,048")
    for p in model.parameters():
        p.requires_grad_(False)
    frozen = analyse_module(model, "frozen", (2, 3, 10, 10), META, torch.float32, backward=True)
    assert (frozen.totals.backward_macs, frozen.totals.backward_elementwise) == (0, 0)


def test_grouped_convolution_weight_gradient_is_counted_once_not_g_times():
    """flop_counter multiplies a grouped convolution's ∂W by all C_in channels instead of C_in/g."""
    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3, groups=4))
    a = analyse_module(model, "grouped", (2, 8, 16, 16), META, torch.float32, backward=True)
    grouped = next(r for r in a.records if r.name == "1")
    assert grouped.backward.macs == 2 * grouped.macs == 2 * 2 * 8 * 12 * 12 * (3 * 3 * 2)
    _, reference = _flop_counter(model, _meta_input((2, 8, 16, 16)))
    assert reference - a.totals.backward_macs == (4 - 1) * grouped.macs


def test_passes_as_views():
    a = analyse(REGISTRY.get("vgg_base"), backward=True)
    backward, train = for_pass(a, "backward"), for_pass(a, "train")
    assert train.totals.macs == a.totals.macs + backward.totals.macs
    assert 2.9 < train.totals.macs / a.totals.macs < 3.0  # about 3 for a CNN: ∂x and ∂W each a forward's work
    for depth in (None, 1):
        assert sum(r.macs or 0 for r in rows(train, depth)) == train.totals.macs
        assert sum(r.macs or 0 for r in rows(backward, depth)) == backward.totals.macs
    fc = next(r for r in train.records if r.type == "Linear")
    assert fc.formulas["macs"].startswith("forward ") and " + backward " in fc.formulas["macs"]
    with pytest.raises(ValueError):
        for_pass(a, "sideways")


def test_pass_on_the_command_line(cli):
    data = cli("flops", "cnnet", "--pass", "train", "-f", "json").json()
    totals = data["totals"]
    assert data["pass"] == "train"
    assert totals["macs"] == totals["forward_macs"] + totals["backward_macs"] == 5_519_232 + 10_260_864
    train_forward = 104_554 + 2 * 2304  # the forward's in train mode: dropout's mask scaled and applied, 2 per element
    assert totals["forward_elementwise"] == train_forward
    assert totals["elementwise"] == totals["forward_elementwise"] + totals["backward_elementwise"] == 2 * train_forward
    assert sum(layer["macs"] or 0 for layer in data["layers"]) == totals["macs"]
    table = cli("flops", "cnnet", "--pass", "backward").out
    assert "Training step: forward 5,519,232 + backward 10,260,864 = 15,780,096 MACs, 2.86 x the forward" in table
    bad = cli("flops", "cnnet", "--pass", "sideways")
    assert bad.code == 1 and "unknown --pass 'sideways'" in bad.err


class TrainsDifferently(nn.Module):
    """What train mode changes: BatchNorm's batch statistics, dropout (element-wise and per channel), attention
    weights' dropout, an LSTM's dropout between layers, a feature encoder asking the waveform's gradient (Hugging
    Face's wav2vec 2.0: hidden_states.requires_grad = True in train mode) and an auxiliary head run in train
    mode only (GoogLeNet's, Inception v3's)."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv1d(1, 8, 3), nn.BatchNorm1d(8)
        self.drop, self.channels = nn.Dropout(0.1), nn.Dropout1d(0.2)
        self.attention = nn.MultiheadAttention(8, 2, dropout=0.1, batch_first=True)
        self.lstm = nn.LSTM(8, 8, num_layers=2, dropout=0.3, batch_first=True)
        self.aux = nn.Linear(8, 3)

    def forward(self, wave):  # (N, 1, T)
        if self.training:
            wave.requires_grad = True
        h = self.channels(self.drop(self.norm(self.conv(wave))))  # (N, 8, T - 2)
        tokens = h.transpose(1, 2)
        tokens = self.attention(tokens, tokens, tokens, need_weights=False)[0]
        out = self.lstm(tokens)[0]
        return (out, self.aux(out)) if self.training else out


def test_a_training_step_is_counted_in_train_mode():
    """2 waves of 18 samples: 2x8x16 after the convolution (256 elements), 2x2 heads of 16x16 scores (1,024)."""
    with torch.device("meta"):
        model = TrainsDifferently().eval()
    forward = analyse_module(model, "t", (2, 1, 18), META, torch.float32)
    step = analyse_module(model, "t", (2, 1, 18), META, torch.float32, backward=True)
    assert not model.training and not any(m.training for m in model.modules())  # (its modes left as they were)
    eval_rows, train_rows = ({r.name: r for r in a.records} for a in (forward, step))
    assert eval_rows["norm"].elementwise == 2 * 256 and train_rows["norm"].elementwise == (5 + 2) * 256
    assert eval_rows["drop"].elementwise == 0 and train_rows["drop"].elementwise == 2 * 256
    assert train_rows["channels"].elementwise == 256 + 2 * 8  # the mask: one entry a map, scaled, then applied
    scores = 2 * 2 * 16 * 16
    assert train_rows["attention"].elementwise - eval_rows["attention"].elementwise == 2 * scores
    assert train_rows["lstm"].elementwise - eval_rows["lstm"].elementwise == 2 * (2 * 16) * 8 * (2 - 1)
    assert "aux" not in eval_rows and train_rows["aux"].macs == 2 * 16 * 8 * 3
    assert train_rows["conv"].backward.macs == 2 * train_rows["conv"].macs  # ∂W, and ∂x: the wave wants one
    with torch.device("meta"):
        trained = TrainsDifferently().train()
    with FlopCounterMode(display=False) as counter:  # (a train-mode step, its loss over both heads)
        out, aux = trained(_meta_input((2, 1, 18)))
        forward = counter.get_total_flops()
        (out.sum() + aux.sum()).backward()
    assert 2 * step.totals.macs == forward and 2 * step.totals.backward_macs == counter.get_total_flops() - forward
    assert any("in train mode" in n for n in for_pass(step, "train").notes)


class LayerDrop(nn.Module):
    """Hugging Face's LayerDrop: each layer skipped when torch.rand([]) < p, in train mode."""

    def __init__(self, p=0.9):
        super().__init__()
        self.p, self.layers = p, nn.ModuleList(nn.Linear(16, 16) for _ in range(4))

    def forward(self, x):
        for layer in self.layers:
            if not (self.training and torch.rand([]) < self.p):
                x = layer(x)
        return x


class WantsTargets(nn.Module):
    """A detector's shape: in train mode its forward asks for targets (torchvision's: 'targets should not be
    none when in training mode')."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x, targets=None):
        if self.training and targets is None:
            raise ValueError("targets should not be none when in training mode")
        return self.fc(x)


def test_layer_drop_counts_every_layer_and_a_detector_is_counted_in_eval_mode():
    with torch.device("meta"):
        dropping, detector = LayerDrop(), WantsTargets()
    step = analyse_module(dropping, "drop", (2, 16), META, torch.float32, backward=True)
    assert step.totals.macs == 4 * 2 * 16 * 16 and step.totals.backward_macs == 2 * 16 * 16 * (1 + 2 * 3)
    assert any(n.startswith("4 single-number random draws") for n in step.notes)
    counted = analyse_module(detector, "detector", (2, 16), META, torch.float32, backward=True)
    assert counted.totals.macs == 2 * 16 * 4
    assert ("counted in eval mode: in train mode the forward of detector fails (targets should not be none when "
            "in training mode)") in counted.notes
