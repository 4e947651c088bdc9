"""Programs torch.export made (a graph of ATen operators, analysis/aten.py): counted as the model they were exported
from, in torch.export's default form and in the core ATen form run_decompositions() makes, from Python and from a
.pt2 file on the command line; TorchScript modules and .pt files, converted to such programs (models/programs.py)."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archcalc


class Mixed(nn.Module):
    """The operators whose ATen schema orders their arguments otherwise than their Python function: BatchNorm,
    InstanceNorm, interpolation; and conv, pooling, attention, GroupNorm, LayerNorm beside them."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.inorm = nn.InstanceNorm2d(8, affine=True, track_running_stats=True)
        self.gn = nn.GroupNorm(2, 8)
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        x = self.gn(self.inorm(x))
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear") + F.interpolate(self.up(x), size=x.shape[-1] * 2)
        tokens = self.norm(x.flatten(2).transpose(1, 2))
        tokens = self.attention(tokens, tokens, tokens, need_weights=False)[0]
        return self.head(tokens.mean(1))


class Convolutional(Mixed):
    """Mixed without its attention (the converter of TorchScript cannot take nn.MultiheadAttention's traced graph,
    whose sizes it reads as values: a one-line error then)."""

    def __init__(self):
        super().__init__()
        del self.attention

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        x = self.gn(self.inorm(x))
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear") + F.interpolate(self.up(x), size=x.shape[-1] * 2)
        return self.head(self.norm(x.mean((2, 3))))


