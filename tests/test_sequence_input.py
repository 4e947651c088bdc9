"""A float input (N, A, B) read as a sequence (N, L, D) or a signal (N, C, L) (sequence_input.py): by the first step
that says which, checked against the positions the gradient of one output position reaches on real weights."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archcalc
from archcalc.analysis.receptive import Field
from archcalc.analysis.token_fields import Tokens


class FrameTCN(nn.Module):
    """A causal dilated stack over a sequence of feature frames (N, L, D): kernel 2 at dilations 1, 2, 4, 8."""

    def __init__(self, dim=6):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, 2, dilation=d) for d in (1, 2, 4, 8))
        self.out = nn.Linear(dim, 3)

    def forward(self, x):
        x = x.transpose(1, 2)  # (N, D, L)
        for conv in self.convs:
            x = torch.tanh(conv(F.pad(x, (conv.dilation[0], 0))))
        return self.out(x.transpose(1, 2))


class Encoder(nn.Module):
    """Frames scaled and given positions, a norm, a projection, then one attention layer."""

    def __init__(self, length=12, dim=8):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, length, dim))
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, 16)
        self.attention = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x):
        h = self.proj(self.norm(x * 2.0 + self.pos))
        return self.attention(h, h, h, need_weights=False)[0]


class Signal(nn.Module):
    """A 1-d convolutional network over (N, C, L): BatchNorm over the channels, a convolution with them as its
    input channels, a pooling."""

    def __init__(self, channels=4):
        super().__init__()
        self.bn = nn.BatchNorm1d(channels)
        self.conv = nn.Conv1d(channels, 8, 5, stride=2)
        self.pool = nn.AvgPool1d(3)  # (an average: every unit of its window gets a gradient)

    def forward(self, x):
        return self.pool(self.conv(self.bn(x)))


def _rows(model, shape):
    a = archcalc.analyze(model, shape, device="cpu")
    return {r.label: r.receptive for r in a.layers}, a


def _reached(make, shape, axis, index):
    """The first and last position along ``axis`` of the input that the gradient of output ``index`` reaches, on the
    weights ``make()`` draws."""
    torch.manual_seed(0)
    model = make().double().eval()
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    model(x)[index].abs().sum().backward()
    reached = x.grad[0].abs().sum(tuple(d - 1 for d in range(1, x.dim()) if d != axis)) > 0
    rows = reached.nonzero().flatten().tolist()
    return rows[0], rows[-1]


def test_a_convolution_over_frames_counts_frames_as_the_gradient_does():
    f, a = _rows(FrameTCN(), (1, 40, 6))
    # r = 1 + (K - 1)*D per layer over the 40 frames (axis 1), not over the 6 features: 2, 4, 8, 16
    assert [f[f"convs.{i}"].size for i in range(4)] == [(2,), (4,), (8,), (16,)]
    assert type(f["out"]) is Tokens and f["out"].text() == "16 tokens"
    last = f["out"]
    for position in (0, 20, 39):
        low = last.centre[0] + position * last.jump[0] - last.size[0] / 2
        assert _reached(FrameTCN, (1, 40, 6), 1, (0, position)) == (max(0, round(low)), round(low + 16) - 1)
    note = next(n for n in a.notes if n.startswith("receptive fields"))
    assert "the input 1x40x6 is read as a sequence (N, L, D) of 40 positions, as convs.0 (Conv1d) reads it" in note


def test_steps_before_the_one_that_decides_are_given_the_sequences_fields():
    f, a = _rows(Encoder(), (2, 12, 8))
    # x * 2, + pos: per element, they say nothing; the LayerNorm over the features reads a sequence
    assert [f[k].text() for k in ("mul", "add", "norm", "proj")] == ["1 token"] * 4
    assert f["attention"].text() == "whole input"
    assert all(_reached(Encoder, (1, 12, 8), 1, (0, p)) == (0, 11) for p in (0, 11))  # (attention: every frame)
    single = nn.Sequential(nn.Linear(8, 8))  # a linear map per frame: one frame, as its gradient says; it read
    # "whole input" when the last axis was taken as the positions
    assert _rows(single, (1, 12, 8))[0]["0"].text() == "1 token"
    assert [_reached(lambda: single, (1, 12, 8), 1, (0, p)) for p in (0, 5)] == [(0, 0), (5, 5)]
    shown = a.report("rf").footer
    assert any("read as a sequence" in line for line in shown)
    assert not any("read as a sequence" in line for line in a.report("flops").footer)  # (the fields' tables only)


class AntiCausal(nn.Module):
    """A causal convolution over the frames flipped, flipped back: each position sees itself and the two after it
    (the backward direction of a bidirectional network written with torch.flip)."""

    def __init__(self, dim=6):
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.conv = nn.Conv1d(dim, dim, 3)

    def forward(self, x):
        x = self.proj(x).flip(1).transpose(1, 2)
        return self.conv(F.pad(x, (2, 0))).transpose(1, 2).flip(1)


def test_a_flip_along_the_frames_runs_their_positions_backwards():
    f, _ = _rows(AntiCausal(), (1, 8, 6))
    assert (f["flip"].jump, f["flip"].centre) == ((-1.0,), (7.5,))  # (the first unit: the last frame)
    assert (f["conv"].size, f["conv"].jump) == ((3,), (-1.0,))
    last = f["flip (2)"]
    assert (last.size, last.jump, last.centre) == ((3,), (1.0,), (1.5,))  # position p: frames p .. p + 2
    for p in (0, 3, 7):
        assert _reached(AntiCausal, (1, 8, 6), 1, (0, p)) == (p, min(p + 2, 7))


class Subsampling(nn.Module):
    """A speech model's frames (N, T, F) given one channel and subsampled in time and frequency (a Conformer's; the
    Audio Spectrogram Transformer's patches are cut with the two axes swapped)."""

    def __init__(self, swapped=False, bins=16):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 4, 3, 2), nn.Tanh(), nn.Conv2d(4, 4, (3, 5), 2), nn.Tanh())
        self.swapped = swapped
        self.scale = nn.Parameter(torch.rand(bins, 1, 1) + 0.5)  # (per frequency bin, moved to the channels and
        # back, as CNN14 does for its BatchNorm2d; not one here: PyTorch 2.13's CPU BatchNorm backward misplaces the
        # gradient where the tensors are (N, C, H, 1) strided as channels-last, which the check below needs)

    def forward(self, x):
        x = (x.unsqueeze(1).transpose(1, 3) * self.scale).transpose(1, 3)
        return self.conv(x.transpose(2, 3) if self.swapped else x)


