"""A step the CPU refuses for its dtypes gets no peak, and a forward that runs on no device no counts: the meta kernels
take mixed dtypes that the CPU's refuse (analysis/mixed_dtypes.py), and the rules are checked against the CPU's kernels
themselves."""

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import archcalc
from archcalc.errors import ForwardError
from archcalc.analysis import mixed_dtypes

bf16, f16, f32, i64 = torch.bfloat16, torch.float16, torch.float32, torch.int64


class _Asked(TorchDispatchMode):
    """Asks mixed_dtypes.refusal of every aten call before running it, as the simulation's dispatch mode does."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        said = mixed_dtypes.refusal(func, args, "cpu")
        if said:
            raise RuntimeError(said)
        return func(*args, **(kwargs or {}))


def _runs(call, device: str) -> bool:
    """Whether ``call(ones)`` runs on ``device``: the CPU's kernels, or the meta device's under the rules."""
    def ones(*size, dtype=f32):
        return torch.ones(*size, dtype=dtype, device=device)

    try:
        with _Asked() if device == "meta" else contextlib.nullcontext(), torch.no_grad():
            call(ones, lambda *values: torch.tensor(values, device=device))
    except RuntimeError:
        return False
    return True


CASES = {  # name -> a call, given ones(*size, dtype=) and tensor(*values) on a device
    "index_put": lambda ones, t: ones(4, 3).index_put_((t(0, 2),), ones(2, 3, dtype=bf16)),
    "index_put, same dtype": lambda ones, t: ones(4, 3).index_put_((t(0, 2),), ones(2, 3)),
    "index_put, integers": lambda ones, t: ones(4, dtype=i64).index_put_((t(0, 1),), ones(2, dtype=torch.int32)),
    "setitem by indices": lambda ones, t: ones(4, 3).__setitem__((slice(None), t(0, 2)), ones(4, 2, dtype=f16)),
    "setitem by a slice": lambda ones, t: ones(4, 3).__setitem__((slice(None), slice(0, 2)), ones(4, 2, dtype=f16)),
    "setitem by a mask, one value": lambda ones, t: ones(4).__setitem__(t(True, False, True, False),
                                                                        torch.ones(1, dtype=bf16)),
    "setitem by indices, one value": lambda ones, t: ones(4).__setitem__(t(0, 2), torch.ones(1, dtype=bf16)),
    "index_copy": lambda ones, t: ones(4, 3).index_copy_(0, t(0, 2), ones(2, 3, dtype=bf16)),
    "index_add": lambda ones, t: ones(4, 3).index_add_(0, t(0, 2), ones(2, 3, dtype=f16)),
    "index_reduce": lambda ones, t: ones(4, 3).index_reduce_(0, t(0, 2), ones(2, 3, dtype=bf16), "prod"),
    "put": lambda ones, t: ones(4).put_(t(0, 1), ones(2, dtype=bf16)),
    "mm": lambda ones, t: torch.mm(ones(2, 3), ones(3, 3, dtype=bf16)),
    "matmul": lambda ones, t: ones(2, 3, dtype=bf16) @ ones(3, 3),
    "bmm": lambda ones, t: torch.bmm(ones(1, 2, 3, dtype=bf16), ones(1, 3, 3)),
    "linear, float32 bias": lambda ones, t: F.linear(ones(2, 3, dtype=bf16), ones(3, 3, dtype=bf16), ones(3)),
    "linear, one dtype": lambda ones, t: F.linear(ones(2, 3, dtype=bf16), ones(3, 3, dtype=bf16),
                                                  ones(3, dtype=bf16)),
    "addmv": lambda ones, t: torch.addmv(ones(2), ones(2, 3, dtype=bf16), ones(3, dtype=bf16)),
    "dot": lambda ones, t: torch.dot(ones(3), ones(3, dtype=f16)),
    "conv, float32 bias": lambda ones, t: F.conv1d(ones(1, 3, 4, dtype=bf16), ones(2, 3, 1, dtype=bf16), ones(2)),
    "conv, float32 weight": lambda ones, t: F.conv2d(ones(1, 3, 4, 4, dtype=bf16), ones(2, 3, 1, 1)),
    "layer_norm, bfloat16 input, float32 parameters": lambda ones, t: F.layer_norm(ones(2, 3, dtype=bf16), (3,),
                                                                                   ones(3), ones(3)),
    "layer_norm, float32 input, bfloat16 parameters": lambda ones, t: F.layer_norm(ones(2, 3), (3,),
                                                                                   ones(3, dtype=bf16)),
    "layer_norm, float16 input, bfloat16 parameters": lambda ones, t: F.layer_norm(ones(2, 3, dtype=f16), (3,),
                                                                                   ones(3, dtype=bf16)),
    "batch_norm, bfloat16 input, float32 statistics": lambda ones, t: F.batch_norm(
        ones(2, 3, dtype=bf16), ones(3), ones(3), training=True),
    "batch_norm, float32 input, bfloat16 weight": lambda ones, t: F.batch_norm(ones(2, 3), None, None,
                                                                               ones(3, dtype=bf16), training=True),
    "group_norm, bfloat16 input, float32 parameters": lambda ones, t: F.group_norm(ones(2, 4, dtype=bf16), 2,
                                                                                   ones(4), ones(4)),
    "group_norm, float32 input, float16 weight": lambda ones, t: F.group_norm(ones(2, 4), 2, ones(4, dtype=f16)),
    "cat of two dtypes": lambda ones, t: torch.cat([ones(2), ones(2, dtype=bf16)]),
    "add of two dtypes": lambda ones, t: ones(2) + ones(2, dtype=bf16),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_simulation_refuses_what_the_cpu_refuses(name):
    """Each call runs on the meta device under the rules exactly where it runs on the CPU's kernels (the meta
    kernels alone take index_put, index_copy, index_add, index_reduce, put, mm, matmul, addmv, dot, a convolution's
    weight and the norms' parameters in another dtype)."""
    assert _runs(CASES[name], "meta") == _runs(CASES[name], "cpu")