class Tagger(nn.Module):
    """Token ids through an embedding (the table first in ATen's schema) and a GRU-free head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.mix = nn.Linear(16, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, ids):
        return self.head(F.gelu(self.mix(self.embed(ids))))


def _exported(model, example, core: bool = False, dynamic: bool = False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shapes = ({0: torch.export.Dim("batch", min=1, max=64)},) if dynamic else None
        program = torch.export.export(model.eval(), (example,), dynamic_shapes=shapes)
        return program.run_decompositions() if core else program


def _totals(a):
    return a.totals.params, a.totals.macs, a.totals.elementwise


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_an_exported_program_counts_as_the_model_it_came_from(device):
    torch.manual_seed(0)
    for model, size, dtype in ((Mixed(), (2, 3, 16, 16), None), (Tagger(), (2, 12), "int64")):
        example = torch.randint(0, 100, size) if dtype else torch.randn(size)
        program = _exported(model, example).module()
        eager, graph = (archcalc.analyze(m, [size], input_dtypes=[dtype] if dtype else None, device=device)
                        for m in (model, program))
        assert _totals(graph) == _totals(eager) and graph.totals.macs > 0
        assert not [note for note in graph.notes if "not counted" in note]
        eager, graph = (archcalc.analyze(m, [size], input_dtypes=[dtype] if dtype else None, device=device,
                                         backward=True) for m in (model, program))  # (its graph: eval mode's)
        assert graph.totals.backward_macs == eager.totals.backward_macs > 0


def test_the_core_aten_form_counts_the_same_products():
    """run_decompositions(): aten.convolution, addmm, _native_batch_norm_legit_no_training, ...: the same parameters
    and multiply-accumulates (its element-wise work is what the decompositions became)."""
    torch.manual_seed(0)
    model = Mixed()
    eager = archcalc.analyze(model, (2, 3, 16, 16))
    graph = archcalc.analyze(_exported(model, torch.randn(2, 3, 16, 16), core=True).module(), (2, 3, 16, 16))
    assert (graph.totals.params, graph.totals.macs) == (eager.totals.params, eager.totals.macs)
    assert not [note for note in graph.notes if "not counted" in note]


def test_a_saved_program_on_the_command_line(cli, tmp_path):
    """A .pt2 file: its example inputs (a batch of 2 here), rows under the names of the modules it was exported
    from; exported with a dynamic batch, any --batch; without, a batch of another size is refused in one line."""
    torch.manual_seed(0)
    model = Mixed()
    eager = archcalc.analyze(model, (2, 3, 16, 16))
    fixed, dynamic = tmp_path / "fixed.pt2", tmp_path / "dynamic.pt2"
    torch.export.save(_exported(model, torch.randn(2, 3, 16, 16)), fixed)
    torch.export.save(_exported(model, torch.randn(2, 3, 16, 16), dynamic=True), dynamic)
    data = cli("summary", fixed, "-f", "json").json()
    assert data["input_shape"] == [2, 3, 16, 16] and data["totals"]["macs"] == eager.totals.macs
    assert data["totals"]["params"] == eager.totals.params
    assert {"conv.conv2d", "bn.batch_norm", "head.linear"} <= {layer["name"] for layer in data["layers"]}
    four = cli("flops", dynamic, "--batch", "4", "-f", "json").json()
    assert four["totals"]["macs"] == 2 * eager.totals.macs
    refused = cli("flops", fixed, "--input", "3x16x16", "--batch", "4")
    assert refused.code == 1 and len(refused.err.strip().splitlines()) == 1
    assert "the program was exported for other input sizes" in refused.err
    memory = cli("memory", dynamic, "--batch", "2")
    assert memory.code == 0 and "peak" in memory.out
    train = cli("flops", fixed, "--pass", "train", "-f", "json").json()  # (exported in eval mode: its BatchNorm's
    assert any(note.startswith("1 batch_norm call takes the running statistics in this training step")  # graph
               for note in train["notes"])                                                            # keeps them)
    compared = cli("compare", fixed, "lenet5")  # (the program's example batch is its own)
    assert compared.code == 0 and f"batch each model's own ({fixed} 2, lenet5 1)" in " ".join(compared.out.split())


def test_a_file_that_is_no_program_is_one_line(cli, tmp_path):
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"not a program")
    run = cli("summary", bad)
    assert run.code == 1 and "bad.pt2 is not a program torch.export.save wrote" in run.err
    assert "no file" in cli("summary", tmp_path / "missing.pt2").err


converter = pytest.importorskip("torch._export.converter")


def _small():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 5))


@pytest.mark.parametrize("make,network", [("trace", Convolutional), ("script", _small)])
def test_a_torchscript_module_counts_as_the_model_it_came_from(make, network):
    """torch.jit.trace or torch.jit.script: converted to a program at the input asked for (torch.export's
    converter), then counted; parameters, MACs, the backward's MACs and the training peak equal the Python model's
    (a trace records x.shape[-1] * 2 as a product of 0-dim tensors: one element-wise operation more, one 64-byte
    block more at the peak). (A scripted model with a loop, as GroupNorm's checks script into, is one the converter
    refuses: a one-line error.)"""
    torch.manual_seed(0)
    model = network().eval()
    traced = make == "trace"  # (by name: torch.compile, run by an earlier test, replaces torch.jit.trace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.trace(model, torch.randn(2, 3, 16, 16), check_trace=False) if traced else \
            torch.jit.script(model)
    for size in ((2, 3, 16, 16), (1, 3, 16, 16)):
        eager, converted = (archcalc.analyze(m, size) for m in (model, scripted))
        assert _totals(converted)[:2] == _totals(eager)[:2]
        assert converted.totals.elementwise - eager.totals.elementwise == traced
    eager, converted = (archcalc.analyze(m, (2, 3, 16, 16), backward=True) for m in (model, scripted))
    assert converted.totals.backward_macs == eager.totals.backward_macs > 0
    peaks = [archcalc.memory(m, (2, 3, 16, 16)).peak.allocated for m in (scripted, model)]
    assert peaks[0] - peaks[1] == 64 * traced


def test_a_torchscript_file_on_the_command_line(cli, tmp_path):
    torch.manual_seed(0)
    model, path = Convolutional().eval(), tmp_path / "convolutional.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(model, torch.randn(2, 3, 16, 16), check_trace=False), path)
    data = cli("summary", path, "--input", "3x16x16", "--batch", "3", "-f", "json").json()
    eager = archcalc.analyze(model, (3, 3, 16, 16))
    assert (data["totals"]["macs"], data["totals"]["params"]) == (eager.totals.macs, eager.totals.params)
    assert data["totals"]["trainable_params"] == eager.totals.params  # (torch.jit.load's parameters, lifted as
    assert "give it with --input" in cli("summary", path).err          # buffers by the converter, made parameters)
    assert cli("memory", path, "--input", "3x16x16", "--batch", "2").code == 0
    tagger = tmp_path / "tagger.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(Tagger().eval(), torch.randint(0, 100, (2, 12))), tagger)
    ids = cli("summary", tagger, "--input", "12", "--input-dtype", "int64", "--batch", "3", "-f", "json").json()
    assert ids["totals"]["params"] == 100 * 16 + (16 + 1) * 16 + (16 + 1) * 4
    assert ids["totals"]["macs"] == 3 * 12 * (16 * 16 + 16 * 4)
    weights = tmp_path / "weights.pth"
    torch.save(model.state_dict(), weights)
    run = cli("summary", weights, "--input", "3x16x16")
    assert run.code == 1 and "weights.pth is not a TorchScript module torch.jit.save wrote: a state_dict" in run.err


def test_a_torchscript_module_a_file_makes(cli, tmp_path):
    """`made = torch.jit.script(...)` at a file's top level: converted at --input, any --batch."""
    path = tmp_path / "scripted.py"
    path.write_text("import torch\nfrom torch import nn\n\n"
                    "made = torch.jit.script(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),\n"
                    "                                      nn.Linear(8 * 16 * 16, 5)))\n")
    data = cli("flops", f"{path}:made", "--input", "3x16x16", "--batch", "4", "-f", "json").json()
    assert data["totals"]["macs"] == 4 * (16 * 16 * 8 * 3 * 3 * 3 + 8 * 16 * 16 * 5)
