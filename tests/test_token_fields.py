"""Receptive fields over token ids (token_fields.py): hand arithmetic, and the gradient method on real weights (the
tokens whose embedding the gradient of one output position reaches)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archcalc
from archcalc.analysis.token_fields import locate


class KimCNN(nn.Module):
    """Kim (2014)'s sentence CNN: filters of 3, 4 and 5 words across the whole embedding, a max over time."""

    def __init__(self, vocab=100, dim=12, filters=4, sizes=(3, 4, 5)):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.convs = nn.ModuleList(nn.Conv2d(1, filters, (k, dim)) for k in sizes)
        self.fc = nn.Linear(filters * len(sizes), 2)

    def forward(self, ids):
        x = self.embed(ids).unsqueeze(1)  # (N, 1, L, D): the tokens on axis 2
        h = [F.relu(conv(x)).squeeze(3) for conv in self.convs]
        return self.fc(torch.cat([F.max_pool1d(t, t.size(2)).squeeze(2) for t in h], 1))


class TCN(nn.Module):
    """A causal dilated stack (WaveNet's, ByteNet's): kernel 2 at dilations 1, 2, 4, 8, each padded on the left."""

    def __init__(self, vocab=100, dim=6):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, 2, dilation=d) for d in (1, 2, 4, 8))
        self.out = nn.Linear(dim, vocab)

    def forward(self, ids):
        x = self.embed(ids).transpose(1, 2)  # (N, D, L)
        for conv in self.convs:
            x = torch.tanh(conv(F.pad(x, (conv.dilation[0], 0))))
        return self.out(x.transpose(1, 2))