def test_the_meta_kernels_alone_take_mixed_dtypes():
    """Why the rules are needed: without them, the meta device runs what the CPU refuses."""
    with torch.no_grad():
        for name in ("index_put", "index_copy", "mm", "conv, float32 weight",
                     "layer_norm, float32 input, bfloat16 parameters"):
            CASES[name](lambda *size, dtype=f32: torch.ones(*size, dtype=dtype, device="meta"),
                        lambda *values: torch.tensor(values, device="meta"))
            assert not _runs(CASES[name], "cpu"), name


class MaskedPatches(nn.Module):
    """A masked autoencoder's scatter of the kept patches back into place (MONAI's MaskedAutoEncoderViT): under
    bfloat16 autocast the linear layer's output is bfloat16, and the tensor it is written into float32."""

    def __init__(self, width=8):
        super().__init__()
        self.encode = nn.Linear(width, width)

    def forward(self, x):  # x: (batch, patches, width)
        kept = torch.arange(0, x.shape[1], 2, device=x.device)
        encoded = self.encode(x[:, kept])
        full = torch.zeros(x.shape, device=x.device)
        full[:, kept] = encoded
        return full


def test_a_step_that_fails_on_the_cpu_gets_no_peak():
    model = MaskedPatches()
    with pytest.raises(RuntimeError, match="Index put requires the source and destination dtypes match"), \
            torch.autocast("cpu", dtype=bf16):
        model(torch.randn(2, 6, 8)).sum().backward()  # (the real step fails)
    with pytest.raises(ForwardError, match=r"aten\.index_put_ is given the destination and the values written in "
                                           r"float32 and bfloat16, which the CPU kernel refuses"):
        archcalc.memory(model, (2, 6, 8), optimizer="adam", amp="bfloat16", device="cpu")
    assert archcalc.memory(model, (2, 6, 8), optimizer="adam", device="cpu").peak.allocated > 0  # (float32 runs)


def test_the_cli_says_so_in_one_line(cli, tmp_path):
    net = tmp_path / "net.py"
    net.write_text("import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n"
                   "    def __init__(self):\n        super().__init__()\n        self.encode = nn.Linear(8, 8)\n\n"
                   "    def forward(self, x):\n        full = torch.zeros(x.shape, device=x.device)\n"
                   "        kept = torch.arange(0, 6, 2, device=x.device)\n"
                   "        full[:, kept] = self.encode(x[:, kept])\n        return full\n")
    result = cli("memory", f"{net}:Net", "--input", "6,8", "--batch", "2", "--amp", "bfloat16", "--device", "cpu")
    assert result.code != 0
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert "net.py line 13" in result.err and "aten.index_put_" in result.err


