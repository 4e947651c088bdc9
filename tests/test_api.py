"""The Python API (archcalc.analyze, archcalc.summary, the Analysis's methods) and inputs of any kind:
vectors, audio, video, several tensors, token ids, keyword inputs; the user's model left as it was."""

import doctest
import io
import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archcalc
from archcalc.analysis.twin import twin
from archcalc.errors import InputError


def _flop_counter_macs(model, *args, **kwargs) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args, **kwargs)
    return counter.get_total_flops() // 2


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 256), nn.Linear(256, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class Tagger(nn.Module):
    """Token ids and a mask: two inputs, neither of them floating-point."""

    def __init__(self, vocabulary=1000, width=32):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, width)
        self.mix = nn.Linear(width, width)
        self.head = nn.Linear(width, 5)

    def forward(self, ids, mask=None):
        y = self.head(torch.tanh(self.mix(self.embed(ids))))
        return y if mask is None else y * mask.unsqueeze(-1)


class Conv(nn.Module):
    """BatchNorm (running statistics) and Dropout: what eval mode and a training step would change."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(8, 2)
        self.head.weight = nn.Parameter(self.head.weight.detach().clone())

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def test_importing_archcalc_imports_no_torch():
    code = "import sys, archcalc; archcalc.__all__; archcalc.ArchcalcError; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_the_docstrings_examples_hold():
    assert doctest.testmod(archcalc).failed == 0
    assert doctest.testmod(sys.modules["archcalc.api"]).failed == 0


def test_public_names_are_documented_and_no_subpackage_hides_one():
    import importlib
    import pkgutil
    import types

    for info in pkgutil.walk_packages(archcalc.__path__, "archcalc."):  # each sets its name on its parent
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    for name in archcalc.__all__:
        value = getattr(archcalc, name)
        assert name == "__version__" or (value.__doc__ and not isinstance(value, types.ModuleType)), name
    for method in ("to_frame", "to_dict", "to_json", "to_csv", "to_html", "show", "report", "layers"):
        assert getattr(archcalc.Analysis, method).__doc__, method


@pytest.mark.parametrize("device", ["meta", "cpu", "auto"])
def test_the_users_model_is_left_exactly_as_it_was(device):
    torch.manual_seed(0)
    model = Conv().train()
    weight = model.features[0].weight
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    hooks = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]
    a = archcalc.analyze(model, (4, 3, 16, 16), device=device, backward=True)
    assert a.totals.macs == 4 * 8 * 14 * 14 * 27 + 4 * 8 * 2
    assert [m.training for m in model.modules()] == flags  # still in training mode, every module of it
    assert model.features[0].weight is weight and weight.device.type == "cpu" and weight.grad is None
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # BatchNorm's statistics too
    assert [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()] == hooks
    assert not any("forward" in m.__dict__ for m in model.modules())  # no traced forward left behind


def test_the_meta_twin_holds_no_copy_of_the_weights_and_keeps_ties():
    model = Conv()
    model.head.bias = model.features[1].bias  # a parameter shared by two modules stays shared
    made = twin(model, torch.device("meta"), torch.float32)
    assert all(t.device.type == "meta" for t in (*made.parameters(), *made.buffers()))
    assert made.head.bias is made.features[1].bias
    assert not made.training and model.training
    same = twin(model, torch.device("cpu"), torch.float32)  # on the weights' own device: shared, not copied
    assert same.features[0].weight is model.features[0].weight
    assert same.features[1].running_mean is not model.features[1].running_mean  # buffers: a forward may write them


def test_a_registered_name_gives_the_command_lines_json(cli):
    a = archcalc.analyze("vgg_dense", device="cpu")
    data = cli("summary", "vgg_dense", "-f", "json", "--device", "cpu").json()
    assert a.to_dict() == data
    assert (a.totals.params, a.totals.macs) == (data["totals"]["params"], data["totals"]["macs"])
    assert archcalc.analyze("vgg_dense", (2, 3, 64, 64)).to_dict("flops") == cli(
        "flops", "vgg_dense", "--input", "3x64x64", "--batch", "2", "--device", "meta", "-f", "json").json()


def test_a_users_spec_by_name(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text("from torch import nn\n"
                                      "class Net(nn.Sequential):\n"
                                      "    def __init__(self, width=8):\n"
                                      "        super().__init__(nn.Conv1d(1, width, 5), nn.ReLU())\n")
    monkeypatch.chdir(tmp_path)
    a = archcalc.analyze("mine.py:Net", (2, 1, 100), args={"width": 4})
    assert a.totals.macs == 2 * 4 * 96 * 5 and a.input_shape == (2, 1, 100)


def test_inputs_beyond_images():
    mlp = archcalc.analyze(MLP(), (8, 784))
    assert mlp.totals.macs == 8 * (784 * 256 + 256 * 10) and mlp.totals.params == 784 * 256 + 256 + 256 * 10 + 10
    audio = nn.Sequential(nn.Conv1d(1, 16, 80, stride=16), nn.ReLU(), nn.Conv1d(16, 32, 3))
    a = archcalc.analyze(audio, (1, 1, 16000))
    assert a.layers[0].output_shapes == ((1, 16, 996),) and a.layers[0].formulas["output"].endswith("= 996")
    assert a.totals.macs == _flop_counter_macs(audio, torch.randn(1, 1, 16000))
    video = nn.Sequential(nn.Conv3d(3, 8, 3, padding=1), nn.MaxPool3d(2), nn.Conv3d(8, 16, 3))
    v = archcalc.analyze(video, (2, 3, 8, 32, 32))
    assert v.totals.macs == 2 * 8 * 8 * 32 * 32 * 27 * 3 + 2 * 16 * 2 * 14 * 14 * 27 * 8
    assert v.totals.macs == _flop_counter_macs(video, torch.randn(2, 3, 8, 32, 32))


def test_token_ids_by_size_by_example_and_by_keyword():
    torch.manual_seed(0)
    model = Tagger()
    ids, mask = torch.randint(0, 1000, (3, 12)), torch.ones(3, 12, dtype=torch.bool)
    expected = _flop_counter_macs(model, ids, mask)
    assert expected == 3 * 12 * (32 * 32 + 32 * 5)
    sized = archcalc.analyze(model, [(3, 12), (3, 12)], input_dtypes=["int64", torch.bool])
    assert sized.totals.macs == expected and sized.input_dtypes == ("int64", "bool")
    assert sized.to_dict()["input_shapes"] == [[3, 12], [3, 12]]
    for device in ("meta", "cpu"):
        assert archcalc.analyze(model, inputs=(ids, mask), device=device).totals.macs == expected
        assert archcalc.analyze(model, inputs={"ids": ids, "mask": mask}, device=device).totals.macs == expected
    assert archcalc.analyze(model, (3, 12), input_dtypes=["int64:1000"], device="cpu").totals.macs == expected
    with pytest.raises(archcalc.ForwardError, match=r"input_dtypes=\[torch.int64\]"):
        archcalc.analyze(model, (3, 12))  # floats into an embedding: the error says what to give


def test_a_tensor_where_the_size_goes_is_an_example_input():
    """fvcore's FlopCountAnalysis(model, x) and torchinfo's input_data habit: archcalc.analyze(model, x) is
    analyze(model, inputs=x), for every function that takes a size (a tuple of tensors, a dict of keyword inputs)."""
    torch.manual_seed(0)
    model = Tagger()
    ids, mask = torch.randint(0, 1000, (3, 12)), torch.ones(3, 12, dtype=torch.bool)
    expected = 3 * 12 * (32 * 32 + 32 * 5)
    assert archcalc.analyze(model, (ids, mask)).totals.macs == expected
    assert archcalc.analyze(model, {"ids": ids, "mask": mask}).totals.macs == expected
    assert archcalc.summary(model, (ids, mask)).input_dtypes == ("int64", "bool")
    x = torch.randn(4, 784)
    assert archcalc.analyze(MLP(), x).input_shape == (4, 784)
    assert archcalc.analyze(MLP(), x).totals.macs == 4 * (784 * 256 + 256 * 10)
    assert archcalc.reconcile(MLP(), x)[1]["flop_counter"].total == 2 * 4 * (784 * 256 + 256 * 10)
    by_size, by_example = (archcalc.memory(MLP(), given, optimizer="adam") for given in ((4, 784), x))
    assert by_example.predicted_bytes == by_size.predicted_bytes
    timed = archcalc.time(MLP(), x, device="cpu", repeat=2, warmup=1)[0]
    assert not timed.error and timed.input_shape == (4, 784)
    rows = archcalc.compare([MLP(), nn.Sequential(nn.Linear(784, 10))], x)
    assert [row.values["macs"] for row in rows] == [4 * (784 * 256 + 256 * 10), 4 * 784 * 10]
    assert "input 784, batch 4" in rows.context
    with pytest.raises(InputError, match="give input_size or inputs"):
        archcalc.memory(MLP(), x, inputs=x)
    with pytest.raises(InputError, match=r"got \[0, 1, 2, [0-9, ]+\.\.\.$") as error:  # (cut to one short line)
        archcalc.analyze(MLP(), list(range(100)))
    assert len(str(error.value).split(" got ")[1]) == 80


def test_the_frame_csv_json_and_html_agree(tmp_path):
    a = archcalc.analyze("cnnet")
    frame = a.to_frame("flops")
    from_csv = pd.read_csv(io.StringIO(a.to_csv(view="flops")))
    assert list(frame.columns) == list(from_csv.columns)
    assert frame["MACs"].sum() == from_csv["MACs"].sum() == a.totals.macs == 5_519_232
    assert json.loads(a.to_json(tmp_path / "a.json"))["totals"]["macs"] == 5_519_232
    assert json.loads((tmp_path / "a.json").read_text()) == a.to_dict()
    html = a._repr_html_()
    assert html.startswith('<div class="archcalc">') and "<table>" in html and "5,519,232" in html
    assert "<svg" in html and "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # all inline
    page = a.to_html(tmp_path / "a.html", view="params")
    assert page.startswith("<!DOCTYPE html>") and (tmp_path / "a.html").read_text() == page


def test_a_memory_estimate_shows_its_table_in_a_notebook_and_a_terminal(capsys):
    """archcalc.memory's result renders as `archcalc memory` prints it: a notebook's HTML, rich.print, show()."""
    from rich.console import Console

    e = archcalc.memory("cnnet", (8, 3, 32, 32), optimizer="adam")
    html = e._repr_html_()
    assert html.startswith('<div class="archcalc">') and html.count("<tr>") == 1 + len(e.layers)  # (the header)
    assert f"= {e.predicted_bytes:,} bytes" in html and "CPU peak, simulated" in html
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(e)
    text = console.export_text()
    assert "sum of the parts" in text and f"{e.total_bytes:,}" in text
    e.show()
    assert "sum of the parts" in capsys.readouterr().out


def test_compare_and_time_results_show_their_commands_tables(cli):
    """compare()'s and time()'s lists render as the commands print them: the same report, so the same JSON."""
    rows = archcalc.compare(["vgg_base", "vgg_dense"])
    assert [r.model for r in rows] == ["vgg_base", "vgg_dense"]  # (still the list of rows)
    assert rows.report().data == cli("compare", "vgg_base", "vgg_dense", "-f", "json").json()
    assert "+7.36%" in rows._repr_html_() or "x1.0736" in rows._repr_html_()
    timings = archcalc.time("cnnet", device="cpu", repeat=2, warmup=1)
    assert timings[0].median_ms > 0 and "1 warm-up runs excluded, then at least 2 timed runs" in \
        " ".join(timings.report().footer)
    estimate = timings.report(samples=50_000, epochs=20).footer
    assert any(line.startswith("Run estimate: cnnet: ceil(50,000 / 1) = 50,000 steps an epoch") for line in estimate)


def test_a_fit_shows_the_table_of_memory_fit_with_its_setting(cli):
    """memory(fit=...) answers the Fit that `archcalc memory --fit` prints: the same report (so the same JSON),
    its footer naming the step it was found for, autocast and channels-last included."""
    fit = archcalc.memory("cnnet", fit="64MiB", optimizer="adam", amp="bfloat16", channels_last=True)
    said = cli("memory", "cnnet", "--fit", "64MiB", "--optimizer", "adam", "--amp", "bfloat16", "--channels-last",
               "-f", "json").json()
    assert fit.report().data == said and said["batch"] == fit.batch > 1 and said["amp"] == "bfloat16"
    assert fit.predicted(fit.batch) <= 64 * 2**20 < fit.predicted(fit.batch + 1)
    footer = fit.report().footer
    assert footer[0] == fit.text() and footer[1].startswith(
        "adam training steps, float32, the forward and the loss under torch.autocast('cpu', bfloat16), "
        "channels-last, input 3x32x32 per sample: the CPU peak")
    html = fit._repr_html_()
    assert html.startswith('<div class="archcalc">') and f"{fit.predicted(fit.batch):,}" in html


def test_rich_show_and_summary(capsys):
    from rich.console import Console

    a = archcalc.summary("lenet5")
    out = capsys.readouterr().out
    assert "lenet5: summary" in out and "Params: 60,840" in out
    buffer = io.StringIO()
    Console(file=buffer, width=200).print(a)
    assert "Params: 60,840" in buffer.getvalue()
    cut = archcalc.analyze(Conv(), (1, 3, 8, 8), depth=1)
    assert [r.name for r in cut.layers] == ["features", "mean", "head"]
    assert sum(r.macs for r in cut.layers) == cut.totals.macs


def test_bad_arguments_get_one_clear_error():
    with pytest.raises(InputError, match="unknown convention"):
        archcalc.analyze("cnnet", convention="mine")
    with pytest.raises(InputError, match=r"give the input of MLP, with the batch: e.g. input_size=\(1, 784\)"):
        archcalc.analyze(MLP())  # (the size its first layer takes)
    with pytest.raises(InputError, match=r"input_size=\(1, 128\), input_dtypes=\['int64:100'\]"):
        archcalc.analyze(nn.Embedding(100, 8))
    with pytest.raises(InputError, match="positive integers"):
        archcalc.analyze(MLP(), (8, 0))
    with pytest.raises(InputError, match="must be an nn.Module"):
        archcalc.analyze(42)
    with pytest.raises(InputError, match="2 input sizes but 3 input dtypes|2 inputs but 3 input dtypes"):
        archcalc.analyze(Tagger(), [(1, 4), (1, 4)], input_dtypes=["int64"] * 3)
    with pytest.raises(InputError, match="forward takes x; archcalc was given 2 inputs"):
        archcalc.analyze(MLP(), [(1, 784), (1, 784)])
    with pytest.raises(InputError, match="unknown input dtype"):
        archcalc.analyze(MLP(), (1, 784), input_dtypes=["float8"])
    with pytest.raises(InputError, match="give input_size or inputs"):  # (which would win? neither: said)
        archcalc.analyze(MLP(), (1, 784), inputs=torch.randn(2, 784))
    with pytest.raises(InputError, match="unknown view 'nope'"):
        archcalc.analyze(MLP(), (1, 784)).to_dict("nope")
    with pytest.raises(InputError, match="backward must be True or False"):
        archcalc.analyze(MLP(), (1, 784), backward="yes")
    with pytest.raises(InputError, match=r"input_size carries the batch \(8\), and batch=4 differs"):
        archcalc.memory(MLP(), (8, 784), batch=4)  # (the default batch, 1, defers to the size's)
    with pytest.raises(InputError, match="fit must be a positive number of bytes"):
        archcalc.memory(MLP(), (1, 784), fit=-5)
    # (an option named as Python gives it: the command line's own words, --batch and --fit 'abc', are its own)
    with pytest.raises(InputError, match=r"^batch must be a positive integer, got 0$"):
        archcalc.analyze("cnnet", batch=0)
    with pytest.raises(InputError, match=r"^fit='abc' is not a memory size"):
        archcalc.memory("cnnet", fit="abc")
    assert [row.model for row in archcalc.compare("cnnet")] == ["cnnet"]  # one name is one model, not letters
    # A registered model's size without its batch: (3, 32, 32) was read as a batch of 3 of 32x32 images (the command
    # line's HxW, the channels filled in), three times one image's MACs, with no word of it.
    for call in (lambda: archcalc.analyze("cnnet", (3, 32, 32)), lambda: archcalc.memory("cnnet", (3, 32, 32)),
                 lambda: archcalc.reconcile("cnnet", (3, 32, 32)), lambda: archcalc.time("cnnet", (3, 32, 32))):
        with pytest.raises(InputError, match=r"is the full shape with the batch first, and cnnet takes "
                                             r"\(1, 3, 32, 32\) for one sample: give 4 sizes"):
            call()
    assert archcalc.analyze("cnnet", (3, 3, 32, 32)).totals.macs == 3 * archcalc.analyze("cnnet").totals.macs
    for options, message in (({"repeat": 0}, "repeat must be"), ({"warmup": -1}, "warmup must be"),
                             ({"min_time": float("nan")}, "min_time must be"), ({"threads": 0}, "threads must be"),
                             ({"training": True, "optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
                             ({"amp": "fp8"}, "unknown amp 'fp8'")):
        with pytest.raises(InputError, match=message):  # (before anything is built or timed)
            archcalc.time(MLP(), (1, 784), device="cpu", **options)


def test_the_readme_python_example_prints_what_it_says(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("## In Python and in notebooks\n\n```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    printed = [line for line in capsys.readouterr().out.splitlines() if line and line[0] in "0123456789("]
    promised = [line.split("# ")[-1].strip() for line in block.splitlines() if line.startswith("print(")]
    assert printed[:len(promised)] == promised
    assert (tmp_path / "mlp.html").read_text().startswith("<!DOCTYPE html>")


def test_one_function_per_command_returns_what_the_command_renders(cli):
    with pytest.raises(InputError, match="give the input of MLP"):  # (no size for the MLP: said, not guessed)
        archcalc.compare([MLP()], None)
    data = cli("compare", "vgg_base", "vgg_dense", "-f", "json").json()["rows"]
    pairs = archcalc.compare(["vgg_base", "vgg_dense"])
    assert [(r.model, r.values["macs"], r.ratio["params"]) for r in pairs] == [
        (d["model"], d["macs"], d["ratio"]["params"]) for d in data]
    twins = archcalc.compare([MLP(), MLP()], (1, 784))
    assert [r.model for r in twins] == ["MLP", "MLP (2)"] and twins[1].ratio["macs"] == 1.0
    fitted = cli("memory", "cnnet", "--fit", "64MiB", "-f", "json").json()["batch"]
    assert archcalc.memory("cnnet", fit="64MiB").batch == fitted == archcalc.memory("cnnet", fit=64 * 2**20).batch
    with pytest.raises(InputError, match="fit answers the batch itself; drop the batch of 8"):
        archcalc.memory("cnnet", (8, 3, 32, 32), fit="64MiB")
    estimate = archcalc.memory("cnnet", (8, 3, 32, 32))
    assert estimate.total_bytes == cli("memory", "cnnet", "--batch", "8", "-f", "json").json()["totals"]["total_bytes"]
    analysis, tools = archcalc.reconcile("cnnet")
    assert analysis.totals.macs == 5_519_232 and tools["fvcore"].total == 5_519_232
    verdicts = archcalc.check()
    assert verdicts and all(v.passed for v in verdicts)
    (timing,) = archcalc.time("cnnet", device="cpu", warmup=0, repeat=2)
    assert not timing.error and len(timing.times_ms) >= 2 and timing.median_ms > 0
    with pytest.raises(InputError, match="give the input of MLP"):
        archcalc.memory(MLP())
    with pytest.raises(InputError, match="an nn.Module, a registered name or a FILE.py:NAME"):
        archcalc.memory(42, (1, 784))
    fields = archcalc.rf("vgg_dense")
    rows = cli("rf", "vgg_dense", "-f", "json").json()["layers"]
    shown = next(r for r in rows if r["name"] == "conv2_2")["receptive_field"]["size"]
    assert fields["conv2_2"].size == (14, 14) == tuple(shown)


def test_compiled_and_scripted_modules():
    compiled = torch.compile(MLP())
    assert archcalc.analyze(compiled, (1, 784)).totals.macs == 784 * 256 + 256 * 10
    scripted = archcalc.analyze(torch.jit.script(MLP()), (1, 784))  # (converted to a program: test_exported.py)
    assert scripted.totals.macs == 784 * 256 + 256 * 10
    holder = nn.Sequential(torch.jit.script(MLP()), nn.ReLU())  # (a TorchScript part inside a Python model)
    with pytest.raises(InputError, match="is a TorchScript module"):
        archcalc.analyze(holder, (1, 784))


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_scripted_function_is_counted_as_the_python_it_was_made_from(device):
    """@torch.jit.script's function runs its Python original while traced: its product is a row (2*16*4 beside the
    linear layer's 2*8*16), its weight used, as flop_counter counts the interpreter's kernels."""
    from torch.utils.flop_counter import FlopCounterMode

    from tests.networks import ScriptedGate

    a = archcalc.analyze(ScriptedGate(), (2, 8), device=device)
    assert a.totals.macs == 2 * 8 * 16 + 2 * 16 * 4 and not any("did not run" in n for n in a.notes)
    with FlopCounterMode(display=False) as counter:
        ScriptedGate()(torch.randn(2, 8))
    assert 2 * a.totals.macs == counter.get_total_flops()


def test_a_scripted_function_without_its_python_is_a_row_not_counted():
    """Compiled from a string, it has no Python to run: its work is out of sight, said, never counted as 0."""
    unit = torch.jit.CompilationUnit("def gate(x, w):\n    return torch.sigmoid(x @ w)\n")

    class Held(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.w = nn.Linear(8, 16), nn.Parameter(torch.randn(16, 4))

        def forward(self, x):
            return unit.gate(self.fc(x), self.w)

    a = archcalc.analyze(Held(), (2, 8), device="cpu")
    row = next(r for r in a.records if r.type == "gate")
    assert row.macs is None and "out of the trace's sight" in row.note
    assert any(n.startswith("not counted: gate (a TorchScript function") for n in a.notes)
    assert row.params == 16 * 4 and not any("did not run" in n for n in a.notes)  # (its weight is its input)
