"""Receptive fields: hand arithmetic, branched networks, and the gradient method on random networks."""

import math

import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from archcalc.analysis.engine import analyse, analyse_module
from archcalc.models.catalog import REGISTRY

META = torch.device("meta")


def fields(name, size=None):
    return {r.label: r.receptive for r in analyse(REGISTRY.get(name), size).records}


def test_two_3x3_convs_see_5x5():
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1)).to(META)
    a = analyse_module(model, "two", (1, 1, 8, 8), META, torch.float32)
    assert [r.receptive.size for r in a.records] == [(3, 3), (5, 5)]


def test_vgg16_conv5_3_and_last_pool():
    f = fields("vgg16")
    assert f["features.28"].size == (196, 196) and f["features.28"].jump == (16, 16)
    assert f["features.30"].size == (212, 212) and f["features.30"].jump == (32, 32)
    assert f["classifier.0"].whole


def test_resnet50_stages():
    f = fields("resnet50")
    assert [f[f"layer{i}"].size[0] for i in (1, 2, 3, 4)] == [35, 99, 291, 483]
    assert f["layer4"].jump == (32, 32)


def test_branches_take_the_largest_path():
    f = fields("vgg_skip")
    assert f["conv1_2"].size == (5, 5) and f["conv_skip1"].size == (3, 3) and f["add"].size == (5, 5)
    dense = fields("vgg_dense")
    assert dense["cat"].size == (5, 5)  # the input (1x1) and conv1_2's 5x5 path
    g = fields("googlenet")
    branches = [g[f"inception3a.branch{i}"] for i in (1, 2, 3, 4)]
    assert g["inception3a.cat"].size == max(b.size for b in branches)


def test_attention_and_linear_layers_see_the_whole_input():
    f = fields("vgg_ca")
    assert f["mul"].whole and f["fc1"].whole
    assert not f["conv2_2"].whole


class _ChannelsLast(nn.Module):
    def __init__(self, *order):
        super().__init__()
        self.order = order

    def forward(self, x):
        return x.permute(*self.order)


def test_each_norm_layer_moves_the_field_by_its_own_settings():
    """A LayerNorm over channels (ConvNeXt's, on a channels-last map) keeps the field, one over the map too
    (LayerNorm([C, H, W]), a WGAN critic's) sees the whole of it; an InstanceNorm with running statistics keeps it,
    one without sees the whole map. Each by the layer's own settings, though the rule is kept per type: once a critic
    had been analysed, every ConvNeXt block's LayerNorm read as seeing the whole map."""
    def field(*layers):
        a = analyse_module(nn.Sequential(nn.Conv2d(2, 2, 3), *layers).to(META), "n", (1, 2, 8, 8), META, torch.float32)
        return a.records[-1].receptive

    for _ in range(2):  # (each order: map-wide first, then per position)
        assert field(nn.LayerNorm([2, 6, 6])).whole
        assert field(_ChannelsLast(0, 2, 3, 1), nn.LayerNorm(2), _ChannelsLast(0, 3, 1, 2)).size == (3, 3)
        assert field(nn.InstanceNorm2d(2)).whole
        assert field(nn.InstanceNorm2d(2, track_running_stats=True)).size == (3, 3)


def test_pooling_with_padding_ceil_and_dilation():
    model = nn.Sequential(nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), nn.Conv2d(1, 1, 3, dilation=2)).to(META)
    a = analyse_module(model, "p", (1, 1, 15, 15), META, torch.float32)
    pool, conv = (r.receptive for r in a.records)
    assert (pool.size, pool.jump, pool.centre) == ((3, 3), (2, 2), (0.5, 0.5))
    # dilated 3x3 spans 5 units, each 2 pixels apart: 3 + (5 - 1)*2 = 11
    assert conv.size == (11, 11) and conv.centre == (4.5, 4.5)


@st.composite
def chains(draw):
    layers, size = [], draw(st.integers(16, 40))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "relu"]))
        if kind == "conv":
            k, s, d = draw(st.sampled_from([1, 3, 5])), draw(st.integers(1, 2)), draw(st.integers(1, 2))
            layers.append(nn.Conv2d(1, 1, k, stride=s, padding=draw(st.integers(0, (d * (k - 1)) // 2)), dilation=d))
        elif kind == "pool":
            k = draw(st.integers(2, 3))
            layers.append(nn.AvgPool2d(k, stride=draw(st.integers(1, k)), padding=draw(st.integers(0, k // 2))))
        else:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers), size


@settings(max_examples=40, deadline=None, derandomize=True)
@given(chains())
@example(chain=(nn.Sequential(nn.AvgPool2d(2), nn.AvgPool2d(2), nn.Conv2d(1, 1, 5, padding=1, dilation=2)), 28))
def test_field_equals_the_gradient_method(chain):
    """Backprop a one-hot at the centre output unit (positive weights and input keep every path
    alive) and measure the non-zero input region: it must be the field, clipped to the image."""
    model, size = chain
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.1)
    try:
        out = model(torch.ones(1, 1, size, size))
    except RuntimeError:
        return  # the chain shrank the map to nothing
    a = analyse_module(model, "chain", (1, 1, size, size), torch.device("cpu"), torch.float32)
    field = a.records[-1].receptive
    x = torch.ones(1, 1, size, size, requires_grad=True)
    out = model(x)
    i = out.shape[-1] // 2
    out[0, 0, i, i].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1)).flatten()
    centre = field.centre[0] + i * field.jump[0]
    half = (field.size[0] - 1) / 2
    first, last = math.ceil(centre - 0.5 - half), math.floor(centre - 0.5 + half)
    seen = (rows.min().item(), rows.max().item())
    if 0 <= first and last <= size - 1:
        assert seen == (first, last)
    else:
        # Where the field runs off the image, a dilated kernel's outer taps may land wholly in the
        # padding, leaving a hole at the border: the gradient's region then lies inside the clipped field.
        assert max(0, first) <= seen[0] and seen[1] <= min(size - 1, last)
        if not any(getattr(m, "dilation", 1) not in (1, (1, 1)) for m in model):
            assert seen == (max(0, first), min(size - 1, last))


def test_rf_command(cli):
    data = cli("rf", "vgg16", "-f", "json").json()
    conv = next(layer for layer in data["layers"] if layer["name"] == "features.28")
    assert conv["receptive_field"] == {"size": [196, 196], "jump": [16.0, 16.0], "centre": [8.0, 8.0]}
    assert "212x212 (jump 32x32)" in cli("summary", "vgg16").out