@pytest.mark.parametrize("name", list(CASES))
def test_the_analysis_refuses_only_what_every_device_refuses(name):
    """On the meta device the analysis asks the rules that the CPU and CUDA share (no CPU-only rule: a model may run
    on CUDA): a call refused so is refused by the CPU's kernels too, and every one of those pairs is refused."""
    with mixed_dtypes.Refusals([(False, None)]), torch.no_grad():
        try:
            CASES[name](lambda *size, dtype=f32: torch.ones(*size, dtype=dtype, device="meta"),
                        lambda *values: torch.tensor(values, device="meta"))
            refused = False
        except RuntimeError:  # (the rules', or the meta kernel's own: addmv's compares the input added)
            refused = True
    assert not refused or not _runs(CASES[name], "cpu")
    shared = name.split(",")[0] in ("index_put", "setitem by indices", "index_copy", "index_add", "index_reduce", "put",
                                    "mm", "matmul", "bmm", "addmv", "dot", "conv")
    assert refused == (shared and not _runs(CASES[name], "cpu"))


def test_a_forward_that_runs_on_no_device_gets_no_counts():
    """MaskedPatches in bfloat16: its torch.zeros is float32, the linear layer's output bfloat16; the CPU refuses the
    write, and so does the analysis on the meta device, which ran it before (no counts of a model that cannot run)."""
    model = MaskedPatches().to(bf16)
    with pytest.raises(RuntimeError, match="Index put requires the source and destination dtypes match"):
        model(torch.randn(2, 6, 8, dtype=bf16))
    for device in ("meta", "cpu"):
        with pytest.raises(ForwardError, match="index_put|Index put"):
            archcalc.analyze(model, (2, 6, 8), device=device, dtype="bfloat16")
    assert archcalc.analyze(MaskedPatches(), (2, 6, 8)).totals.macs == 2 * 3 * 8 * 8  # (float32 runs)


class CastInside(nn.Module):
    """Mixed dtypes inside an autocast region the model opens itself: the device casts both factors to bfloat16
    before the product, so it runs (the meta device does not cast: no refusal there)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(8, 4, dtype=bf16))

    def forward(self, x):
        with torch.autocast(x.device.type, dtype=bf16):
            return x @ self.w


def test_an_autocast_region_of_the_model_is_not_refused():
    model = CastInside()
    assert model(torch.ones(2, 8)).dtype == bf16  # (float32 and bfloat16 factors: run under the region's autocast)
    for device in ("meta", "cpu"):
        assert archcalc.analyze(model, (2, 8), device=device).totals.macs == 2 * 8 * 4


def test_the_cli_says_so_for_the_analysis_too(cli, tmp_path):
    net = tmp_path / "net.py"
    net.write_text("import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n"
                   "    def __init__(self):\n        super().__init__()\n        self.encode = nn.Linear(8, 8)\n\n"
                   "    def forward(self, x):\n        return self.encode(x.double())\n")
    result = cli("flops", f"{net}:Net", "--input", "6,8", "--device", "meta")
    assert result.code != 0
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert "float64 and float32" in result.err and "refuse" in result.err


class Float64Factor(nn.Module):
    """A float32 model's product with a float64 matrix made in its forward, one way or another."""

    def __init__(self, how):
        super().__init__()
        self.fc, self.how = nn.Linear(3, 3), how

    def forward(self, x):
        made = {"tensor": lambda: torch.tensor([[1.0, 2, 3]] * 3, dtype=torch.float64, device=x.device),
                "numpy": lambda: torch.from_numpy(np.ones((3, 3))).to(x.device),
                "double": lambda: self.fc.weight.double(),
                "arange": lambda: torch.arange(9, dtype=torch.float64, device=x.device).view(3, 3)}[self.how]()
        return self.fc(x) @ made


@pytest.mark.parametrize("how", ["tensor", "numpy", "double", "arange"])
def test_a_tensor_of_another_dtype_made_in_the_forward_is_watched(how):
    """The check starts with the first floating-point tensor of another dtype than the model's that a call makes
    (before it, no operation pays for it); the CPU's own message is PyTorch's, not a reading of the shapes."""
    with pytest.raises(ForwardError, match=r"in matmul \(matmul\) receiving 2x3, 3x3: aten.mm is given the two "
                                           r"factors in float32 and float64, which the CPU and CUDA kernels refuse"):
        archcalc.analyze(Float64Factor(how), (2, 3), device="meta")
    with pytest.raises(ForwardError, match=r"receiving 2x3, 3x3: expected m1 and m2 to have the same dtype"):
        archcalc.analyze(Float64Factor(how), (2, 3), device="cpu")
