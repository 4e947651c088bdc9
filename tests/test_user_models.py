"""Users' own models from a file or a module, and the diagnosis of their shape errors."""

import textwrap

import pytest

NETS = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 16 * 16, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


class Sized(Net):
    archcalc_input = (3, 16, 16)


class BadSkip(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)

    def forward(self, x):
        a = self.conv1(x)
        return torch.add(a, self.conv2(a))


class BadDense(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(16, 16, 3, stride=2, padding=1)

    def forward(self, x):
        return torch.cat([x, self.conv(x)], dim=1)


class TooSmall(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool1 = nn.MaxPool2d(2)
        self.pool2 = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool2(self.pool1(x))


class Lazy(nn.Module):
    """Lazy layers make their parameters in the first forward pass; spare never runs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.LazyConv2d(8, 3)
        self.fc = nn.LazyLinear(10)
        self.spare = nn.LazyLinear(4)

    def forward(self, x):
        return self.fc(torch.flatten(self.conv(x), 1))


class LazyTooNarrow(Lazy):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(100, 10)


class Huge(nn.Module):
    def forward(self, x):
        return x.new_empty(2**50)  # 4 PiB of float32: more than any address space


class Two(nn.Module):
    def forward(self, x, mask):
        return x * mask


def build(width=8):
    if width % 2:
        raise ValueError("width must be even")
    return nn.Sequential(nn.Conv2d(3, width, 1))


def not_a_model():
    return [1, 2]


def scripted():
    return torch.jit.script(Net())


class HoldsScript(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.jit.script(Net())

    def forward(self, x):
        return self.body(x)


class HoldsTrace(HoldsScript):
    def __init__(self):
        nn.Module.__init__(self)
        self.body = torch.jit.trace(nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8))


def compiled(num_classes=10):
    return torch.compile(Net(num_classes))


made = Net(num_classes=5)  # a model the file makes itself
torch.nn.init.constant_(made.fc.bias, 0.25)
WIDTH = 3


class KeywordOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, *, x):
        return self.fc(x)


class ReturnsNothing(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        self.fc(x)
'''


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(textwrap.dedent(NETS))
    return path


def test_a_model_from_a_file(cli, nets):
    data = cli("summary", f"{nets}:Net", "--input", "3x16x16", "--arg", "num_classes=5", "-f", "json").json()
    assert data["totals"]["params"] == (3 * 3 * 3 + 1) * 8 + (8 * 16 * 16 + 1) * 5
    assert data["output_shape"] == [1, 5]
    sized = cli("shapes", f"{nets}:Sized", "-f", "json").json()
    assert sized["input_shape"] == [1, 3, 16, 16]


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_model_the_file_makes_itself(cli, nets, device):
    """`made = Net(num_classes=5)` in the file: analysed as its twin, as a module given from Python."""
    data = cli("summary", f"{nets}:made", "--input", "3x16x16", "--device", device, "-f", "json").json()
    assert data["totals"]["params"] == (3 * 3 * 3 + 1) * 8 + (8 * 16 * 16 + 1) * 5
    assert data["totals"]["macs"] == 16 * 16 * 8 * 3 * 3 * 3 + 8 * 16 * 16 * 5
    memory = cli("memory", f"{nets}:made", "--input", "3x16x16", "--batch", "2")
    assert memory.code == 0 and "peak" in memory.out


def test_an_output_without_a_tensor_says_the_backward_has_nothing_to_do(cli, nets):
    data = cli("flops", f"{nets}:ReturnsNothing", "--input", "4", "--pass", "train", "-f", "json").json()
    assert data["totals"]["backward_macs"] == 0
    assert any("holds no floating-point tensor that needs a gradient: there is no loss to take" in note
               for note in data["notes"])


def test_a_compiled_model_is_analysed_as_the_module_it_wraps(cli, nets):
    data = cli("summary", f"{nets}:compiled", "--input", "3x16x16", "--arg", "num_classes=5", "-f", "json").json()
    assert [r["name"] for r in data["layers"]] == ["conv", "relu", "flatten", "fc"]
    assert data["totals"]["macs"] == 8 * 16 * 16 * 27 + 8 * 16 * 16 * 5


def test_a_builder_function_from_a_module(cli, nets, monkeypatch):
    monkeypatch.syspath_prepend(str(nets.parent))
    data = cli("params", "nets:build", "--input", "3x8x8", "--arg", "width=4", "-f", "json").json()
    assert data["totals"]["params"] == 3 * 4 + 4


ANY_INPUTS = '''
import torch
from torch import nn


class MLP(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


class Audio(nn.Sequential):
    archcalc_input = (1, 16000)

    def __init__(self):
        super().__init__(nn.Conv1d(1, 16, 80, stride=16), nn.ReLU())


class Video(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Conv3d(3, 8, 3, padding=1))


class Tagger(nn.Module):
    archcalc_input = ((12,), (12,))

    def __init__(self):
        super().__init__()
        self.embed, self.head = nn.Embedding(1000, 32), nn.Linear(32, 4)

    def forward(self, ids, mask):
        return self.head(self.embed(ids)) * mask.unsqueeze(-1)


class Example(Tagger):
    archcalc_input = {"ids": torch.zeros(2, 7, dtype=torch.long), "mask": torch.ones(2, 7, dtype=torch.bool)}
'''


@pytest.mark.parametrize("name,extra,input_shapes,macs", [
    ("MLP", ("--input", "784", "--batch", "8"), [[8, 784]], 8 * (784 * 256 + 256 * 10)),
    ("Audio", (), [[1, 1, 16000]], 16 * 996 * 80),
    ("Video", ("--input", "3x8x32x32"), [[1, 3, 8, 32, 32]], 8 * 8 * 32 * 32 * 27 * 3),
    ("Tagger", ("--input-dtype", "int64", "--input-dtype", "bool", "-b", "3"), [[3, 12], [3, 12]], 3 * 12 * 32 * 4),
    ("Tagger", ("-i", "5", "-i", "5", "--input-dtype", "int64:1000", "--device", "cpu"), [[1, 5], [1, 5]], 5 * 128),
    ("Example", (), [[2, 7], [2, 7]], 2 * 7 * 32 * 4),
])
def test_inputs_of_any_rank_several_and_integer(cli, tmp_path, name, extra, input_shapes, macs):
    path = tmp_path / "shapes.py"
    path.write_text(ANY_INPUTS)
    data = cli("flops", f"{path}:{name}", *extra, "-f", "json").json()
    assert data["input_shapes"] == input_shapes and data["totals"]["macs"] == macs


@pytest.mark.parametrize("name,extra,message", [
    ("Tagger", ("--input-dtype", "float8"), "unknown input dtype 'float8'"),
    ("Tagger", ("--input-dtype", "int64:x"), "the bound after ':' must be a positive integer"),
    ("Tagger", ("--input-dtype", "int64", "--input-dtype", "bool", "--input-dtype", "bool"),
     "2 inputs but 3 input dtypes"),
    ("Tagger", ("--input", "12"), "forward takes ids, mask; archcalc passes one input tensor"),
    ("Tagger", (), "an embedding looks up integer token ids"),
    ("Example", ("--batch", "2"), "example inputs (archcalc_input) fix its batch"),
    ("MLP", (), "give the input size of"),
])
def test_input_errors_are_one_line(cli, tmp_path, name, extra, message):
    path = tmp_path / "shapes.py"
    path.write_text(ANY_INPUTS)
    run = cli("flops", f"{path}:{name}", *extra)
    assert run.code == 1 and len(run.err.strip().splitlines()) == 1 and message in run.err


@pytest.mark.parametrize("spec,extra,message", [
    ("{nets}:Net", (), "give the input size of"),
    ("{nets}:Nett", ("--input", "3x16x16"), "nets.py has no 'Nett'; it defines: BadDense, BadSkip, HoldsScript"),
    ("{dir}/missing.py:Net", ("--input", "3x16x16"), "no file"),
    ("{nets}:build", ("--input", "3x8x8", "--arg", "width=3"), "nets.py line {raise_line}: constructing"),
    ("{nets}:build", ("--input", "3x8x8", "--arg", "depth=3"), "has no argument 'depth'; it takes: width"),
    ("{nets}:not_a_model", ("--input", "3x8x8"), "returned list, not a torch.nn.Module"),
    ("{nets}:Two", ("--input", "3x8x8"), "forward takes x, mask; archcalc passes one input tensor"),
    ("no_such_package_xyz:Net", ("--input", "3x8x8"), "no module named 'no_such_package_xyz' in the current folder"),
    ("{nets}:scripted", ("--input", "3x16x16"), "it is a TorchScript module (torch.jit.script or torch.jit.trace)"),
    ("{nets}:HoldsScript", ("--input", "3x16x16"), "its module 'body' is a TorchScript module"),
    ("{nets}:HoldsTrace", ("--input", "3x16x16"), "its module 'body' is a TorchScript module"),
    ("{nets}:HoldsTrace", ("--input", "3x16x16", "--device", "meta"), "its module 'body' is a TorchScript module"),
    ("{nets}:WIDTH", ("--input", "3x16x16"), "nets.py:WIDTH is int 3, not a model: name an nn.Module class"),
    ("{nets}:made", ("--input", "3x16x16", "--arg", "num_classes=4"), "is a model already made (Net), which takes no"),
    ("{nets}:KeywordOnly", ("--input", "4"), "KeywordOnly.forward takes x by keyword only; archcalc passes --input "
                                             "sizes by position: give inputs={{'x': ...}} in Python"),
])
def test_user_model_errors_are_one_line(cli, nets, spec, extra, message):
    raise_line = NETS.splitlines().index('        raise ValueError("width must be even")') + 1
    run = cli("shapes", spec.format(nets=nets, dir=nets.parent), *extra)
    assert run.code == 1 and "Traceback" not in run.err
    assert len(run.err.strip().splitlines()) == 1 and message.format(raise_line=raise_line) in run.err


def test_a_file_that_does_not_import(cli, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nx = 1 +\n")
    run = cli("shapes", f"{bad}:Net", "--input", "3x8x8")
    assert run.code == 1 and "bad.py line 2: importing bad.py failed: SyntaxError" in run.err


@pytest.mark.parametrize("name,size,where,rule", [
    ("BadSkip", "3x16x16", "in add (add) receiving 1x32x16x16, 1x64x16x16",
     "differ in channels 32 vs 64; a skip connection needs equal width, height and channels"),
    ("BadDense", "16x16x16", "in cat (cat) receiving 1x16x16x16, 1x16x8x8",
     "a dense connection (torch.cat on channels) needs equal width and height"),
    ("TooSmall", "3x2x2", "in pool2 (MaxPool2d) receiving 1x3x1x1", "is smaller than the window"),
    ("Net", "3x32x32", "in fc (Linear) receiving 1x8192",
     "expects 2048 input features but receives 8192: the last feature map is 8x32x32, so flattening gives "
     "C*H*W = 8*32*32 = 8192"),
])
def test_shape_errors_are_diagnosed(cli, nets, name, size, where, rule):
    run = cli("shapes", f"{nets}:{name}", "--input", size)
    assert run.code == 1 and "Traceback" not in run.err
    (line,) = run.err.strip().splitlines()
    assert where in line and rule in line


def test_the_layers_that_ran_are_shown_before_the_error(cli):
    run = cli("shapes", "vgg_custom_cifar", "--arg", "classifier_in=8192")
    assert run.code == 1
    assert "features.28" in run.out and "the forward pass stopped here" in run.out
    assert "C*H*W = 256*4*4 = 4096 features per sample" in run.err


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_lazy_layers_are_counted_as_the_layers_they_become(cli, nets, device):
    data = cli("summary", f"{nets}:Lazy", "--input", "3x16x16", "--device", device, "-f", "json").json()
    rows = {r["name"]: r for r in data["layers"]}
    assert list(rows) == ["conv", "flatten", "fc"]  # the making of the parameters is no operation of the model
    assert (rows["conv"]["type"], rows["conv"]["params"], rows["conv"]["macs"]) == ("Conv2d", (3 * 3 * 3 + 1) * 8,
                                                                                      8 * 14 * 14 * (3 * 3 * 3))
    assert (rows["fc"]["type"], rows["fc"]["params"], rows["fc"]["macs"]) == ("Linear", (8 * 14 * 14 + 1) * 10,
                                                                              8 * 14 * 14 * 10)
    assert data["totals"]["params"] == 224 + 15690
    assert ("2 lazy parameter tensors were never made (spare.weight, spare.bias: its layer spare did not run): "
            "not counted") in data["notes"]


@pytest.mark.parametrize("device,dtype", [("meta", "float32"), ("meta", "bfloat16"), ("cpu", "bfloat16")])
def test_a_lazy_module_given_from_python_is_made_on_the_device_in_the_dtype(device, dtype):
    """The twin's unmade parameters are made where and as the analysis runs (a copy made them on the CPU in float32:
    on meta the device mismatch read as a value read, with a false note, and bfloat16 failed on the CPU); the
    module itself stays lazy."""
    from torch import nn

    import archcalc

    model = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.Linear(8, 2))
    a = archcalc.analyze(model, (2, 5), device=device, dtype=dtype)
    assert (a.device, a.dtype, a.notes) == (device, dtype, ())
    assert (a.totals.macs, a.totals.params) == (2 * (5 * 8 + 8 * 2), (5 + 1) * 8 + (8 + 1) * 2)
    assert isinstance(model[0], nn.LazyLinear) and model[0].has_uninitialized_params()


def test_a_lazy_model_s_training_memory(cli, nets):
    data = cli("memory", f"{nets}:Lazy", "--input", "3x16x16", "-f", "json").json()
    assert data["totals"]["params_bytes"] == (224 + 15690) * 4  # spare, never run, has no size


def test_a_lazy_model_that_fails_is_diagnosed(cli, nets):
    run = cli("shapes", f"{nets}:LazyTooNarrow", "--input", "3x16x16")
    assert run.code == 1 and "Traceback" not in run.err
    assert "in fc (Linear) receiving 1x1568: expects 100 input features but receives 1568" in run.err


def test_running_out_of_memory_on_a_real_device_is_one_line(cli, nets):
    run = cli("shapes", "vgg16", "--device", "cpu", "--batch", "100000000")
    assert run.code == 1 and "Traceback" not in run.err and len(run.err.strip().splitlines()) == 1
    assert "the input 100000000x3x224x224 (float32) needs 60,211,200,000,000 bytes, more than cpu can allocate; " \
           "use --device meta" in run.err
    run = cli("shapes", f"{nets}:Huge", "--input", "3x8x8", "--device", "cpu")
    assert run.code == 1 and "Traceback" not in run.err and len(run.err.strip().splitlines()) == 1
    assert "forward pass of" in run.err and "use --device meta" in run.err
    meta = cli("shapes", f"{nets}:Huge", "--input", "3x8x8", "-f", "json").json()  # no memory on meta
    assert meta["output_shape"] == [2**50]
    assert meta["device"] == "meta" and meta["notes"][0] == "device auto: meta (the CPU ran out of memory)"


def test_debug_shows_the_traceback(nets):
    from archcalc.cli.app import main
    from archcalc.errors import ForwardError

    with pytest.raises(ForwardError):
        main(["--debug", "shapes", f"{nets}:BadSkip", "--input", "3x16x16"])
