"""Models the meta device refuses: constructors and forward passes that read tensor values."""

from pathlib import Path

import pytest
import torch
from torch import nn

from archcalc.analysis import placement
from archcalc.analysis.engine import analyse, build_noted
from archcalc.errors import InputError
from archcalc.models.user import lookup
from archcalc.models.catalog import REGISTRY
from tests.networks import RegNetLike

NETWORKS = Path(__file__).with_name("networks.py")


def test_a_constructor_that_reads_values_is_built_with_its_parameters_on_meta():
    entry = lookup(f"{NETWORKS}:RegNetLike", (3, 16, 16))
    model, note = build_noted(entry, torch.device("meta"), torch.float32)
    assert note == placement.CONSTRUCTED_ON_CPU
    assert {t.device.type for t in (*model.parameters(), *model.buffers())} == {"meta"}
    a = analyse(entry)
    assert a.notes[0] == placement.CONSTRUCTED_ON_CPU
    on_cpu = RegNetLike()
    assert a.totals.params == sum(p.numel() for p in on_cpu.parameters()) == 19_152
    # widths 16, 32, 48 (8 + 8i, doubled): 3x3 convs on 16x16
    assert a.totals.macs == 16 * 16 * 9 * (3 * 16 + 16 * 32 + 32 * 48)


def test_registration_is_restored_even_when_the_constructor_fails():
    before = nn.Module.register_parameter, nn.Module.register_buffer
    with pytest.raises(ZeroDivisionError), placement.parameters_on(torch.device("meta")):
        nn.Linear(2, 2)
        raise ZeroDivisionError
    assert (nn.Module.register_parameter, nn.Module.register_buffer) == before


def test_a_constructor_that_fails_every_way_names_its_file_and_line(tmp_path):
    net = tmp_path / "broken.py"
    net.write_text("import torch\nfrom torch import nn\n\nclass Net(nn.Module):\n    def __init__(self):\n"
                   "        super().__init__()\n        n = int(torch.tensor(4.0).item())\n        1 / 0\n")
    with pytest.raises(InputError, match=r"^broken.py line 8: constructing .*ZeroDivisionError"):
        analyse(lookup(f"{net}:Net", (3, 8, 8)))


def test_a_forward_that_reads_values_runs_again_on_the_cpu():
    a = analyse(lookup(f"{NETWORKS}:ValueBranch", (3, 16, 16)))
    assert a.device == "cpu"
    assert a.notes[0].startswith("networks.py line ")
    assert "reads a tensor's value" in a.notes[0] and "branch that input took" in a.notes[0]
    # conv 3->8 3x3 on 16x16 (14x14 out), then the branch taken: 8->8 3x3 (12x12 out)
    assert a.totals.macs == 14 * 14 * 8 * 27 + 12 * 12 * 8 * 72


class MadeOnTheCPU(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 5)

    def forward(self, x):
        return self.fc(x) + torch.ones(5)  # (on the CPU, whatever x's device)


def test_a_tensor_made_on_the_cpu_runs_the_analysis_there_and_says_why():
    import archcalc

    a = archcalc.analyze(MadeOnTheCPU(), (2, 5), device="meta")
    assert a.device == "cpu" and a.totals.macs == 2 * 5 * 5
    assert "the forward pass of MadeOnTheCPU makes a tensor on the CPU, which meets the meta device's (a tensor " \
           "made without device=x.device): run on the CPU instead" in a.notes[0]
    assert "reads a tensor's value" not in a.notes[0] and "branch" not in a.notes[0]


def test_the_users_line_is_found_in_a_folder_named_archcalc(tmp_path):
    """git clones this repository into archcalc/: a user's file there is still the user's, not the package's."""
    folder = tmp_path / "archcalc"
    folder.mkdir()
    (folder / "net.py").write_text("import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n"
                                   "    def __init__(self):\n        super().__init__()\n"
                                   "        self.conv = nn.Conv2d(3, 4, 3)\n\n    def forward(self, x):\n"
                                   "        y = self.conv(x)\n        return y if y.mean() > -1 else -y\n")
    a = analyse(lookup(f"{folder / 'net.py'}:Net", (3, 8, 8)))
    assert a.device == "cpu" and a.notes[0].startswith("net.py line 12: ")


def test_refusals_are_told_from_other_errors():
    with pytest.raises(RuntimeError) as caught:
        torch.empty(1, device="meta").item()
    assert placement.refuses_meta(caught.value)
    assert not placement.refuses_meta(RuntimeError("shapes differ"))


def test_auto_runs_a_small_model_on_the_cpu_and_a_large_one_on_meta(cli):
    small = cli("flops", "vgg_dense", "-f", "json").json()
    assert small["device"] == "cpu" and small["notes"][0].startswith("device auto: the CPU (2,674,602 parameters")
    meta = cli("flops", "vgg_dense", "--device", "meta", "-f", "json").json()
    assert meta["device"] == "meta" and meta["totals"] == small["totals"] and not meta["notes"]
    large = cli("params", "vgg16", "-f", "json").json()
    assert large["device"] == "meta" and "138,357,544 parameters" in large["notes"][0]
    half = analyse(REGISTRY.get("cnnet"), device="auto", dtype="float16")
    assert half.device == "meta" and "float16" in half.notes[0]

