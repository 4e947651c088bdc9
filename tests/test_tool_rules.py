"""thop's and ptflops's rules, one layer or operation at a time, against the tools themselves.

Each case is small enough to name the rule it checks; tests/test_conventions.py checks whole
networks. The tools run on real CPU tensors (ptflops cannot run on the meta device), archcalc on
the meta device.
"""

import contextlib
import copy
import functools
import operator
import io
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archcalc.analysis.engine import analyse_module

thop = pytest.importorskip("thop")
ptflops = pytest.importorskip("ptflops")


class Call(nn.Module):
    """A functional operation as a model: forward(x) = fn(x, *tensors)."""

    def __init__(self, fn, *tensors):
        super().__init__()
        self.fn = fn
        self.names = [f"t{i}" for i in range(len(tensors))]
        for name, t in zip(self.names, tensors):
            self.register_buffer(name, t)

    def forward(self, x):
        return self.fn(x, *(getattr(self, name) for name in self.names))


CASES = {
    "conv2d bias": (nn.Conv2d(3, 8, 3, padding=1), (3, 9, 9)),
    "conv2d no bias, groups": (nn.Conv2d(8, 16, 3, stride=2, groups=4, bias=False), (8, 11, 11)),
    "conv1d": (nn.Conv1d(4, 6, 5), (4, 20)),
    "conv3d": (nn.Conv3d(2, 4, 3), (2, 5, 6, 7)),
    "conv transpose2d": (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), (4, 5, 5)),
    "linear on a 3-d input": (nn.Linear(12, 5), (7, 12)),
    "linear no bias": (nn.Linear(12, 5, bias=False), (12,)),
    "batchnorm2d": (nn.BatchNorm2d(6), (6, 4, 4)),
    "batchnorm1d, no affine": (nn.BatchNorm1d(6, affine=False), (6,)),
    "instancenorm2d affine": (nn.InstanceNorm2d(3, affine=True), (3, 5, 5)),
    "groupnorm": (nn.GroupNorm(2, 4), (4, 3, 3)),
    "layernorm": (nn.LayerNorm(8), (3, 8)),
    "relu": (nn.ReLU(), (4, 6, 6)),
    "relu inplace": (nn.ReLU(inplace=True), (4, 6, 6)),
    "prelu": (nn.PReLU(), (4, 6, 6)),
    "elu": (nn.ELU(), (4, 6, 6)),
    "leaky relu": (nn.LeakyReLU(), (4, 6, 6)),
    "relu6": (nn.ReLU6(), (4, 6, 6)),
    "gelu": (nn.GELU(), (4, 6, 6)),
    "silu": (nn.SiLU(), (4, 6, 6)),
    "sigmoid": (nn.Sigmoid(), (4, 6, 6)),
    "max pool": (nn.MaxPool2d(3, 2, ceil_mode=True), (4, 8, 8)),
    "avg pool": (nn.AvgPool2d(2), (4, 8, 8)),
    "adaptive avg pool 7 -> 3": (nn.AdaptiveAvgPool2d(3), (4, 7, 7)),
    "adaptive avg pool -> 1": (nn.AdaptiveAvgPool2d(1), (4, 7, 7)),
    "adaptive max pool": (nn.AdaptiveMaxPool2d(2), (4, 7, 7)),
    "softmax": (nn.Softmax(dim=1), (10, 3)),
    "upsample nearest": (nn.Upsample(scale_factor=2), (3, 4, 4)),
    "upsample bilinear": (nn.Upsample(size=(7, 9), mode="bilinear"), (3, 4, 4)),
    "local response norm": (nn.LocalResponseNorm(5), (8, 6, 6)),
    "dropout, flatten": (nn.Sequential(nn.Dropout(), nn.Flatten()), (3, 4, 4)),
    "F.relu, F.max_pool2d": (Call(lambda x: F.max_pool2d(F.relu(x), 2)), (3, 6, 6)),
    "F.avg_pool2d, F.adaptive_avg_pool2d": (Call(lambda x: F.adaptive_avg_pool2d(F.avg_pool2d(x, 2), 1)), (3, 6, 6)),
    "F.softmax, F.silu, F.gelu": (Call(lambda x: F.softmax(F.gelu(F.silu(x)), dim=1)), (5, 4)),
    "F.interpolate": (Call(lambda x: F.interpolate(x, scale_factor=3)), (2, 3, 3)),
    # torch.add and friends are looked up when called, as in a model's forward (ptflops patches the name)
    "torch.add broadcast": (Call(lambda x, t: torch.add(x, t), torch.ones(4, 1, 1)), (4, 5, 5)),
    "torch.mul": (Call(lambda x, t: torch.mul(x, t), torch.ones(1, 4, 5, 5)), (4, 5, 5)),
    "x + y, x * y, torch.cat": (Call(lambda x: torch.cat([x + x, x * 2], dim=1)), (4, 5, 5)),
    "torch.matmul": (Call(lambda x, w: torch.matmul(x, w), torch.ones(6, 3)), (4, 6)),
    "torch.addmm": (Call(lambda x, b, w: torch.addmm(b, x, w), torch.ones(3), torch.ones(6, 3)), (6,)),
    "x @ w": (Call(lambda x, w: x @ w, torch.ones(6, 3)), (4, 6)),
    # the methods ptflops patches (torch.Tensor.mul, ...), beside the operators that call the same method
    "x.mul(g) beside x * g": (Call(lambda x, g: x.mul(g) + x * g + 2 * x, torch.ones(1, 4, 1, 1)), (4, 5, 5)),
    "sum() and reduce(operator.add) beside x.add": (Call(lambda x, g: sum([x.add(g), x, x]) + functools.reduce(
        operator.add, [x, x]).mul(g), torch.ones(1, 4, 1, 1)), (4, 5, 5)),
    "x.add(y), x.matmul(w), x.mm(w)": (Call(lambda x, w: x.add(x).matmul(w).mm(w.t()) + x @ w @ w.t(),
                                             torch.ones(6, 3)), (6,)),
    "x.bmm, x.addmm": (Call(lambda x, w: x.unsqueeze(0).bmm(w[None]).squeeze(0).addmm(x, w), torch.ones(6, 6)),
                       (6,)),
}


