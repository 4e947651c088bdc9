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


class _Windows(nn.Module):
    """A Swin in miniature, channels-last: 4x4 patches of a 32x32 image (an 8x8 grid), attention within 4x4 windows
    (16 tokens of 64: matmul, or SDPA), patch merging by strided slices (x[:, 1::2, 0::2], a 4x4 grid at a jump of 8)
    and attention within a 4x4 window again, which now holds the whole grid."""

    def __init__(self, sdpa=False, width=8):
        super().__init__()
        self.sdpa = sdpa
        self.patches = nn.Conv2d(3, width, 4, stride=4)
        self.qkv1, self.merge, self.qkv2 = nn.Linear(width, 3 * width), nn.Linear(4 * width, width), \
            nn.Linear(width, 3 * width)

    def attend(self, x, qkv, side):  # x: (N, H, W, C), windows of side x side
        n, h, w, c = x.shape
        tokens = x.view(n, h // side, side, w // side, side, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, side * side, c)
        q, k, v = qkv(tokens).chunk(3, dim=-1)
        if self.sdpa:
            out = nn.functional.scaled_dot_product_attention(q, k, v)
        else:
            out = (q @ k.transpose(-2, -1)).softmax(-1) @ v
        out = out.view(n, h // side, w // side, side, side, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h, w, c)
        return x + out

    def forward(self, x):
        x = self.attend(self.patches(x).permute(0, 2, 3, 1), self.qkv1, 4)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.attend(self.merge(x), self.qkv2, 4)


def _seen(model, size, position):
    """The input rows and columns whose gradient reaches the output at (h, w) of a channels-last output."""
    x = torch.randn(1, 3, size, size, requires_grad=True)
    model(x)[0, position[0], position[1]].sum().backward()
    seen = x.grad[0].abs().sum(dim=0)
    rows, cols = torch.nonzero(seen.sum(dim=1)).flatten(), torch.nonzero(seen.sum(dim=0)).flatten()
    return rows.max().item() - rows.min().item() + 1, cols.max().item() - cols.min().item() + 1


def test_attention_within_windows_is_not_taken_for_the_whole_input():
    """Window attention over 16 of the grid's 64 positions sees a 16x16-pixel window, not the 32x32 image (the
    gradient method says so), so its field, and the residual sum's, is not tracked (it read the whole input); the
    patch merging's strided slices double the jump (4 -> 8), so the second stage's 4x4 window holds the whole 4x4
    grid, and sees the whole image."""
    torch.manual_seed(0)
    for sdpa in (False, True):
        model = _Windows(sdpa)
        first = nn.Sequential(model.patches, _ChannelsLast(0, 2, 3, 1))
        assert _seen(lambda x: model.attend(first(x), model.qkv1, 4), 32, (5, 2)) == (16, 16)
        assert _seen(model, 32, (1, 2)) == (32, 32)
        a = analyse_module(model, "windows", (1, 3, 32, 32), torch.device("cpu"), torch.float32)
        by = {r.label: r.receptive for r in a.records}
        attention = [r for r in a.records if r.type in ("matmul", "scaled_dot_product_attention")]
        assert by["patches"].size == (4, 4) and by["patches"].jump == (4, 4)
        assert attention[0].receptive.part and by["add"].part and not by["add"].whole
        slices = [by[label] for label in ("getitem", "getitem (2)", "getitem (3)", "getitem (4)")]
        assert all(f.part and f.jump == (8, 8) for f in slices)  # (the grid it is on: 4x4 of 32x32 pixels)
        assert attention[-1].receptive.whole and by["add (2)"].whole
        report = a.report("rf")
        assert next(row for row in report.rows if row["name"] == "add")["rf_size"] == "window: not tracked"
        assert any(line.startswith("Note: window: not tracked: attention within a part") for line in report.footer)


class _Focus(nn.Module):
    """YOLOv5's Focus: four strided slices a pixel apart, concatenated, then a 3x3 convolution."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(12, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1))


def test_strided_slices_set_the_jump_and_merged_paths_take_their_union():
    """Each slice: one pixel at a jump of 2, the centre 0.5 or 1.5; their concatenation 2x2 (centre 1); the 3x3
    convolution over it 2 + 2*2 = 6 pixels, jump 2: as the gradient method measures (a unit inside the image)."""
    torch.manual_seed(0)
    model = _Focus()
    a = analyse_module(model, "focus", (1, 3, 16, 16), torch.device("cpu"), torch.float32)
    by = {r.label: r.receptive for r in a.records}
    assert (by["getitem (2)"].size, by["getitem (2)"].jump, by["getitem (2)"].centre) == ((1, 1), (2, 2), (1.5, 0.5))
    assert (by["cat"].size, by["cat"].centre) == ((2, 2), (1.0, 1.0))
    assert (by["conv"].size, by["conv"].jump) == ((6, 6), (2, 2))
    x = torch.randn(1, 3, 16, 16, requires_grad=True)
    model(x)[0, :, 3, 4].sum().backward()
    seen = x.grad[0].abs().sum(dim=0)
    rows, cols = torch.nonzero(seen.sum(dim=1)).flatten(), torch.nonzero(seen.sum(dim=0)).flatten()
    assert (rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()) == (4, 9, 6, 11)


def test_each_fields_grid_is_its_maps_spatial_size():
    """The grid a field's units lie on, (n + 2P - K')/S + 1 a side (GoogLeNet's ceil_mode pools rounded up, adaptive
    pooling's output), is the output's spatial size on every row of a channels-first map: the positions that tell
    attention over all of them from attention within a window."""
    for name in ("googlenet", "resnet50", "densenet121", "lenet5"):
        a = analyse(REGISTRY.get(name))
        maps = [r for r in a.records if r.receptive is not None and not r.receptive.whole
                and len(r.output_shapes[0]) == 2 + len(r.receptive.grid)]
        assert len(maps) >= 10 and all(r.receptive.grid == r.output_shapes[0][2:] for r in maps), name


class _Mixer(nn.Module):
    """MLP-Mixer in miniature: 4x4 patches of a 16x16 image (16 tokens), a channel MLP per token, a token-mixing
    linear layer over the 16 positions (on (N, C, L)), and the same mixing written as a product with a weight."""

    def __init__(self, product=False):
        super().__init__()
        self.product = product
        self.patches, self.channels, self.tokens = nn.Conv2d(3, 8, 4, stride=4), nn.Linear(8, 8), nn.Linear(16, 16)

    def forward(self, x):
        t = self.channels(self.patches(x).flatten(2).transpose(1, 2))  # (N, 16, 8): per token
        mixed = t.transpose(1, 2) @ self.tokens.weight.T if self.product else self.tokens(t.transpose(1, 2))
        return mixed.transpose(1, 2)


def test_mixing_tokens_sees_the_whole_input_and_a_channel_map_does_not():
    for product in (False, True):
        model = _Mixer(product)
        a = analyse_module(model, "mixer", (1, 3, 16, 16), torch.device("cpu"), torch.float32)
        by = {r.label: r.receptive for r in a.records}
        assert by["channels"].size == (4, 4) and by["channels"].grid == (4, 4)
        assert a.records[-1].receptive.whole and not by["channels"].whole
        x = torch.randn(1, 3, 16, 16, requires_grad=True)
        model(x)[0, 5].sum().backward()
        assert (x.grad[0].abs().sum(dim=0) > 0).all()  # (the gradient method: every pixel)
