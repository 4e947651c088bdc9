"""fvcore's TorchScript trace drops work whose result never reaches the output (dead-code elimination): the
fvcore convention drops the same rows (Tracer.unused), each against fvcore itself and hand arithmetic."""

import logging
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archcalc
from archcalc.analysis.reconcile import differences

fvcore = pytest.importorskip("fvcore.nn")

LINEAR = 2 * 8 * 8  # one nn.Linear(8, 8) on a batch of 2: N * in * out multiply-adds


class UnusedLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        self.b(x)
        return self.a(x)


class UnusedChain(nn.Module):
    """A dead branch of three products, a reshape and an activation between them."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        y = self.a(x)
        z = torch.relu(self.b(y))
        z = z.reshape(z.shape[0], 8)  # (the dead tensor's own size, read for a dead reshape)
        self.c(z) @ z.t()
        return y


class SizeOfAnother(nn.Module):
    """A result used only for its size: by a live reshape (x.shape, x.size(), x.numel() are traced, so TorchScript
    keeps what made it), or as len() or dim() (constants in a trace: dropped)."""

    def __init__(self, read):
        super().__init__()
        self.a, self.b, self.read = nn.Linear(8, 8), nn.Linear(8, 8), read

    def forward(self, x):
        u = self.b(x)
        n = {"shape": lambda: u.shape[0], "size": lambda: u.size(0), "numel": lambda: u.numel() // 8,
             "len": lambda: len(u), "dim": lambda: u.dim()}[self.read]()
        return self.a(x).reshape(n, -1)


class WrittenIntoSlices(nn.Module):
    """Results copied into a tensor no row makes: live through the copies, which no row records."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        out = torch.zeros(x.shape[0], 16)
        out[:, :8] = self.a(x)
        out[:, 8:] = self.b(x)
        return out


class RoutedByArgmax(nn.Module):
    """The router's logits reach the output only through argmax's indices, where autograd's graph is cut."""

    def __init__(self):
        super().__init__()
        self.router, self.expert = nn.Linear(8, 4), nn.Linear(8, 8)

    def forward(self, x):
        _, chosen = self.router(x).max(-1)
        return self.expert(x)[torch.arange(x.shape[0]), chosen]


class WritesABuffer(nn.Module):
    """A result written into a buffer outlives the pass: TorchScript keeps the write and what it needs."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)
        self.register_buffer("mean", torch.zeros(8))

    def forward(self, x):
        self.mean.copy_(self.b(x).mean(0))
        return self.a(x)


class WritesItsInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        x.add_(self.b(x))
        return self.a(x)


class TwoOfThreeHeads(nn.Module):
    """A trunk and three heads, a dict of two of them returned (as a wrapper of torchaudio's SQUIM keeps one)."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        self.heads = nn.ModuleList(nn.Conv2d(8, 4, 3) for _ in range(3))

    def forward(self, x):
        h = self.trunk(x)
        scores = [head(h).mean((2, 3)) for head in self.heads]
        return {"first": scores[0], "second": scores[1]}


class Detached(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        return self.a(x) + self.b(x).detach()


class UnderNoGrad(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        with torch.no_grad():
            self.b(x)
        return self.a(x)


class MaskBranches(nn.Module):
    """Products of gradient-free data (a threshold's mask and a fixed kernel, as Canny's hysteresis convolves its
    edge map): no autograd node says where they go, so the data's flow does. ``use``: "none" drops both; "slice"
    writes one into a slice of the output (x[i] = v, which no row records) and drops the other; "view" writes one
    through a view of the output; "returned" returns one beside the output."""

    def __init__(self, use):
        super().__init__()
        self.a, self.use = nn.Linear(8, 8), use
        self.register_buffer("kernel", torch.ones(8, 8))

    def forward(self, x):
        mask = (x > 0).float()
        kept, dropped = F.linear(mask, self.kernel), F.linear(mask * 2, self.kernel)
        if self.use == "returned":
            return self.a(x), kept
        out = torch.zeros(x.shape[0], 16)
        out[:, :8] = self.a(x)
        if self.use == "slice":
            out[:, 8:] = kept
        elif self.use == "view":
            back = out[:, 8:]
            back[...] = kept
        return out


class EMAUnderNoGrad(WritesABuffer):
    """A running mean of a layer's output kept in the buffer under no_grad: a write that outlives the pass."""

    def forward(self, x):
        with torch.no_grad():
            self.mean.mul_(0.9).add_(0.1 * self.b(x).mean(0))
        return self.a(x)


TRUNK = 2 * 8 * 14 * 14 * 3 * 3 * 3  # Conv2d(3, 8, 3) on 2x3x16x16: N * C_out * H' * W' * C_in * k * k
HEAD = 2 * 4 * 12 * 12 * 8 * 3 * 3
CASES = {  # model, input, fvcore's total (by hand), the dead rows' MACs
    "unused_layer": (UnusedLayer, (2, 8), LINEAR, LINEAR),
    "unused_chain": (UnusedChain, (2, 8), LINEAR, 2 * LINEAR + 2 * 8 * 2),
    "written_into_slices": (WrittenIntoSlices, (2, 8), 2 * LINEAR, 0),
    "routed_by_argmax": (RoutedByArgmax, (2, 8), LINEAR + 2 * 8 * 4, 0),
    "writes_a_buffer": (WritesABuffer, (2, 8), 2 * LINEAR, 0),
    "writes_its_input": (WritesItsInput, (2, 8), 2 * LINEAR, 0),
    "two_of_three_heads": (TwoOfThreeHeads, (2, 3, 16, 16), TRUNK + 2 * HEAD, HEAD),
    "detached": (Detached, (2, 8), 2 * LINEAR, 0),
    "under_no_grad": (UnderNoGrad, (2, 8), LINEAR, LINEAR),
    "ema_under_no_grad": (EMAUnderNoGrad, (2, 8), 2 * LINEAR, 0),
    **{f"mask_{use}": (partial(MaskBranches, use), (2, 8), LINEAR + LINEAR * (use != "none"),
                       LINEAR * (1 + (use == "none"))) for use in ("none", "slice", "view", "returned")},
    **{f"size_by_{read}": (partial(SizeOfAnother, read), (2, 8), 2 * LINEAR, 0) for read in ("shape", "size", "numel")},
    **{f"size_by_{read}": (partial(SizeOfAnother, read), (2, 8), LINEAR, LINEAR) for read in ("len", "dim")},
}


def _fvcore_total(model, shape) -> int:
    logging.disable(logging.WARNING)
    try:
        counted = fvcore.FlopCountAnalysis(model.eval(), (torch.randn(*shape),))
        counted.unsupported_ops_warnings(False)
        counted.uncalled_modules_warnings(False)
        return counted.total()
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("name", CASES)
def test_fvcores_convention_drops_what_its_trace_drops(name, device):
    make, shape, total, dead = CASES[name]
    torch.manual_seed(0)
    assert _fvcore_total(make(), shape) == total
    a = archcalc.analyze(make(), shape, device=device)
    assert a.convention_total("fvcore") == total
    assert a.totals.macs - total == dead  # (what the other conventions still count: every row ran)
    assert a.convention_total("flop_counter") == 2 * a.totals.macs
    unused = [(why, amount) for why, amount in differences(a, "fvcore") if "(result unused)" in why]
    assert sum(amount for _, amount in unused) == -dead
    assert all("dead code" in why for why, _ in unused)