class Pooled(nn.Module):
    """A 3-token convolution over (N, D, L) by permute, a norm per token written out, then the mean over tokens."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.conv = nn.Conv1d(8, 8, 3, padding=1, stride=2)
        self.fc = nn.Linear(8, 2)

    def forward(self, ids):
        h = self.conv(self.embed(ids).permute(0, 2, 1)).transpose(1, 2)  # (N, L', D)
        h = h - h.mean(-1, keepdim=True)  # over the features of each token
        return self.fc(h.mean(dim=1))  # over the tokens


def _rows(model, length, batch=2):
    a = archcalc.analyze(model, (batch, length), input_dtypes=["int64"])
    return {r.label: r.receptive for r in a.layers}


def _reached(model, length, position):
    """The first and last token whose embedding the gradient of output ``position`` reaches."""
    torch.manual_seed(0)
    model = model.double()
    kept = {}

    def keep(module, given, output) -> None:
        output.retain_grad()
        kept["e"] = output

    model.embed.register_forward_hook(keep)
    out = model(torch.randint(1, 40, (1, length)))
    out[0, position].abs().sum().backward()
    rows = (kept["e"].grad[0].abs().sum(-1) > 0).nonzero().flatten().tolist()
    return rows[0], rows[-1]


def test_a_dilated_causal_stack_sees_the_sum_of_its_dilations():
    f = _rows(TCN(), 40)
    # r = 1 + (K - 1)*D per layer: 1 + 1 + 2 + 4 + 8; each left padding moves the centre back by its width
    assert [f[f"convs.{i}"].size for i in range(4)] == [(2,), (4,), (8,), (16,)]
    assert f["out"].text() == "16 tokens" and f["out"].jump == (1.0,)
    last = f["out"]
    for position in (0, 20, 39):  # (the first positions' fields start before the sentence, in the padding)
        low = last.centre[0] + position * last.jump[0] - last.size[0] / 2
        first, final = _reached(TCN(), 40, position)
        assert (max(0, round(low)), round(low + last.size[0]) - 1) == (first, final)


def test_a_sentence_cnn_sees_its_filter_widths_then_the_whole_sentence():
    f = _rows(KimCNN(), 20)
    assert [f[f"convs.{i}"].text() for i in range(3)] == ["3 tokens", "4 tokens", "5 tokens"]
    assert f["convs.0"].grid == (18,)  # (20 - 3 + 1 positions)
    assert f["max_pool1d"].size == (20,) and f["fc"].size == (20,)  # the max over time: all 20 words
    assert f["embed"].text() == "1 token" and locate(f["unsqueeze"], (2, 1, 20, 12)) == (2, 1)


def test_a_norm_over_features_keeps_the_token_and_a_mean_over_tokens_sees_them_all():
    f = _rows(Pooled(), 11)
    assert f["conv"].size == (3,) and f["conv"].jump == (2.0,) and f["conv"].grid == (6,)
    assert f["mean"].size == (3,)  # h.mean(-1): each token's features
    assert f["mean (2)"].whole and f["fc"].whole  # h.mean(dim=1): the tokens
    first, final = _reached(Pooled(), 11, 0)
    assert (first, final) == (0, 10)


class Loop(nn.Module):
    """A recurrent cell stepped by hand over the tokens, as tutorials write it: step t sees tokens 0 to t."""

    def __init__(self):
        super().__init__()
        self.embed, self.cell, self.fc = nn.Embedding(30, 4), nn.GRUCell(4, 4), nn.Linear(4, 2)

    def forward(self, ids):
        x = self.embed(ids)
        h, seen = torch.zeros(ids.shape[0], 4), []
        for t in range(ids.shape[1]):
            h = self.cell(x[:, t], h)
            seen.append(h)
        return self.fc(torch.stack(seen, 1))


def test_a_cell_stepped_by_hand_sees_the_tokens_up_to_its_step():
    f = _rows(Loop(), 5)
    assert [f["cell" if t == 0 else f"cell ({t + 1})"].size for t in range(5)] == [(1,), (2,), (3,), (4,), (5,)]
    assert f["getitem (3)"].centre == (2.5,)  # (x[:, 2]: the third token)
    assert f["stack"].size == (5,) and f["fc"].size == (5,)  # (the largest: the last step's, every token)


@pytest.mark.parametrize("model", [
    nn.Sequential(nn.Embedding(30, 8), nn.LSTM(8, 8, batch_first=True)),
    nn.Sequential(nn.Embedding(30, 8), nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)),
])
def test_recurrence_and_attention_see_every_token(model):
    a = archcalc.analyze(model, (2, 9), input_dtypes=["int64"])
    assert a.layers[0].receptive.text() == "1 token"
    assert all(r.receptive is not None and r.receptive.whole for r in a.layers[1:] if r.receptive is not None)
    assert any(r.receptive is not None and r.receptive.whole for r in a.layers[1:])


class Flat(nn.Module):
    """Heads split and put back, then every token's features in one row; and a linear layer written as GPT-2's
    Conv1D writes it, on (N*L, D): the tokens merged with the batch and split from it again."""

    def __init__(self):
        super().__init__()
        self.embed, self.weight, self.fc = nn.Embedding(30, 4), nn.Parameter(torch.randn(4, 4)), nn.Linear(4 * 7, 2)

    def forward(self, ids):
        x = self.embed(ids)
        x = torch.cat([torch.zeros(x.shape[0], 0, 4), x], 1)  # (an empty cache before the tokens: they stay put)
        x = torch.addmm(torch.zeros(4), x.view(-1, 4), self.weight).view(x.shape)  # (N*L, D), then (N, L, D)
        heads = x.view(x.shape[0], 7, 2, 2).transpose(1, 2)  # (N, h, L, d)
        flat = heads.transpose(1, 2).reshape(x.shape[0], -1)  # (N, L*D)
        return self.fc(flat)


@pytest.mark.parametrize("batch", [1, 3])
def test_views_transposes_and_a_batch_merged_with_the_tokens_are_followed(batch):
    a = archcalc.analyze(Flat(), (batch, 7), input_dtypes=["int64"])
    f = {r.label: (r.receptive, r.output_shapes[0]) for r in a.layers}
    where = {label: locate(field, shape) for label, (field, shape) in f.items() if field is not None and
             not field.whole}
    assert where["cat"] == (1, 1)
    assert where["view"] == (0, batch) and where["addmm"] == (0, batch)  # (N*L, D): inside the first axis
    assert where["view (2)"] == (1, 1) and where["view (3)"] == (1, 1) and where["transpose"] == (2, 1)
    assert where["reshape"] == (1, 1)  # (N, L*D): the tokens with each one's features after them
    assert f["fc"][0].whole  # (a linear map over that axis: every token)


def test_an_image_model_keeps_its_fields_and_the_rf_table_says_tokens(cli, tmp_path, monkeypatch):
    vgg = {r.label: r.receptive for r in archcalc.analyze("vgg16").layers}
    assert vgg["features.28"].size == (196, 196)  # (no token field anywhere near an image's)
    (tmp_path / "tcn.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.embed, self.conv = nn.Embedding(50, 4), nn.Conv1d(4, 4, 5, dilation=2)\n"
        "    def forward(self, ids):\n"
        "        return self.conv(self.embed(ids).transpose(1, 2))\n")
    monkeypatch.chdir(tmp_path)
    data = cli("rf", "tcn.py:Net", "--input", "30", "--input-dtype", "int64", "-f", "json").json()
    rows = {row["name"]: row["receptive_field"] for row in data["layers"]}
    assert rows["conv"] == {"size": [9], "jump": [1.0], "centre": [4.5]}  # 1 + (5 - 1)*2


class Written(nn.Module):
    """A shift written in place into a constant (not followed), and Fourier transforms over the features (per
    token) and over the tokens (FNet's mixing: every token)."""

    def __init__(self):
        super().__init__()
        self.embed, self.fc = nn.Embedding(30, 4), nn.Linear(4, 2)

    def forward(self, ids):
        x = self.embed(ids)
        features = torch.fft.fft(x, dim=-1).real
        mixed = torch.fft.fftn(x, dim=(1, 2)).real
        out = torch.zeros_like(x)
        out[:, 1:] = x[:, :-1]
        return self.fc(out + features), mixed


def test_a_write_in_place_is_not_followed_and_says_so(cli, tmp_path, monkeypatch):
    f = _rows(Written(), 6)
    assert f["fft_fft"].text() == "1 token" and f["fft_fftn"].whole  # (over the features; over the tokens too)
    assert f["zeros_like"] is None  # (a constant shaped like x)
    assert f["add"].text() == f["fc"].text() == "tokens: not tracked"  # (x[:, 1:] written into it)
    (tmp_path / "written.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.embed = nn.Embedding(30, 4)\n"
        "    def forward(self, ids):\n"
        "        out = torch.zeros_like(self.embed(ids))\n"
        "        out[:, 1:] = self.embed(ids)[:, :-1]\n"
        "        return out * 2\n")
    monkeypatch.chdir(tmp_path)
    run = cli("rf", "written.py:Net", "--input", "6", "--input-dtype", "int64")
    assert run.code == 0 and "tokens: not tracked: a step moved the tokens where archcalc does not follow" in \
        " ".join(run.out.split())