def _archcalc(module, shape, convention):
    meta = copy.deepcopy(module).to("meta")
    return analyse_module(meta, "case", shape, torch.device("meta"), torch.float32).convention_total(convention)


def _quiet(fn):
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


@pytest.mark.parametrize("case", CASES)
def test_thop_rule(case):
    module, shape = CASES[case]
    batch = (2, *shape)
    tool = _quiet(lambda: thop.profile(module.eval(), (torch.randn(batch),), verbose=False))[0]
    assert _archcalc(module, batch, "thop") == int(tool)


@pytest.mark.parametrize("case", CASES)
def test_ptflops_rule(case):
    module, shape = CASES[case]
    tool, _ = _quiet(lambda: ptflops.get_model_complexity_info(module.eval(), shape, as_strings=False,
                                                               print_per_layer_stat=False))
    assert tool is not None
    assert _archcalc(module, (1, *shape), "ptflops") == tool
    # addmm's bias is counted once per call; torch.add aligns shapes from the left, batch against channels
    if case not in ("torch.addmm", "torch.add broadcast"):
        assert _archcalc(module, (3, *shape), "ptflops") == 3 * tool  # for the batch: N x ptflops's one image


def test_ptflops_counts_a_relu_module_twice_and_thop_not_at_all():
    a = analyse_module(nn.ReLU(), "relu", (1, 4, 6, 6), torch.device("meta"), torch.float32)
    assert a.convention_total("ptflops") == 2 * 4 * 6 * 6
    assert a.convention_total("thop") == 0
    # a plain trace leaves the layer's own calls out (the mode steps aside while a layer runs) and
    # ptflops's count traces again for them; asked for, the first trace keeps them
    assert a.records[0].inner == ()
    assert a.by_convention.with_inner(a.records[0]).inner[0][0] == "torch.nn.functional.relu"
    kept = analyse_module(nn.ReLU(), "relu", (1, 4, 6, 6), torch.device("meta"), torch.float32, inner=True)
    assert kept.records[0].inner[0] == ("torch.nn.functional.relu", ((1, 4, 6, 6),), ((1, 4, 6, 6),))
    assert kept.convention_total("ptflops") == a.convention_total("ptflops")
