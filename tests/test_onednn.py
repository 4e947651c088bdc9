"""Recurrent layers on the CPU: oneDNN's LSTM (training/onednn.py), its workspace against the real kernel's,
layer by layer on random shapes; GRU, RNN, projected LSTMs and the cells as PyTorch's native CPU path runs them
(training/native_rnn.py), in float32 and under autocast; whole networks' simulated peak against real CPU tensors,
to the byte."""

import random

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from archcalc.models.registry import ModelEntry
from archcalc.errors import InputError
from archcalc.training.onednn import lacks, workspace_bytes
from archcalc.training.peak import simulate
from tests.test_peak import real_cpu_peak

pytestmark = [pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch without oneDNN"),
              pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")]


class _Workspaces(TorchDispatchMode):
    """(T, N, I, H) and the workspace bytes of every real mkldnn_rnn_layer call."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten.mkldnn_rnn_layer.default:
            self.seen.append(((*args[0].shape, args[5].shape[-1]), out[3].numel()))
        return out


def test_the_workspace_is_the_one_onednn_allocates():
    """T 1-40, N 1-40, input and hidden sizes on both sides of oneDNN's 16-float and 256-float rules, one or
    two layers, both directions (the second layer of a bidirectional LSTM takes 2H), with and without bias."""
    rng, seen = random.Random(0), []
    for _ in range(25):
        T, N = rng.randint(1, 40), rng.randint(1, 40)
        I, H = rng.choice((1, 16, 17, 64, 100, 255, 256, 257)), rng.choice((1, 5, 16, 63, 64, 65, 128, 256, 257))
        lstm = nn.LSTM(I, H, rng.randint(1, 2), bidirectional=rng.random() < 0.5, bias=rng.random() < 0.7)
        with _Workspaces() as mode:
            lstm(torch.randn(T, N, I))[0].sum().backward()
        seen += mode.seen
    assert len(seen) >= 25
    assert [w for _, w in seen] == [workspace_bytes(*shape) for shape, _ in seen]
    assert workspace_bytes(50, 16, 64, 256) == 12_877_824  # 3,144 pages: gates 1040 floats wide, states 272


class Recurrent(nn.Module):
    def __init__(self, kind="LSTM", layers=2, bidirectional=True, batch_first=True, bias=True, dropout=0.0,
                 proj=0, frozen=False, relu=False):
        super().__init__()
        self.frozen = frozen  # the recurrent layer run under no_grad (a frozen encoder): no workspace
        extra = {"proj_size": proj} if proj else {"nonlinearity": "relu"} if relu else {}
        self.rnn = getattr(nn, kind)(16, 32, layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias,
                                     dropout=dropout, **extra)
        self.batch_first = batch_first
        self.head = nn.Linear((proj or 32) * (2 if bidirectional else 1), 10)

    def forward(self, x):
        with torch.set_grad_enabled(not self.frozen and torch.is_grad_enabled()):
            out = self.rnn(x if self.batch_first else x.transpose(0, 1))[0]
        return self.head(out[:, -1] if self.batch_first else out[-1])


class Packed(nn.Module):
    """Sequences of different lengths, packed (pack_padded_sequence): the batch shrinks step by step. The
    last hidden state and the packed outputs are used as they are (pad_packed_sequence cannot run on the meta
    device: it copies indices to the CPU)."""

    def __init__(self, kind="LSTM", bidirectional=True, layers=2):
        super().__init__()
        self.rnn = getattr(nn, kind)(16, 32, layers, bidirectional=bidirectional, batch_first=True)
        self.head = nn.Linear(32 * (2 if bidirectional else 1), 10)

    def forward(self, x):
        lengths = torch.tensor([x.shape[1] - (i * 3) % x.shape[1] for i in range(x.shape[0])])
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, hidden = self.rnn(packed)
        h = hidden[0] if isinstance(hidden, tuple) else hidden
        return self.head(torch.cat([h[-1], h[-2]], 1) if self.rnn.bidirectional else h[-1]) + out.data.sum()


def packed_lstm():
    return Packed()


def packed_gru():
    return Packed("GRU", bidirectional=False, layers=1)


class Cells(nn.Module):
    """An nn.LSTMCell, GRUCell or RNNCell stepped over the sequence by hand, its first state left to the cell."""

    def __init__(self, kind):
        super().__init__()
        self.cell = getattr(nn, kind)(16, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        state = None
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)
        return self.head(state[0] if isinstance(state, tuple) else state)


class ProjectedIntoGRU(nn.Module):
    """A projected LSTM, whose output under autocast is bfloat16 (its projection's matmul is cast), into a GRU of
    float32 weights: nn.RNN's check of the input's dtype gives way under autocast."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(16, 32, batch_first=True, proj_size=16)
        self.gru = nn.GRU(16, 32, batch_first=True)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.gru(self.lstm(x)[0])[0][:, -1])


def lstm_cell():
    return Cells("LSTMCell")


def gru_cell():
    return Cells("GRUCell")


def rnn_cell():
    return Cells("RNNCell")


NETS = {"lstm_bi_2": {}, "lstm_1": {"layers": 1, "bidirectional": False},
        "lstm_seq_first_no_bias": {"batch_first": False, "bias": False},
        "lstm_3_dropout": {"layers": 3, "dropout": 0.3, "bidirectional": False}, "lstm_frozen": {"frozen": True},
        "gru": {"kind": "GRU"}, "gru_seq_first_no_bias": {"kind": "GRU", "batch_first": False, "bias": False},
        "rnn_relu_3_dropout": {"kind": "RNN", "layers": 3, "dropout": 0.2, "relu": True},
        "rnn_tanh": {"kind": "RNN", "bidirectional": False}, "lstm_proj": {"proj": 8}}


def build(name):
    return Recurrent(**NETS[name])


def _entry(name):
    return ModelEntry(name, "test", name if ":" in name else f"tests.test_onednn:{name}", (20, 16), "", "")


for _name in NETS:  # one builder a network, as a registry entry names it (the packed ones above)
    globals()[_name] = (lambda name: lambda: build(name))(_name)


@pytest.mark.parametrize("name", NETS)
def test_a_recurrent_network_peaks_where_the_cpus_tensors_do(name):
    """The CPU's LSTM keeps oneDNN's workspace (about 16 floats per hidden unit and step for each layer and
    direction) where the meta device would keep its gates; a GRU, and an LSTM with proj_size, project every
    step's input at once (native_rnn.py): the same peak to the byte as real CPU tensors, over two Adam steps."""
    simulated = simulate(_entry(name), None, 8, "adam", device="cpu")
    assert simulated.allocated == real_cpu_peak(_entry(name), (8, 20, 16), "adam")
    onednn = name.startswith("lstm") and name != "lstm_proj"
    assert [n.split(":")[0] for n in simulated.notes] == (["LSTM layers run by oneDNN"] if onednn else [])


@pytest.mark.parametrize("name", ["packed_lstm", "packed_gru", "lstm_cell", "gru_cell", "rnn_cell"])
def test_a_packed_sequence_or_a_cell_peaks_where_the_cpus_tensors_do(name):
    """A packed sequence's batch shrinks step by step; a cell projects its own step's input (native_rnn.py)."""
    assert simulate(_entry(name), None, 8, "adam", device="cpu").allocated == \
        real_cpu_peak(_entry(name), (8, 20, 16), "adam")


def test_on_cuda_recurrent_layers_say_they_are_decomposed():
    (note,) = simulate(_entry("gru"), None, 4, "sgd", device="cuda").notes
    assert note.startswith("recurrent layers (GRU) are simulated as the meta device decomposes them")
    assert "not as cuDNN's fused RNN kernel runs them" in note


@pytest.mark.parametrize("name,amp", [
    ("gru", "bfloat16"), ("rnn_relu_3_dropout", "bfloat16"), ("lstm_proj", "bfloat16"), ("packed_lstm", "bfloat16"),
    ("lstm_cell", "bfloat16"), ("gru_cell", "bfloat16"), ("gru_seq_first_no_bias", "float16"),
    ("rnn_tanh", "float16"), ("packed_gru", "float16"), ("rnn_cell", "float16"),
    ("tests.test_onednn:ProjectedIntoGRU", "bfloat16")])
def test_under_autocast_the_cpus_native_layers_and_cells_peak_where_its_tensors_do(name, amp):
    """CPU autocast has no entry for the layers or the cells, but casts the linear layers inside them (and a packed
    LSTM, which oneDNN does not take, runs natively): the same peak to the byte as real CPU tensors."""
    assert simulate(_entry(name), None, 8, "adam", device="cpu", amp=amp).allocated == \
        real_cpu_peak(_entry(name), (8, 20, 16), "adam", amp)


@pytest.mark.parametrize("amp", ["bfloat16", "float16"])
def test_an_lstm_that_onednn_runs_under_autocast_is_refused_as_the_cpu_runs_it(amp):
    """Autocast casts at mkldnn_rnn_layer, inside the LSTM that PyTorch gave oneDNN for its float32 input: where
    this CPU's oneDNN has no such kernel (asked by lacks()) the real step fails, and the simulation says so;
    where it has one, its low-precision workspace is not modelled, and it says that."""
    dtype = getattr(torch, amp)
    with pytest.raises(InputError) as refused:
        simulate(_entry("lstm_bi_2"), None, 8, "adam", device="cpu", amp=amp)
    if lacks(dtype) is not None:
        assert "the real step fails" in str(refused.value) and str(refused.value).endswith("drop amp")
        with pytest.raises(RuntimeError, match="primitive"):
            real_cpu_peak(_entry("lstm_bi_2"), (8, 20, 16), "adam", amp)
    else:
        assert f"whose {amp} workspace is not modelled" in str(refused.value)
    assert lacks(torch.float32) is None
    supported = getattr(torch.ops.mkldnn, f"_is_mkldnn_{'bf16' if amp == 'bfloat16' else 'fp16'}_supported")
    assert (lacks(dtype) is None) == supported()
