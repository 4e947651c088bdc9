"""Quantized networks (torch.ao.quantization): the float layer's MACs over the unpacked int8 weights, the
parameters at their int8 bytes, quantization's own element-wise steps, and the CPU as the only device.

Oracles: the float network before quantization (its parameters by torch's own numel, its MACs as archcalc counts
them, checked against flop_counter elsewhere), the packed weights' own bytes (int_repr), the kernels PyTorch's
profiler records, and the tools themselves (flop_counter and torchinfo count 0 of a quantized layer).
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import archcalc

tq = pytest.importorskip("torch.ao.quantization")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _example():
    """examples/quantized_cnn.py: the README's network, its static, dynamic and QAT forms."""
    spec = importlib.util.spec_from_file_location("quantized_cnn", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLE = Path(__file__).parent.parent / "examples" / "quantized_cnn.py"
example = _example()
SmallNet, static_quantized = example.Net, example.quantized


def layer(a, name):
    return next(r for r in a.layers if r.name == name)


def test_dynamic_linear_by_hand():
    """nn.Linear(64, 8) made dynamic: 2*64*8 = 1,024 MACs, as the float layer; (64 + 1)*8 = 520 parameters at
    8*64 int8 bytes + 8 float32 biases = 544 bytes; a per-tensor scale and zero point (8 + 8 bytes) as buffers;
    element-wise: the input's range and quantisation 4*(2*64) + dequantise 2*(2*8) + bias 2*8 = 560."""
    q = tq.quantize_dynamic(nn.Sequential(nn.Linear(64, 8)), {nn.Linear}, dtype=torch.qint8)
    a = archcalc.analyze(q, (2, 64), device="cpu")
    weight, bias = q[0]._weight_bias()
    assert weight.int_repr().nbytes + bias.nbytes == 544
    t = a.totals
    assert (t.params, t.trainable_params, t.macs, t.param_bytes, t.buffer_bytes) == (520, 0, 1024, 544, 16)
    row = layer(a, "0")
    assert row.type == "DynamicQuantizedLinear"
    assert row.elementwise == 4 * 2 * 64 + 2 * 2 * 8 + 2 * 8 == 560
    assert row.formulas["params"] == "(64 + 1)*8 = 520"
    assert "qint8 weights" in row.note


def test_static_network_against_its_float_form_and_by_hand():
    """The same MACs as the float network (2,801,824); its parameters less BatchNorm's 32, folded into conv1;
    int8 weights (432 + 2,304 + 160 bytes) and float32 biases (42*4); per-channel scales and zero points
    (16 bytes a channel, 42 channels) and the input stub's scale and zero point (4 + 8) as buffers."""
    torch.manual_seed(0)
    float_net = SmallNet().eval()
    f = archcalc.analyze(float_net, (1, 3, 32, 32), device="cpu")
    a = archcalc.analyze(static_quantized(), (1, 3, 32, 32))
    assert a.totals.macs == f.totals.macs == 16 * 32 * 32 * 27 + 16 * 32 * 32 * 144 + 160
    assert a.totals.params == sum(p.numel() for p in float_net.parameters()) - 2 * 16
    assert a.totals.param_bytes == 432 + 2304 + 160 + 4 * (16 + 16 + 10)
    assert a.totals.buffer_bytes == 16 * (16 + 16 + 10) + 4 + 8
    assert not [r.name for r in a.layers if r.macs is None]
    out = 16 * 32 * 32
    conv1 = layer(a, "conv1")
    assert (conv1.type, conv1.params, conv1.activation_bytes) == ("QuantizedConvReLU2d", 448, out)  # quint8: 1 byte
    assert conv1.elementwise == out + out + 2 * out  # bias, fused ReLU, requantise
    assert layer(a, "quantized::add").elementwise == 3 * out  # the add and its requantisation
    assert layer(a, "quant").elementwise == 2 * 3 * 32 * 32 and layer(a, "dequant").elementwise == 2 * 10
    assert any("CPU" in note and "quantized" in note for note in a.notes)


def test_rows_are_the_kernels_that_ran():
    """Each counted quantized row stands for one kernel of the quantized namespace that PyTorch's profiler
    records (conv2d_relu twice, add, linear), nothing run left out."""
    q = static_quantized()
    x = torch.randn(1, 3, 32, 32)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        q(x)
    ran = sorted(e.name for e in prof.events() if e.name.startswith("quantized::"))
    a = archcalc.analyze(q, (1, 3, 32, 32))
    kinds = {"QuantizedConvReLU2d": "quantized::conv2d_relu", "QuantizedLinear": "quantized::linear",
             "quantized::add": "quantized::add"}
    counted = sorted(kinds[r.type] for r in a.layers if r.type in kinds)
    assert [name for name in ran if name in kinds.values()] == counted


def test_fx_quantized_resnet18_keeps_the_papers_macs():
    """ResNet-18 (the registry's, as the paper built it) quantized by FX graph mode (every skip add a
    quantized::add_relu): 1,814,073,344 MACs as the float network (ResNet's 1.8 GFLOPs); its parameters less the
    BatchNorms' γ and β, folded into the convolutions before them, which gain a bias (one per channel: ResNet's
    convolutions have none); a quarter of the bytes and a little more (the float32 biases)."""
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from archcalc.analysis.engine import build
    from archcalc.models.catalog import REGISTRY

    torch.manual_seed(0)
    net = build(REGISTRY.get("resnet18"), torch.device("cpu"), torch.float32).eval()
    channels = sum(m.num_features for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    params = sum(p.numel() for p in net.parameters())
    x = torch.randn(1, 3, 224, 224)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(net, tq.get_default_qconfig_mapping("fbgemm"), (x,))
        prepared(x)
        q = convert_fx(prepared)
    a = archcalc.analyze(q, (1, 3, 224, 224))
    assert a.totals.macs == 1_814_073_344
    assert a.totals.params == params - 2 * channels + channels == 11_689_512 - 4_800
    assert not [r.name for r in a.layers if r.macs is None]
    assert 0.25 < a.totals.param_bytes / (4 * params) < 0.26


class Language(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.lstm = nn.Embedding(1000, 64), nn.LSTM(64, 128, 2, batch_first=True)
        self.gru, self.head = nn.GRU(128, 64), nn.Linear(64, 1000)

    def forward(self, ids):
        return self.head(self.gru(self.lstm(self.embed(ids))[0])[0])


@pytest.mark.parametrize("dtype, weight_bytes", [(torch.qint8, 1), (torch.float16, 2)])
def test_dynamic_recurrent_network(dtype, weight_bytes):
    """LSTM, GRU and Linear made dynamic: the float network's parameters and MACs; the weight matrices
    (330,240 elements) at 1 byte (int8) or 2 (float16), the biases (3,432) and the float embedding (64,000) at 4."""
    torch.manual_seed(0)
    f = archcalc.analyze(Language().eval(), (2, 20), input_dtypes=["int64"], device="cpu")
    q = tq.quantize_dynamic(Language().eval(), {nn.LSTM, nn.GRU, nn.Linear}, dtype=dtype)
    a = archcalc.analyze(q, (2, 20), input_dtypes=["int64"])
    matrices = 512 * 64 + 512 * 128 * 3 + 192 * 128 + 192 * 64 + 1000 * 64
    assert matrices == 330_240
    assert (a.totals.params, a.totals.macs) == (f.totals.params, f.totals.macs)
    assert a.totals.param_bytes == weight_bytes * matrices + 4 * (3432 + 64_000)
    assert layer(a, "lstm").type == "DynamicQuantizedLSTM"


def test_dynamic_lstm_elementwise_by_hand():
    """LSTM(8, 16) on 5 steps of 2 sequences (10 rows): the float gates' 13 + 8 (biases) per unit and row,
    3,360, and for each product W·v every row: v quantised (4 per element) and W·v dequantised (2 per element),
    10*(4*8 + 2*64 + 4*16 + 2*64) = 3,520."""
    q = tq.quantize_dynamic(nn.Sequential(nn.LSTM(8, 16)), {nn.LSTM}, dtype=torch.qint8)
    row = layer(archcalc.analyze(q, (5, 2, 8)), "0")
    assert row.macs == 10 * (64 * 8 + 64 * 16)
    assert row.elementwise == 10 * 16 * 21 + 10 * (4 * 8 + 2 * 64 + 4 * 16 + 2 * 64) == 6880


def test_tools_count_no_quantized_layer():
    """flop_counter and torchinfo, run on the quantized network, count 0 of its layers (no formula, no
    parameters they can see): archcalc's conventions of them agree; thop and ptflops count its pooling only."""
    a, tools = archcalc.reconcile(static_quantized(), inputs=(torch.randn(1, 3, 32, 32),))
    assert tools["flop_counter"].total == a.convention_total("flop_counter") == 0
    assert tools["torchinfo"].total == a.convention_total("torchinfo") == 0
    for name in ("thop", "ptflops"):
        assert tools[name].total == a.convention_total(name) > 0
    assert a.convention_total("paper") == a.totals.macs


def test_dynamic_classifier_of_the_example():
    """examples/quantized_cnn.py:dynamic: the classifier alone int8 (160 bytes of weights, 10 float32 biases),
    the convolutions float: the float network's MACs and parameters."""
    a = archcalc.analyze(example.dynamic(), (1, 3, 32, 32))
    f = archcalc.analyze(SmallNet(), (1, 3, 32, 32), device="cpu")
    assert (a.totals.macs, a.totals.params) == (f.totals.macs, f.totals.params)
    assert f.totals.param_bytes - a.totals.param_bytes == 3 * 160
    assert layer(a, "fc").type == "DynamicQuantizedLinear"


def test_backward_of_a_quantized_network_is_no_gradient():
    a = archcalc.analyze(static_quantized(), (1, 3, 32, 32), backward=True)
    assert a.totals.backward_macs == 0
    assert not [r.name for r in a.layers if r.backward is not None and r.backward.macs is None]


def test_meta_asked_runs_on_the_cpu_with_a_note():
    a = archcalc.analyze(static_quantized(), (1, 3, 32, 32), device="meta")
    assert a.device == "cpu"
    assert any("quantized network runs on the CPU" in note for note in a.notes)


def test_another_dtype_is_refused_in_one_line(cli):
    """A quantized network quantizes its float32 input itself: --dtype float16 would reach its Quantize layer as
    half precision (PyTorch: 'Quantize only works on Float Tensor'); refused before the forward, in one line."""
    run = cli("flops", f"{EXAMPLE}:quantized", "--dtype", "float16")
    assert run.code == 1 and "Traceback" not in run.err
    assert run.err.strip().splitlines() == ["archcalc: error: a quantized network keeps its int8 weights and takes "
                                            "float32 inputs, which it quantizes itself: it runs in float32 only, "
                                            "not float16 (leave the dtype at float32)"]


def test_time_says_its_operations_are_integer_ones(cli):
    """archcalc time of a quantized network: its 2,801,824 MACs a forward are int8 multiply-accumulates, and the
    report says its GFLOP/s column counts integer operations (JSON: integer_operations)."""
    import json

    run = cli("time", f"{EXAMPLE}:quantized", "--repeat", "2", "--warmup", "0", "--format", "json")
    assert run.code == 0, run.err
    result = json.loads(run.out)["results"][0]
    assert result["integer_operations"] is True
    assert result["gflops_per_s"] == pytest.approx(2 * 2_801_824 / (result["median_ms"] / 1000) / 1e9)
    table = cli("time", f"{EXAMPLE}:quantized", "--repeat", "2", "--warmup", "0")
    assert "a quantized network, its multiply-accumulates int8 ones: its GFLOP/s are integer operations" in \
        " ".join(table.out.split())
    float_run = cli("time", f"{EXAMPLE}:Net", "--device", "cpu", "--repeat", "2", "--warmup", "0", "--format", "json")
    assert json.loads(float_run.out)["results"][0]["integer_operations"] is False


def test_time_keeps_a_quantized_network_on_the_cpu_where_a_gpu_is_present(cli, monkeypatch):
    """With a GPU present, time's --device auto means CUDA; a quantized network's int8 kernels are the CPU's, so
    auto times it there, and --device cuda is refused in one line (a GPU's presence pretended)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    run = cli("time", f"{EXAMPLE}:quantized", "--repeat", "1", "--warmup", "0", "--format", "json")
    assert run.code == 0 and run.json()["results"][0]["device"] == "cpu", run.err
    refused = cli("time", f"{EXAMPLE}:quantized", "--device", "cuda", "--repeat", "1")
    assert refused.code == 1 and "a quantized network runs on the CPU only" in " ".join(refused.err.split())
    assert "Traceback" not in refused.err


def test_quantization_aware_training_counts_its_fake_quantisation():
    """A network prepared for QAT (fake quantization in the float network): the float MACs; each
    fused_moving_avg_obs_fake_quant its observer's min and max (2 per element) and quantise-dequantise (4);
    with the observers disabled, 4."""
    prepared = example.qat()
    a = archcalc.analyze(prepared, (1, 3, 32, 32), device="cpu")
    assert a.totals.macs == 2_801_824
    fake = layer(a, "fc.weight_fake_quant.fused_moving_avg_obs_fake_quant")
    assert fake.elementwise == 6 * 10 * 16
    prepared.apply(tq.disable_observer)
    b = archcalc.analyze(prepared, (1, 3, 32, 32), device="cpu")
    assert layer(b, "fc.weight_fake_quant.fused_moving_avg_obs_fake_quant").elementwise == 4 * 10 * 16
    assert not [r.name for r in b.layers if r.macs is None]


def test_training_a_quantized_network_is_refused_in_one_line():
    from archcalc.errors import InputError

    with pytest.raises(InputError, match="no trainable parameters"):
        archcalc.memory(static_quantized(), (2, 3, 32, 32))


def test_fx_lowered_functional_layers_own_their_packed_weights():
    """F.linear and F.conv2d with the module's own parameters, quantized by FX graph mode: the lowering calls
    quantized::linear and quantized::conv2d with packed weights the GraphModule holds as attributes
    (_packed_weight_0): each operation owns its weight (16*32 + 16, 8*3*3*3 + 8 parameters, int8 weights and float32
    biases: 512 + 64 + 216 + 32 bytes) and does the float operation's MACs (2*32*16, 2*8*8*8*27), requantised;
    flop_counter counts neither (0), as archcalc's convention of it."""
    import torch.nn.functional as F
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.w, self.b = nn.Parameter(torch.randn(16, 32)), nn.Parameter(torch.zeros(16))
            self.cw, self.cb = nn.Parameter(torch.randn(8, 3, 3, 3)), nn.Parameter(torch.zeros(8))

        def forward(self, x, y):
            return F.linear(y, self.w, self.b), F.conv2d(x, self.cw, self.cb, [1, 1], [1, 1], [1, 1], 1)

    x, y = torch.randn(2, 3, 8, 8), torch.randn(2, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(Functional().eval(), tq.get_default_qconfig_mapping("fbgemm"), (x, y))
        prepared(x, y)
        q = convert_fx(prepared)
    a, tools = archcalc.reconcile(q, inputs=(x, y))
    linear, conv = (next(r for r in a.layers if r.type == kind) for kind in ("quantized::linear", "quantized::conv2d"))
    assert (linear.params, linear.macs, linear.elementwise) == (16 * 32 + 16, 2 * 32 * 16, 2 * 16 + 2 * 2 * 16)
    assert (conv.params, conv.macs) == (8 * 27 + 8, 2 * 8 * 8 * 8 * 27)
    assert a.totals.param_bytes == 512 + 64 + 216 + 32 and a.device == "cpu"
    assert tools["flop_counter"].total == a.convention_total("flop_counter") == 0