@pytest.mark.parametrize("swapped", [False, True])
def test_frames_given_one_channel_are_an_image_of_time_and_frequency(swapped):
    f, a = _rows(Subsampling(swapped), (1, 20, 16))
    assert type(f["conv.2"]) is Field and f["unsqueeze"].size == f["mul"].size == (1, 1)  # (the rows before, the
    # image's fields too)
    # 3 + (3 - 1)*2 and 3 + (5 - 1)*2 over the image's rows and columns (time and frequency, or the two swapped)
    assert (f["conv.2"].size, f["conv.2"].jump) == ((7, 11), (4.0, 4.0))
    assert f["conv.2"].grid == ((3, 3) if swapped else (4, 2))  # (20 x 16: 9 x 7, then (9 - 3)/2 + 1, (7 - 5)/2 + 1)
    rows, columns = (2, 1) if swapped else (1, 2)  # (the input's axes that the image's rows and columns are)
    assert _reached(lambda: Subsampling(swapped), (1, 20, 16), rows, (0, 0, 0, 0)) == (0, 6)
    assert _reached(lambda: Subsampling(swapped), (1, 20, 16), columns, (0, 0, 0, 0)) == (0, 10)
    assert "is read as an image of 20x16, as conv.0 (Conv2d) reads it" in next(
        n for n in a.notes if n.startswith("receptive fields"))


def test_a_signal_keeps_its_fields_along_its_last_axis():
    f, a = _rows(Signal(), (1, 4, 64))
    assert type(f["conv"]) is Field and (f["conv"].size, f["conv"].jump) == ((5,), (2.0,))
    assert (f["pool"].size, f["pool"].jump) == ((9,), (6.0,))  # 5 + (3 - 1)*2
    assert _reached(Signal, (1, 4, 64), 2, (0, 0, 0)) == (0, 8)  # the first unit: pixels 0..8
    assert not any(n.startswith("receptive fields") for n in a.notes)
    one_row = nn.Sequential(nn.Linear(64, 10))  # (N, 1, L): one row is not a sequence: the linear map sees it all
    assert _rows(one_row, (1, 1, 64))[0]["0"].text() == "whole input"


@pytest.mark.parametrize("batch_first", [True, False])
def test_recurrence_sees_every_frame_either_way(batch_first):
    lstm = nn.LSTM(8, 8, batch_first=batch_first)
    f, a = _rows(lstm, (3, 12, 8))
    assert f["LSTM"].text() == "whole input"
    assert any(n.startswith("receptive fields") for n in a.notes) is batch_first  # (time first: not a sequence
    # of axis 1, so the signal's reading stays, and says the same)
