"""Networks beyond the lectures, written from torch.nn alone (no extra dependency), for the tests of
attention, recurrence and normalisation: each is a small member of a family the public model
libraries publish (ViT, Swin, ConvNeXt, a U-Net block, sequence taggers)."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


class TinyViT(nn.Module):
    """ViT (Dosovitskiy et al. 2021): patch embedding, class token, position embedding, encoder layers."""

    def __init__(self, image=32, patch=8, width=64, depth=2, heads=4, classes=10):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, width, patch, patch)
        tokens = (image // patch) ** 2 + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, width))
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.encoder(x))[:, 0])


class SDPAttention(nn.Module):
    """A hand-written attention block with F.scaled_dot_product_attention (timm's Attention)."""

    def __init__(self, width=32, heads=4, causal=False):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        n, length, width = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.proj(x.transpose(1, 2).reshape(n, length, width))


class EinsumAttention(nn.Module):
    """Attention written with einsum, as older reference implementations do."""

    def __init__(self, width=32, heads=4):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        n, length, width = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(n, length, self.heads, -1) for t in (q, k, v))
        scores = torch.einsum("bihd,bjhd->bhij", q, k) * (width // self.heads) ** -0.5
        out = torch.einsum("bhij,bjhd->bihd", scores.softmax(-1), v)
        return self.proj(out.reshape(n, length, width))


class WindowAttention(nn.Module):
    """Swin's shifted windows (Liu et al. 2021): pad to whole windows, roll, attend per window, roll back."""

    def __init__(self, width=32, heads=4, window=4, shift=2):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm = nn.LayerNorm(width)
        self.attn = SDPAttention(width, heads)

    def forward(self, x):  # (N, H, W, C), channels last
        n, h, w, c = x.shape
        ws = self.window
        y = F.pad(self.norm(x), (0, 0, 0, (-w) % ws, 0, (-h) % ws))
        y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        hp, wp = y.shape[1], y.shape[2]
        windows = y.view(n, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        y = self.attn(windows).view(n, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(n, hp, wp, c)
        y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        return x + y[:, :h, :w]


class EinsumChain(nn.Module):
    """A low-rank projection written as one einsum of three operands: x A B."""

    def __init__(self, width=32, rank=8, out=16):
        super().__init__()
        self.a = nn.Parameter(torch.randn(width, rank))
        self.b = nn.Parameter(torch.randn(rank, out))

    def forward(self, x):
        return torch.einsum("bld,dr,re->ble", x, self.a, self.b)


class SwinStage(nn.Module):
    """A patch embedding and two window-attention blocks on a 3x30x30 image (padded to windows of 4)."""

    def __init__(self):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, 32, 3, 3)
        self.blocks = nn.Sequential(WindowAttention(shift=0), WindowAttention(shift=2))
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = self.blocks(self.patch_embed(x).permute(0, 2, 3, 1))
        return self.head(x.mean(dim=(1, 2)))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt (Liu et al. 2022): depthwise 7x7, LayerNorm over channels (channels last), MLP, layer scale."""

    def __init__(self, width=32):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 4, 4)
        self.dwconv = nn.Conv2d(width, width, 7, padding=3, groups=width)
        self.norm = nn.LayerNorm(width)
        self.pwconv1 = nn.Linear(width, 4 * width)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * width, width)
        self.gamma = nn.Parameter(torch.full((width,), 1e-6))

    def forward(self, x):
        x = self.stem(x)
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)


class UNetBlock(nn.Module):
    """A diffusion U-Net's residual block: GroupNorm, SiLU, conv, twice, then a bilinear upsampling."""

    def __init__(self, width=32):
        super().__init__()
        self.conv_in = nn.Conv2d(3, width, 3, padding=1)
        self.norm1, self.conv1 = nn.GroupNorm(8, width), nn.Conv2d(width, width, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(8, width), nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return F.interpolate(x + h, scale_factor=2, mode="bilinear", align_corners=False)


class LSTMTagger(nn.Module):
    """A sequence tagger: token ids -> embedding -> bidirectional LSTM -> a tag per token."""

    def __init__(self, vocabulary=100, width=16, hidden=24, tags=5):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, width)
        self.lstm = nn.LSTM(width, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.tag = nn.Linear(2 * hidden, tags)

    def forward(self, tokens):
        return self.tag(self.lstm(self.embed(tokens))[0])


class RowGRU(nn.Module):
    """A GRU reading an image row by row (ReNet-style): a conv stem, each row a time step."""

    def __init__(self, hidden=32, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.gru = nn.GRU(8 * 16, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        x = self.stem(x)  # (N, 8, 16, 16)
        rows = x.permute(0, 2, 1, 3).flatten(2)  # (N, 16 rows, 8*16)
        return self.head(self.gru(rows)[1][-1])


class LSTMStack(nn.Module):
    """A projected, bidirectional two-layer LSTM over feature sequences (N, T, I), and an LSTM cell after it."""

    def __init__(self, features=32, hidden=24):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=2, batch_first=True, bidirectional=True, proj_size=8)
        self.cell = nn.GRUCell(16, hidden)

    def forward(self, x):
        y = self.lstm(x)[0]
        h = None
        for t in range(y.shape[1]):
            h = self.cell(y[:, t], h)
        return h


class MHABlock(nn.Module):
    """nn.MultiheadAttention as a model holds it (need_weights as given), masked: a causal attention mask
    ("causal"), a key-padding mask hiding each sequence's last key ("padding"), or both."""

    def __init__(self, width=32, heads=4, need_weights=True, masked=""):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.need_weights, self.masked = need_weights, masked

    def forward(self, x):
        (n, t), on = x.shape[:2], x.device
        causal = torch.ones(t, t, dtype=torch.bool, device=on).triu(1) if self.masked in ("causal", "both") else None
        padding = (torch.arange(t, device=on) == t - 1).expand(n, t) if self.masked in ("padding", "both") else None
        return self.attn(x, x, x, key_padding_mask=padding, need_weights=self.need_weights, attn_mask=causal)[0]


class FunctionalMHA(nn.Module):
    """F.multi_head_attention_forward called directly (sequence first), after a linear layer, in training."""

    def __init__(self, width=32, heads=4):
        super().__init__()
        self.proj = nn.Linear(width, width)
        self.attn = nn.MultiheadAttention(width, heads)  # (its weights; its forward is not called)

    def forward(self, x):
        x, a = self.proj(x), self.attn
        return F.multi_head_attention_forward(
            x, x, x, a.embed_dim, a.num_heads, a.in_proj_weight, a.in_proj_bias, None, None, False, 0.0,
            a.out_proj.weight, a.out_proj.bias, training=self.training, need_weights=False)[0]


class AttentionPool(nn.Module):
    """CLIP's ResNet head (open_clip's AttentionPool2d): the feature map's mean as one more token, a position
    embedding, F.multi_head_attention_forward with separate Q, K, V weights and an out-projection to another
    width (E = 32 to 48), the pooled token out."""

    def __init__(self, width=32, heads=4, out=48, side=4):
        super().__init__()
        self.position = nn.Parameter(torch.randn(side * side + 1, width) / width ** 0.5)
        self.q, self.k, self.v, self.c = (nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width),
                                          nn.Linear(width, out))
        self.heads = heads

    def forward(self, x):
        x = x.flatten(2).permute(2, 0, 1)  # NCHW -> (HW)NC
        x = torch.cat([x.mean(dim=0, keepdim=True), x]) + self.position[:, None, :]
        x = F.multi_head_attention_forward(
            x, x, x, x.shape[-1], self.heads, None, torch.cat([self.q.bias, self.k.bias, self.v.bias]), None, None,
            False, 0.0, self.c.weight, self.c.bias, training=self.training, need_weights=False,
            use_separate_proj_weight=True, q_proj_weight=self.q.weight, k_proj_weight=self.k.weight,
            v_proj_weight=self.v.weight)[0]
        return x[0]


class TinyGPT(nn.Module):
    """A decoder-only language model (GPT-style): token and position embeddings, pre-norm causal encoder
    layers, the output head tied to the token embedding; token ids and a padding mask (True: padding) in."""

    def __init__(self, vocabulary=100, width=32, heads=4, layers=2, context=16):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocabulary, width), nn.Embedding(context, width)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, vocabulary, bias=False)
        self.head.weight = self.tokens.weight

    def forward(self, ids, padding=None):
        t = ids.shape[1]
        x = self.tokens(ids) + self.positions(torch.arange(t, device=ids.device))
        causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).triu(1)  # True: not attended
        return self.head(self.norm(self.blocks(x, mask=causal, is_causal=True, src_key_padding_mask=padding)))


class PackedTagger(nn.Module):
    """A tagger over sentences of different lengths, as NLP courses write it: pack_padded_sequence, a
    bidirectional LSTM, pad_packed_sequence. Unsorted, the packed sequence's indices are read back to the CPU
    (pad_packed_sequence), which the meta device cannot do; sorted (enforce_sorted) there are none."""

    def __init__(self, vocabulary=100, width=16, hidden=24, tags=5, sort=False):
        super().__init__()
        self.sort = sort
        self.embed = nn.Embedding(vocabulary, width)
        self.lstm = nn.LSTM(width, hidden, batch_first=True, bidirectional=True)
        self.tag = nn.Linear(2 * hidden, tags)

    def forward(self, tokens):
        n, t = tokens.shape
        lengths = torch.tensor([t - i % 3 for i in range(n)])
        if self.sort:
            lengths = lengths.sort(descending=True).values
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths, batch_first=True,
                                                   enforce_sorted=self.sort)
        y, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=t)
        return self.tag(y)


# name -> (builder, input shape with the batch, input dtype)
class _Quantise(torch.autograd.Function):
    """Rounding to steps of ``scale`` in the forward, ∂y passed on as it is (a straight-through estimator, as
    quantisation-aware training writes it)."""

    @staticmethod
    def forward(ctx, x, scale):
        return torch.round(x / scale) * scale

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class Product(torch.autograd.Function):
    """x @ w, whose backward computes both gradients itself."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ w

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return grad @ w.t(), x.transpose(-1, -2) @ grad


class CustomFunctions(nn.Module):
    """Custom autograd Functions between layers: TorchScript (so fvcore) sees each as one opaque op, autograd runs
    their own backward."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 64)
        self.w = nn.Parameter(torch.randn(64, 32) * 0.1)

    def forward(self, x):
        return Product.apply(_Quantise.apply(self.fc(x), 0.1), self.w)


class MatrixProducts(nn.Module):
    """The products beyond matmul: tensordot, a multi_dot chain, nn.Bilinear, addbmm, a unit-triangular solve
    (the gated DeltaNet's), outer and kron. flop_counter has no formula for bilinear, addbmm and the solve."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 4) * 0.1)
        self.chain = nn.ParameterList([nn.Parameter(torch.randn(*s) * 0.1) for s in ((8, 16), (16, 3), (3, 5))])
        self.bilinear = nn.Bilinear(8, 4, 5)
        self.mix = nn.Parameter(torch.randn(6, 6) * 0.1)

    def forward(self, x):  # x: (N, 6, 8)
        t = torch.tensordot(x, self.w, dims=1)  # (N, 6, 4)
        c = torch.linalg.multi_dot([x.flatten(0, 1), *self.chain]).view(x.shape[0], 6, 5)
        b = self.bilinear(x, t)  # (N, 6, 5)
        s = torch.addbmm(x.new_zeros(8, 4), x.transpose(1, 2), t)  # (8, 4), summed over the batch
        a = torch.eye(6, device=x.device) + self.mix.tril(-1)
        u = torch.linalg.solve_triangular(a, b + c, upper=False, unitriangular=True)
        return u.sum() + s.sum() + torch.outer(s[0], s[1]).sum() + torch.kron(s[:2, :2], s[:2, :2]).sum()



class Conv1D(nn.Module):
    """Hugging Face's GPT-2 linear layer: torch.addmm(bias, x as (N*T, in), weight (in, out)), no F.linear."""

    def __init__(self, features_in, features_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(features_in, features_out) * 0.02)
        self.bias = nn.Parameter(torch.zeros(features_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class AddedProducts(nn.Module):
    """GPT-2's MLP of Conv1D layers (torch.addmm), then the method x.addmm and a torch.baddbmm that add a bias
    to their products: ptflops counts each bias once a call, for its one image; a bias added by torch.add and a
    gain by x.mul, each of lower rank than x (ptflops aligns the shapes from the left: one image's (1, T, C) and
    (C,) count C x T x C)."""

    def __init__(self, width=16):
        super().__init__()
        self.fc, self.proj = Conv1D(width, 4 * width), Conv1D(4 * width, width)
        self.w = nn.Parameter(torch.randn(width, width) * 0.1)
        self.b = nn.Parameter(torch.zeros(width))
        self.gain = nn.Parameter(torch.ones(width))

    def forward(self, x):  # x: (N, T, C)
        h = torch.add(self.proj(torch.relu(self.fc(x))), self.b).mul(self.gain)
        flat = self.b.expand(h.shape[0] * h.shape[1], -1).addmm(h.flatten(0, 1), self.w).view_as(h)
        return torch.baddbmm(self.b.expand_as(flat), flat, self.w.expand(flat.shape[0], -1, -1))


class SameConv(nn.Conv2d):
    """A convolution subclass with padding='same' (Hugging Face's EfficientNetDepthwiseConv2d is such a one)."""


class InterpolatedPositions(nn.Module):
    """PVT's and DPT's position embeddings, resized to the feature map by F.interpolate: work done once a
    forward, whatever the batch (ptflops, N x one image, counts it N times); a depthwise SameConv after; then
    ConViT's relative positions, a buffer expanded to the batch (x.shape[0]) before a linear layer projects them:
    work that grows with the batch, though none of it comes from the input."""

    def __init__(self, width=8, side=6):
        super().__init__()
        self.embed = nn.Conv2d(3, width, 2, stride=2)
        self.positions = nn.Parameter(torch.randn(1, width, 3, 3) * 0.02)
        self.mix = SameConv(width, width, 3, padding="same", groups=width)
        self.register_buffer("relative", torch.randn(1, side * side, 2))
        self.relative_proj = nn.Linear(2, width)

    def forward(self, x):
        x = self.embed(x)
        x = self.mix(x + F.interpolate(self.positions, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return x.flatten(2).transpose(1, 2) + self.relative_proj(self.relative.expand(x.shape[0], -1, -1))


class TimeConv(nn.Module):
    """speechbrain's Conv1d: a convolution over time of features laid out (N, T, C)."""

    def __init__(self, c_in, c_out, kernel):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel)

    def forward(self, x):
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


class RetriedCall(nn.Module):
    """speechbrain's Xvector idiom: each block called with the lengths, and called again without them where it does
    not take them (the TypeError caught). The failed calls run nothing; TorchScript's trace, fvcore's, aborts the
    process on them (an internal assert)."""

    def __init__(self, width=4):
        super().__init__()
        self.blocks = nn.ModuleList([TimeConv(width, 8, 3), nn.LeakyReLU(), TimeConv(8, width, 3)])

    def forward(self, x, lens=None):
        for layer in self.blocks:
            try:
                x = layer(x, lengths=lens)
            except TypeError:
                x = layer(x)
        return x


class Factorisations(nn.Module):
    """The linear algebra of models beyond CNNs: Glow's invertible 1x1 convolution (its weight's log-determinant
    for every pixel, the inverse that samples), a Gaussian-process layer's Cholesky solve, a QR-orthogonalised
    projection, a solve and a determinant of the Gram matrices. flop_counter and fvcore count none of them.
    (A vector out: torchinfo fails on a 0-d output of a module holding a parameter of its own.)"""

    def __init__(self, c=4):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(c) + 0.1 * torch.randn(c, c))
        self.kernel = nn.Linear(c, c)

    def forward(self, x):  # x: (N, C, H, W)
        n, c, h, w = x.shape
        z = F.conv2d(x, self.weight.view(c, c, 1, 1))
        logdet = h * w * torch.linalg.slogdet(self.weight).logabsdet
        back = F.conv2d(z, torch.linalg.inv(self.weight).view(c, c, 1, 1))
        f = z.flatten(2)  # (N, C, HW)
        gram = f @ f.mT + c * torch.eye(c, device=x.device)  # symmetric positive definite
        alpha = torch.cholesky_solve(self.kernel(f.mT).mT, torch.linalg.cholesky(gram))
        q = torch.linalg.qr(f.mT).Q  # (N, HW, C)
        s = torch.linalg.solve(gram, f)
        return torch.stack([back.sum() + logdet, alpha.sum(), q.sum(), s.sum(), torch.linalg.det(gram).sum()])

class LanguageHead(nn.Module):
    """A language model's last layer and its loss in one call (PyTorch 2.13's F.linear_cross_entropy): 16 tokens
    of width 16 (from a Linear, so the input needs a gradient), 100 classes; PyTorch's chunked path when
    ``options`` is given."""

    def __init__(self, options=None, reduction="mean", bias=False, chunk=None):
        super().__init__()
        self.body, self.head = nn.Linear(16, 16), nn.Linear(16, 100, bias=bias)
        if chunk is not None:  # (a user's model file: the options as a number)
            options = nn.LinearCrossEntropyOptions(batch_chunk_size=chunk)
        self.options, self.reduction = options, reduction

    def forward(self, x):  # x: (N, 16)
        target = torch.arange(x.shape[0], device=x.device) % 100
        loss = F.linear_cross_entropy(self.body(x), self.head.weight, target, linear_bias=self.head.bias,
                                      reduction=self.reduction, options=self.options)
        return loss.reshape(-1)  # (a vector: torchinfo fails on a 0-d output)



class FairseqConv(nn.Module):
    """Operations of the libraries' models beyond the common layers: fairseq's time-first convolution (ConvTBC:
    torch.conv_tbc, padded), a covariance and a correlation of its features (whitening, VICReg-style losses),
    a trace, a distance and renorm, and the metric-learning losses (triplet, cosine embedding)."""

    def __init__(self):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.randn(3, 8, 6) * 0.1), nn.Parameter(torch.zeros(6))

    def forward(self, x):  # x: (N, T, 8)
        y = torch.conv_tbc(x.transpose(0, 1).contiguous(), self.weight, self.bias, 1)  # (T, N, 6)
        f = y.flatten(0, 1)  # (T*N, 6)
        c = torch.cov(f.T)
        a, p, n = y[0], y[1], y[2]
        losses = F.triplet_margin_loss(a, p, n) + F.cosine_embedding_loss(a, p, torch.ones(a.shape[0], device=x.device))
        return torch.stack([c.sum(), torch.corrcoef(f.T).sum(), torch.trace(c), torch.dist(a, p),
                            torch.renorm(f, 2, 0, 1.0).sum(), losses])


class LinalgMatmul(nn.Module):
    """torch.linalg.matmul, matmul's alias (cast as matmul is under autocast)."""

    def __init__(self):
        super().__init__()
        self.w, self.project = nn.Parameter(torch.randn(8, 8)), nn.Linear(8, 8)

    def forward(self, x):
        return torch.linalg.matmul(self.project(x), self.w).sum(-1)

class LayerNorm2d(nn.LayerNorm):
    """timm's idiom: a LayerNorm subclass with a forward of its own (over the channels of an image), which
    archcalc counts by the F.layer_norm it runs."""

    def forward(self, x):
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class LayerNormNoBias(nn.LayerNorm):
    """timm's MetaFormer idiom: a subclass that keeps LayerNorm's forward (counted as one), without a bias."""

    def __init__(self, width):
        super().__init__(width, bias=False)


class StdConv2d(nn.Conv2d):
    """timm's weight-standardised convolution (NFNet, BiT): the weight normalised by F.batch_norm with
    training=True (the batch's statistics, which fvcore counts as a norm's 5 per element), then F.conv2d."""

    def forward(self, x):
        weight = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True,
                              momentum=0.0, eps=1e-6).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding)


class GELUActivation(nn.Module):
    """Hugging Face's: the function kept as an attribute (self.act = nn.functional.gelu), bound before ptflops
    patches F.gelu, so ptflops does not count its calls."""

    def __init__(self):
        super().__init__()
        self.act = F.gelu

    def forward(self, x):
        return self.act(x)


class SharedBlock(nn.Module):
    def __init__(self, shared: nn.Module, width: int):
        super().__init__()
        self.position = shared  # (one module, held by every block and by the model)
        self.mix = nn.Conv2d(width, width, 1)

    def forward(self, x):
        return self.mix(x + self.position(x))


class LibraryIdioms(nn.Module):
    """What the model libraries do that the counting tools read differently: ConvMixer's padding='same' (a
    convolution that TorchScript traces as aten::_convolution_mode, which fvcore does not count), a LayerNorm
    subclass with its own forward, and CoaT's module shared by several parents (thop and ptflops add its count
    once a parent), a LayerNorm subclass that keeps its base's forward (fvcore counts its aten::layer_norm) and a
    weight-standardised convolution (NFNet's); Hugging Face's GELUActivation; a spatial transformer's grid_sample."""

    def __init__(self, width=8):
        super().__init__()
        self.stem = StdConv2d(3, width, 3, padding=1)
        self.depthwise = nn.Conv2d(width, width, 5, padding="same", groups=width)
        self.norm = LayerNorm2d(width)
        self.position = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=width))
        self.blocks = nn.Sequential(*(SharedBlock(self.position, width) for _ in range(2)))
        self.rows = LayerNormNoBias(12)  # (over the last size: the width of a 12 x 12 input)
        self.act = GELUActivation()
        theta = torch.tensor([[[0.9, 0.1, 0.0], [-0.1, 0.9, 0.0]]])  # (a spatial transformer's, fixed: a 12 x 12 map)
        self.register_buffer("grid", F.affine_grid(theta, [1, width, 12, 12], align_corners=False))

    def forward(self, x):
        x = self.act(self.norm(self.depthwise(self.stem(x))))
        x = F.grid_sample(x, self.grid.expand(x.shape[0], -1, -1, -1), align_corners=False)  # (fvcore: 4 an output)
        return self.rows(self.blocks(self.position(x)))


class PoolEncoder(nn.Module):
    def __init__(self, c_in, c_out, pool):
        super().__init__()
        self.conv, self.pool = nn.Conv2d(c_in, c_out, 3, padding=1), pool

    def forward(self, x):
        return self.pool(torch.relu(self.conv(x)))


class PoolingIndices(nn.Module):
    """SegNet's and QuickNAT's pooling: max-pooling that keeps where each maximum was, one
    nn.MaxPool2d(return_indices=True) held by both encoder blocks (QuickNAT's; their decoders' nn.MaxUnpool2d is
    left out: fvcore's TorchScript trace of max_unpool2d fails on PyTorch 2.13, a torch._check given a tensor);
    F.max_pool2d and F.adaptive_max_pool2d with return_indices=True, which reach a trace as the functions
    they dispatch to (F.max_pool2d_with_indices, ...), and a direct F.max_pool2d_with_indices call (ptflops
    patches F.max_pool2d, which the module and the first calls go through, and not the last)."""

    def __init__(self, width=4):
        super().__init__()
        pool = nn.MaxPool2d(2, return_indices=True)
        self.encoders = nn.ModuleList([PoolEncoder(3, width, pool), PoolEncoder(width, width, pool)])
        self.head = nn.Conv2d(width, 2, 1)

    def forward(self, x):
        for encoder in self.encoders:
            x, _ = encoder(x)
        pooled, _ = F.max_pool2d(x, 2, return_indices=True)
        direct, _ = F.max_pool2d_with_indices(x, 2)
        gate, _ = F.adaptive_max_pool2d(x, 1, return_indices=True)
        return self.head((pooled + direct) * gate)


class DirectForward(nn.Module):
    """Layers called as ``layer.forward(x)``, not ``layer(x)``, which runs no hook (PyG's TAGConv and ChebConv call
    their linear layers so): a graph convolution of K hops over a fixed normalised adjacency Â of a path graph,
    out = Σ_k lin_k(Âᵏ x), with the first hop's layer called as usual and the others by .forward; then a BatchNorm1d
    (over the nodes) and a ReLU called by .forward too (ptflops still counts the F.relu inside, which it patched).
    thop, torchinfo and ptflops's hooks count nothing for those calls; fvcore and flop_counter see the operations
    as ever."""

    def __init__(self, nodes=10, features=8, hops=3):
        super().__init__()
        self.lins = nn.ModuleList(nn.Linear(features, features) for _ in range(hops))
        self.norm = nn.BatchNorm1d(nodes)
        self.act = nn.ReLU()
        adjacency = torch.eye(nodes) + torch.diag(torch.ones(nodes - 1), 1) + torch.diag(torch.ones(nodes - 1), -1)
        degree = adjacency.sum(1).rsqrt()
        self.register_buffer("adjacency", degree[:, None] * adjacency * degree[None, :])

    def forward(self, x):  # x: (graphs, nodes, features)
        out = self.lins[0](x)
        for lin in self.lins[1:]:
            x = torch.einsum("ij,bjf->bif", self.adjacency, x)
            out = out + lin.forward(x)
        return self.act.forward(self.norm.forward(out))


class EdgeListGraph(nn.Module):
    """A graph convolution by edge list, as PyTorch Geometric's message passing runs it: each node's features
    transformed, gathered along the edges (index_select of the sources), summed at the targets (index_add_), a
    ReLU and a classifier a node. Its inputs share no batch: node features (N, F) and edges (2, E)."""

    def __init__(self, features=16, hidden=32, classes=7):
        super().__init__()
        self.lin, self.out = nn.Linear(features, hidden), nn.Linear(hidden, classes)

    def forward(self, x, edges):
        h = self.lin(x)
        summed = torch.zeros_like(h).index_add_(0, edges[1], h.index_select(0, edges[0]))
        return self.out(torch.relu(summed))


NETWORKS = {
    "tiny_vit": (TinyViT, (2, 3, 32, 32), torch.float32),
    "sdpa_attention": (SDPAttention, (2, 10, 32), torch.float32),
    "causal_attention": (lambda: SDPAttention(causal=True), (2, 10, 32), torch.float32),
    "einsum_attention": (EinsumAttention, (2, 10, 32), torch.float32),
    "swin_stage": (SwinStage, (2, 3, 30, 30), torch.float32),
    "convnext_block": (ConvNeXtBlock, (2, 3, 32, 32), torch.float32),
    "unet_block": (UNetBlock, (2, 3, 16, 16), torch.float32),
    "lstm_tagger": (LSTMTagger, (2, 12), torch.int64),
    "row_gru": (RowGRU, (2, 3, 16, 16), torch.float32),
    "lstm_stack": (LSTMStack, (2, 10, 32), torch.float32),
    "einsum_chain": (EinsumChain, (2, 10, 32), torch.float32),
    "mha_weights": (MHABlock, (2, 10, 32), torch.float32),
    "mha_no_weights": (lambda: MHABlock(need_weights=False), (2, 10, 32), torch.float32),
    "mha_masked_weights": (lambda: MHABlock(masked="causal"), (2, 10, 32), torch.float32),
    "mha_padded_weights": (lambda: MHABlock(masked="padding"), (2, 10, 32), torch.float32),
    "mha_both_masks": (lambda: MHABlock(masked="both"), (2, 10, 32), torch.float32),
    "functional_mha": (FunctionalMHA, (10, 2, 32), torch.float32),
    "attention_pool": (AttentionPool, (2, 32, 4, 4), torch.float32),
    "added_products": (AddedProducts, (2, 5, 16), torch.float32),
    "interpolated_positions": (InterpolatedPositions, (2, 3, 12, 12), torch.float32),
    "custom_functions": (CustomFunctions, (2, 10, 32), torch.float32),
    "retried_call": (RetriedCall, (2, 10, 4), torch.float32),
    "library_idioms": (LibraryIdioms, (2, 3, 12, 12), torch.float32),
    "pooling_indices": (PoolingIndices, (2, 3, 32, 32), torch.float32),
    "direct_forward": (DirectForward, (2, 10, 8), torch.float32),
}
BEYOND_FLOP_COUNTER = {  # networks with operations torch.utils.flop_counter has no formula for (it counts them 0)
    "matrix_products": (MatrixProducts, (2, 6, 8), torch.float32),
    "factorisations": (Factorisations, (2, 4, 5, 6), torch.float32),
    "fairseq_conv": (FairseqConv, (2, 7, 8), torch.float32),
}


class RegNetLike(nn.Module):
    """A constructor that computes its widths with tensors and reads them back (torchvision's RegNet
    does: ``torch.arange(depth) * w_a + w_0`` ... ``.tolist()``), which the meta device refuses."""

    def __init__(self, depth=3, w_0=8, w_a=8.0):
        super().__init__()
        widths = (torch.arange(depth) * w_a + w_0).round().int().tolist()
        scale = torch.tensor(2.0).item()
        layers, width = [], 3
        for w in widths:
            layers += [nn.Conv2d(width, int(w * scale), 3, padding=1), nn.BatchNorm2d(int(w * scale)), nn.ReLU()]
            width = int(w * scale)
        self.features = nn.Sequential(*layers)
        self.register_buffer("scale", torch.tensor([scale]))

    def forward(self, x):
        return self.features(x) * self.scale


class ValueBranch(nn.Module):
    """A forward whose control flow reads a tensor's value."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.big, self.small = nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 1)

    def forward(self, x):
        y = self.conv(x)
        if y.abs().mean() > -1:  # always true for real numbers
            return self.big(y)
        return self.small(y)


class PINN(nn.Module):
    """A physics-informed network (Raissi et al. 2019): u(x, t) by a tanh MLP, and its derivatives ∂u/∂x and ∂u/∂t
    by torch.autograd.grad in the forward, made differentiable (create_graph=True) for the residual's loss."""

    def __init__(self, width=32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                                 nn.Linear(width, 1))

    def forward(self, xt):
        xt = xt.requires_grad_(True)
        u = self.net(xt)
        (du,) = torch.autograd.grad(u.sum(), xt, create_graph=True)
        return u, du


class EnergyForces(nn.Module):
    """An energy model's forces F = -∂E/∂x (a learned potential): a convolutional energy, differentiated with respect
    to the input only, its gradients not differentiable."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.head = nn.Linear(8 * 6 * 6, 1)

    def forward(self, x):
        x = x.detach().requires_grad_(True)
        energy = self.head(F.silu(self.conv2(F.silu(self.conv1(x)))).flatten(1)).sum()
        (grad,) = torch.autograd.grad(energy, x)
        return -grad


class InnerStep(nn.Module):
    """One inner step of MAML (Finn et al. 2017) on its first layer: the gradient of a loss with respect to that
    layer's weight, taken in the forward, and the layer applied again with the adapted weight."""

    def __init__(self):
        super().__init__()
        self.first, self.second = nn.Linear(6, 16), nn.Linear(16, 4)

    def forward(self, x):
        loss = self.second(torch.relu(self.first(x))).pow(2).mean()
        (g,) = torch.autograd.grad(loss, self.first.weight, create_graph=True)
        return self.second(torch.relu(F.linear(x, self.first.weight - 0.1 * g, self.first.bias)))


class HiddenGradient(nn.Module):
    """A gradient with respect to a hidden feature (Grad-CAM's ∂y/∂A): autograd stops there, so the layers before it
    get no gradient."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        a = self.features(x)
        y = self.head(a.mean((2, 3)))
        (weights,) = torch.autograd.grad(y[:, 0].sum(), a)
        return y, (weights.mean((2, 3), keepdim=True) * a).sum(1)


class BackwardInside(nn.Module):
    """A forward that calls backward() itself (every leaf's gradient, into .grad), as a hand-written inner loop
    would: autograd computes every parameter's gradient."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(5, 7), nn.Linear(7, 3)

    def forward(self, x):
        y = self.fc2(torch.tanh(self.fc1(x)))
        y.sum().backward()
        return y.detach()


def _d(y, x):
    """∂(Σy)/∂x, differentiable again."""
    return torch.autograd.grad(y.sum(), x, create_graph=True)[0]


class KdV(nn.Module):
    """A PINN of the Korteweg-de Vries equation u_t + u·u_x + u_xxx = 0: u_x, u_xx and u_xxx, each the derivative of
    the last (third derivatives through an MLP of any activation: tanh, GELU, softplus)."""

    def __init__(self, activation=nn.Tanh):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 16), activation(), nn.Linear(16, 16), activation(), nn.Linear(16, 1))

    def forward(self, xt):
        xt = xt.requires_grad_(True)
        u = self.net(xt)
        ux = _d(u, xt)[:, :1]
        uxx = _d(ux, xt)[:, :1]
        return u, ux, uxx, _d(uxx, xt)[:, :1]


class AttentionPINN(nn.Module):
    """A PINN with attention over the collocation points, layer-normed (PINNsFormer's kind): the second derivative
    differentiates the gradients of the attention's products and softmax again."""

    def __init__(self):
        super().__init__()
        self.embed, self.norm, self.out = nn.Linear(2, 16), nn.LayerNorm(16), nn.Linear(16, 1)

    def forward(self, xt):
        xt = xt.requires_grad_(True)
        h = torch.tanh(self.norm(self.embed(xt))).unsqueeze(0)
        u = self.out((torch.softmax(h @ h.transpose(1, 2) / 4, -1) @ h)[0])
        return u, _d(_d(u, xt)[:, 0], xt)


class ConvolutionHessian(nn.Module):
    """The gradient of a convolutional energy's squared gradient (a Hessian-vector product): the convolutions',
    batch norm's and max-pooling's backward differentiated again."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.up, self.head = nn.ConvTranspose2d(4, 4, 2, stride=2), nn.Linear(4 * 5 * 5, 1)

    def forward(self, x):
        x = x.detach().requires_grad_(True)
        y = F.max_pool2d(self.up(torch.tanh(self.norm(self.conv(x)))), 2)
        return _d(_d(self.head(y.flatten(1)), x).pow(2), x)


class BilinearPINN(nn.Module):
    """u = Bilinear(h, h) for h = tanh(W x + b) over 8 points (3 -> 8 -> 1), and its first and second derivatives:
    nn.Bilinear's gradients are _trilinear products over N x out x in1 x in2."""

    def __init__(self):
        super().__init__()
        self.embed, self.form = nn.Linear(3, 8), nn.Bilinear(8, 8, 1)

    def forward(self, x):
        x = x.detach().requires_grad_(True)
        h = torch.tanh(self.embed(x))
        ux = _d(self.form(h, h), x)
        return ux, _d(ux, x)


class FunctionalAttentionGradient(nn.Module):
    """∂(Σy)/∂x through F.multi_head_attention_forward called with a module's weights (6 tokens, 3 -> 16, 2 heads):
    the gradient asked for x alone, so the attention's weights get none."""

    def __init__(self):
        super().__init__()
        self.embed, self.attention = nn.Linear(3, 16), nn.MultiheadAttention(16, 2)

    def forward(self, x):
        x = x.detach().requires_grad_(True)
        h = torch.tanh(self.embed(x)).unsqueeze(1)
        m = self.attention
        y = F.multi_head_attention_forward(h, h, h, 16, 2, m.in_proj_weight, m.in_proj_bias, None, None, False, 0.0,
                                           m.out_proj.weight, m.out_proj.bias, need_weights=False)[0]
        return _d(y, x)


class SecondDerivative(nn.Module):
    """u_xx = ∂(Σ∂(Σu)/∂x)/∂x of a body u(x) over points x (N, 3): the second derivative reaches inside the body's
    rows (a recurrent layer's gates, an attention's probabilities, a norm's statistics), where the first's gradient
    kept their tensors."""

    def __init__(self, body: str):
        super().__init__()
        self.body = body
        make = {"gru": lambda: nn.GRU(3, 8, batch_first=True), "lstm": lambda: nn.LSTM(3, 8, batch_first=True),
                "norms": lambda: nn.Sequential(nn.Linear(3, 16), nn.GELU(), nn.LayerNorm(16)),
                "attention": lambda: nn.Linear(3, 48), "volume": lambda: nn.Conv3d(1, 2, 3, padding=1),
                "activations": lambda: nn.Linear(3, 16), "vector": lambda: nn.Linear(3, 16),
                "heads": lambda: nn.MultiheadAttention(16, 2, batch_first=True)}
        self.layer = make[body]()
        self.group = nn.GroupNorm(4, 16)
        self.w = nn.Parameter(torch.randn(16))
        self.out = nn.Linear(16 if body not in ("gru", "lstm") else 8, 1)

    def u(self, x):
        if self.body in ("gru", "lstm"):
            return self.out(self.layer(x.unsqueeze(0))[0][0])
        if self.body == "norms":
            return self.out(F.silu(self.group(self.layer(x).unsqueeze(-1)).squeeze(-1)))
        if self.body == "attention":  # (3-d q, k, v: the CPU's math kernel, which can be differentiated twice)
            q, k, v = torch.tanh(self.layer(x)).view(1, -1, 3, 16).unbind(2)
            return self.out(F.scaled_dot_product_attention(q, k, v)[0])
        if self.body == "heads":  # (4-d q, k, v inside: the CPU's flash kernel, which cannot be differentiated twice)
            h = torch.tanh(x @ self.w[:3, None].expand(3, 16)).unsqueeze(0)
            return self.out(self.layer(h, h, h, need_weights=False)[0][0])
        if self.body == "volume":
            y = torch.tanh(F.max_pool3d(torch.tanh(self.layer(x.view(-1, 1, 2, 2, 2))), 2))
            return F.adaptive_avg_pool3d(y, 1).flatten()
        if self.body == "vector":  # (a matrix-vector product: u = tanh(W x + b) · w, for every point)
            return torch.tanh(self.layer(x)) @ self.w
        h = self.layer(x)
        h = F.softplus(h) + F.elu(h) + F.leaky_relu(h) + F.mish(h) + F.hardtanh(h) + F.logsigmoid(h) + torch.erf(h)
        return self.out(F.normalize(h, dim=-1))

    def forward(self, x):
        x = x.detach().requires_grad_(True)
        return _d(_d(self.u(x), x), x)


class FunctionalPINN(nn.Module):
    """A PINN written with torch.func (the functional style of recent PINN code): u(x) for the batch, and ∂u/∂x per
    point by ``vmap(grad(u))``, ``vmap(jacrev(u))``, ``vmap(jacfwd(u))``, ``jvp`` along a direction, forward_ad's dual
    tensors, ``vmap(hessian(u))``, ``vmap(grad(grad(u)))``, and forward mode with the others: ``jvp(grad(u))``,
    ``jvp(jvp(u))``, ``grad(jvp(u))``, autograd.grad of a dual tensor's tangent, a dual tensor given to ``grad``,
    ``jvp(vmap(u))``, ``vmap(jvp(u))``, ``grad(jvp(jvp(u)))``."""

    def __init__(self, how="grad"):
        super().__init__()
        self.how = how
        self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        from torch import func
        import torch.autograd.forward_ad as forward_ad

        def u(p):
            return self.net(p).squeeze(-1)

        if self.how == "jvp":
            return func.jvp(self.net, (x,), (torch.ones_like(x),))
        if self.how == "dual":
            with forward_ad.dual_level():
                return forward_ad.unpack_dual(self.net(forward_ad.make_dual(x, torch.ones_like(x)))).tangent
        if self.how == "grad of grad":
            return func.vmap(func.grad(lambda p: func.grad(u)(p)[0]))(x)
        one = torch.ones_like(x)
        if self.how == "jvp of grad":  # (a Hessian-vector product, forward over reverse)
            return func.jvp(func.grad(lambda p: u(p).sum()), (x,), (one,))[1]
        if self.how == "jvp of jvp":
            return func.jvp(lambda p: func.jvp(u, (p,), (one,))[1], (x,), (one,))[1]
        if self.how == "grad of jvp":  # (reverse over forward)
            return func.grad(lambda p: func.jvp(u, (p,), (one,))[1].sum())(x)
        if self.how == "grad of jvp of jvp":
            return func.grad(lambda p: func.jvp(lambda q: func.jvp(u, (q,), (one,))[1], (p,), (one,))[1].sum())(x)
        if self.how == "grad of dual":  # (torch.autograd.grad of a tangent computed with dual tensors)
            x = x.requires_grad_(True)
            with forward_ad.dual_level():
                tangent = forward_ad.unpack_dual(self.net(forward_ad.make_dual(x, one))).tangent
            return torch.autograd.grad(tangent.sum(), x, create_graph=True)[0]
        if self.how == "dual of grad":  # (a dual tensor given to grad)
            with forward_ad.dual_level():
                return forward_ad.unpack_dual(func.grad(lambda p: u(p).sum())(forward_ad.make_dual(x, one))).tangent
        if self.how == "vmap of grad of jvp":
            return func.vmap(func.grad(lambda p: func.jvp(u, (p,), (torch.ones_like(p),))[1]))(x)
        if self.how in ("jvp of vmap", "vmap of jvp"):
            if self.how == "jvp of vmap":
                return func.jvp(func.vmap(u), (x,), (one,))[1]
            return func.vmap(lambda p, t: func.jvp(u, (p,), (t,))[1])(x, one)
        transform = {"grad": func.grad, "jacrev": func.jacrev, "jacfwd": func.jacfwd, "hessian": func.hessian,
                     "jacrev of jacfwd": lambda f: func.jacrev(func.jacfwd(f))}
        return self.net(x), func.vmap(transform[self.how](u))(x)


class ForwardOverReverse(nn.Module):
    """Forward-mode AD over a gradient, through a 2-16-16-1 tanh MLP over 10 points (a 1-4-2 tanh CNN and a linear
    head for ``convolutional``, on 2x1x8x8): a Hessian-vector product ``jvp(grad(f))``, a PINN's per-point Hessian
    ``vmap(hessian(u))``, the Hessian of a sum over every point, ``jacfwd(jacrev(.))`` of a vector output, a
    Hessian-vector product in parameter space (``functional_call``, the weights carrying the tangents),
    forward_ad's dual tensors given to ``torch.autograd.grad``, ``jvp(grad(f))`` through convolutions, through an
    einsum, through attention, through a GRU (2 -> 3) and through a bilinear layer, a third derivative
    ``jvp(jvp(grad(f)))``, and torch.autograd.functional's forward-mode hessian (``legacy vmap``)."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        if how == "attention":
            self.attention = nn.MultiheadAttention(2, 1, batch_first=True)
        if how == "recurrent":
            self.gru = nn.GRU(2, 3, batch_first=True)
        if how == "bilinear":
            self.bilinear = nn.Bilinear(2, 2, 3)
        if how == "convolutional":
            self.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Tanh(), nn.Conv2d(4, 2, 3), nn.Tanh(), nn.Flatten(),
                                     nn.Linear(2 * 4 * 4, 1))
        else:
            self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        from torch import func
        import torch.autograd.forward_ad as forward_ad

        def u(p):
            return self.net(p).squeeze(-1)

        def f(p):
            return u(p).sum()

        one = torch.ones_like(x)
        if self.how in ("jvp of grad", "convolutional"):
            return func.jvp(func.grad(lambda p: self.net(p).sum()), (x,), (one,))[1]
        if self.how == "hessian":
            return func.vmap(func.hessian(u))(x)
        if self.how == "hessian of the sum":
            return func.hessian(f)(x)
        if self.how == "jacfwd of jacrev":
            return func.jacfwd(func.jacrev(self.net[:4]))(x[0])
        if self.how == "parameters":
            params = dict(self.net.named_parameters())
            tangents = {name: torch.ones_like(p) for name, p in params.items()}
            loss = lambda p: func.functional_call(self.net, p, (x,)).pow(2).sum()  # noqa: E731
            return func.jvp(func.grad(loss), (params,), (tangents,))[1]
        if self.how == "dual":
            x = x.detach().requires_grad_(True)
            with forward_ad.dual_level():
                gradient = torch.autograd.grad(f(forward_ad.make_dual(x, one)), x, create_graph=True)[0]
                return forward_ad.unpack_dual(gradient).tangent
        if self.how == "jvp of jvp of grad":
            return func.jvp(lambda p: func.jvp(func.grad(f), (p,), (one,))[1], (x,), (one,))[1]
        if self.how == "einsum":
            first = self.net[0]
            g = lambda p: torch.einsum("ni,ij->nj", torch.tanh(first(p)), self.net[2].weight.T).sum()  # noqa: E731
            return func.jvp(func.grad(g), (x,), (one,))[1]
        if self.how == "attention":  # (10 tokens of width 2, one head)
            g = lambda p: self.attention(p[None], p[None], p[None])[0].sum()  # noqa: E731
            return func.jvp(func.grad(g), (x,), (one,))[1]
        if self.how == "recurrent":  # (a sequence of 10 steps)
            return func.jvp(func.grad(lambda p: self.gru(p[None])[0].pow(2).sum()), (x,), (one,))[1]
        if self.how == "bilinear":
            return func.jvp(func.grad(lambda p: self.bilinear(p, p).pow(2).sum()), (x,), (one,))[1]
        return torch.autograd.functional.hessian(f, x, vectorize=True,  # (legacy vmap)
                                                 outer_jacobian_strategy="forward-mode")


class ForwardModeCNN(nn.Module):
    """Forward-mode AD through a CNN (convolution, GELU, a grouped convolution, tanh, a linear head, LayerNorm) on
    2x1x8x8, its tangents among the outputs a training step differentiates: ``jvp`` along the input, a per-image
    ``vmap(jacfwd(.))``, and ``jvp`` in parameter space (``functional_call``, the weights carrying the tangents); and
    differentiated in the forward (reverse over forward): ``grad`` of a ``jvp``, along the input or in parameter
    space, and ``jacrev(jacfwd(.))`` of the batch's summed outputs (jacfwd's basis batches the tangents inside
    jacrev's gradient)."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.GELU(), nn.Conv2d(4, 2, 3, groups=2), nn.Tanh(), nn.Flatten(),
                                 nn.Linear(32, 3), nn.LayerNorm(3))

    def forward(self, x):
        from torch import func

        if self.how == "jvp":
            return func.jvp(self.net, (x,), (torch.ones_like(x),))
        if self.how == "jacfwd":
            return func.vmap(func.jacfwd(lambda p: self.net(p[None])[0]))(x)
        if self.how == "grad of jvp":
            return func.grad(lambda p: func.jvp(self.net, (p,), (torch.ones_like(p),))[1].sum())(x)
        if self.how == "jacrev of jacfwd":
            return func.jacrev(func.jacfwd(lambda p: self.net(p).sum(0)))(x)
        params = dict(self.net.named_parameters())
        tangents = {name: torch.ones_like(p) for name, p in params.items()}
        if self.how == "grad of jvp in parameter space":
            def along(q):
                return func.jvp(lambda p: func.functional_call(self.net, p, (x,)), (q,), (tangents,))[1]

            return func.grad(lambda q: along(q).pow(2).sum())(params)
        return func.jvp(lambda p: func.functional_call(self.net, p, (x,)), (params,), (tangents,))


class ForwardModeRecurrent(nn.Module):
    """Forward-mode AD through recurrent layers on 2 sequences of 5 steps of 16 features: ``jvp`` along the input of a
    GRU (16 -> 8), an RNN, a two-layer bidirectional GRU and an LSTM (the CPU's oneDNN LSTM has no forward-mode AD: run
    it with torch.backends.mkldnn disabled), of a GRU given an initial state that carries a tangent or is constant,
    of a GRU in parameter space (its weights carry the tangents), and of a GRU cell and an LSTM cell on the first
    step, the LSTM cell given (h, c) carrying tangents; a two-layer LSTM with a projection (proj_size=4) along its
    input, and along its initial state alone."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.layer = {"rnn": nn.RNN(16, 8, batch_first=True), "lstm": nn.LSTM(16, 8, batch_first=True),
                      "bidirectional": nn.GRU(16, 8, num_layers=2, bidirectional=True, batch_first=True),
                      "gru cell": nn.GRUCell(16, 8), "lstm cell": nn.LSTMCell(16, 8),
                      "lstm cell given its state": nn.LSTMCell(16, 8),
                      "projected lstm": nn.LSTM(16, 8, num_layers=2, proj_size=4, batch_first=True),
                      "projected lstm along its initial state": nn.LSTM(16, 8, num_layers=2, proj_size=4,
                                                                        batch_first=True)}.get(
            how, nn.GRU(16, 8, batch_first=True))

    def forward(self, x):
        from torch import func

        one, state = torch.ones_like(x), torch.full((1, 2, 8), 0.5, device=x.device)
        if self.how == "initial state with a tangent":
            return func.jvp(lambda p, h: self.layer(p, h)[0], (x, state), (one, torch.ones_like(state)))
        if self.how == "constant initial state":
            return func.jvp(lambda p: self.layer(p, state)[0], (x,), (one,))
        if self.how == "parameters":
            params = dict(self.layer.named_parameters())
            tangents = {name: torch.ones_like(p) for name, p in params.items()}
            return func.jvp(lambda q: func.functional_call(self.layer, q, (x,))[0], (params,), (tangents,))
        if self.how in ("gru cell", "lstm cell"):
            return func.jvp(lambda p: self.layer(p[:, 0]), (x,), (one,))
        if self.how == "projected lstm along its initial state":  # (x constant: h_0 and c_0 carry the tangents)
            h, c = torch.full((2, 2, 4), 0.5, device=x.device), torch.full((2, 2, 8), 0.5, device=x.device)
            return func.jvp(lambda a, b: self.layer(x, (a, b))[0], (h, c), (torch.ones_like(h), torch.ones_like(c)))
        if self.how == "lstm cell given its state":
            h, c = state[0], state[0] + 1
            return func.jvp(lambda p, a, b: self.layer(p[:, 0], (a, b))[0], (x, h, c),
                            (one, torch.ones_like(h), torch.ones_like(c)))
        return func.jvp(lambda p: self.layer(p)[0], (x,), (one,))


class ForwardModeAttention(nn.Module):
    """jvp through scaled_dot_product_attention on 4-d q, k, v (2 heads of 8 over 5 tokens) after a linear layer: on
    the CPU PyTorch picks its flash kernel, which has no forward-mode AD, unless the forward opens
    sdpa_kernel(SDPBackend.MATH) (``math``)."""

    def __init__(self, math=False):
        super().__init__()
        self.math = math
        self.qkv = nn.Linear(16, 48)

    def forward(self, x):
        from torch import func
        from torch.nn.attention import SDPBackend, sdpa_kernel

        def attend(p):
            q, k, v = self.qkv(p).view(p.shape[0], 5, 3, 2, 8).permute(2, 0, 3, 1, 4)
            return F.scaled_dot_product_attention(q, k, v)

        with sdpa_kernel(SDPBackend.MATH) if self.math else contextlib.nullcontext():
            return func.jvp(attend, (x,), (torch.ones_like(x),))[1]


class AttentionTangents(nn.Module):
    """Forward-mode AD (``how``: jvp, jacfwd, hessian, or a jvp in parameter space) through attention whose operands
    do not all carry a tangent (``what``): cross-attention of the input over a learned memory ("cross"), the memory
    attending over the input ("memory"; with add_bias_kv, add_zero_attn, kdim 12 and vdim 10: "kdim"), the functional
    form ("functional"), a learned position bias given as a float attn_mask ("mask"); SDPA whose value alone carries
    one ("value") or whose float attn_mask does ("sdpa mask"). Under the math kernel."""

    def __init__(self, what, how):
        super().__init__()
        self.what, self.how = what, how
        kdim = 12 if what == "kdim" else 16
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True, add_bias_kv=what == "kdim",
                                         add_zero_attn=what == "kdim", kdim=kdim, vdim=10 if what == "kdim" else 16)
        self.memory, self.keys = nn.Parameter(torch.randn(1, 4, 16)), nn.Parameter(torch.randn(1, 4, kdim))

    def attend(self, x):
        m, what = self.memory, self.what
        if what == "cross":
            return self.mha(x, m, m, need_weights=False)[0]
        if what in ("memory", "kdim"):
            return self.mha(m, self.keys[:, :3] + x[..., :self.keys.shape[-1]], x[..., :self.mha.vdim],
                            need_weights=False)[0]
        if what == "functional":
            a, t = self.mha, m.transpose(0, 1)
            return F.multi_head_attention_forward(x.transpose(0, 1), t, t, 16, 2, a.in_proj_weight, a.in_proj_bias,
                                                  None, None, False, 0.0, a.out_proj.weight, a.out_proj.bias,
                                                  training=False, need_weights=False)[0]
        if what == "mask":
            return self.mha(m[:, :3], m, m, attn_mask=x[0, :, :4], need_weights=False)[0]
        heads = m.view(1, 4, 2, 8).transpose(1, 2)
        if what == "value":
            return F.scaled_dot_product_attention(heads[:, :, :3], heads[:, :, :3], x.view(1, 3, 2, 8).transpose(1, 2))
        return F.scaled_dot_product_attention(heads[:, :, :3], heads, heads, attn_mask=x[0, :, :4])  # ("sdpa mask")

    def forward(self, x, inner=False):
        from torch import func
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(SDPBackend.MATH):
            if inner:
                return self.attend(x)
            if self.how == "jvp":
                return func.jvp(self.attend, (x,), (torch.ones_like(x),))[1]
            if self.how == "jacfwd":
                return func.jacfwd(self.attend)(x)
            if self.how == "hessian":
                return func.hessian(lambda p: self.attend(p).sum())(x)
            params = {k: v.detach() for k, v in self.named_parameters()}
            loss = lambda p: func.functional_call(self, p, (x,), {"inner": True}).sum()  # noqa: E731
            return func.jvp(loss, (params,), ({k: torch.ones_like(v) for k, v in params.items()},))[1]


class ChainTangents(nn.Module):
    """Forward-mode AD (``how``: jvp, jacfwd, hessian) through chains of products some of whose operands are learned
    matrices without tangents (``what``): multi_dot of the input by three ("first"; PyTorch multiplies the three
    first, without a tangent), of two by the input ("last"), and einsums of three and four operands."""

    def __init__(self, what, how):
        super().__init__()
        self.what, self.how = what, how
        self.B, self.C, self.D = (nn.Parameter(torch.randn(*s)) for s in ((8, 6), (6, 5), (5, 2)))

    def chain(self, x):
        if self.what == "first":
            return torch.linalg.multi_dot([x, self.B, self.C, self.D])
        if self.what == "last":
            return torch.linalg.multi_dot([self.C.T, self.B.T, x.T])
        if self.what == "einsum":
            return torch.einsum("ij,jk,kl->il", self.B.T, self.B, x.T[:6])
        return torch.einsum("ij,jk,kl,lm->im", self.C.T, self.B.T, x.T, x)  # ("einsum of four")

    def forward(self, x):
        from torch import func

        if self.how == "jvp":
            return func.jvp(self.chain, (x,), (torch.ones_like(x),))[1]
        if self.how == "jacfwd":
            return func.jacfwd(self.chain)(x)
        return func.hessian(lambda p: self.chain(p).sum())(x)


class SubsetTangents(nn.Module):
    """Forward-mode AD in parameter space over some of a network's parameters (``which``: names ending so), the rest
    held (functional_call): a jvp, jacfwd, and a Hessian-vector product, through a linear-tanh-linear MLP and a
    convolution with a grouped one. A bias carrying jacfwd's basis batches no product of its layer's weight."""

    def __init__(self, which, how, conv=False):
        super().__init__()
        self.which, self.how = which, how
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Tanh(), nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(),
                                 nn.Linear(4 * 2 * 2, 3)) if conv else \
            nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))

    def forward(self, x):
        from torch import func

        params = {k: v.detach() for k, v in self.net.named_parameters()}
        chosen = {k: v for k, v in params.items() if k.endswith(self.which)}
        held = {k: v for k, v in params.items() if k not in chosen}
        loss = lambda p: func.functional_call(self.net, {**held, **p}, (x,)).pow(2).sum()  # noqa: E731
        ones = {k: torch.ones_like(v) for k, v in chosen.items()}
        if self.how == "jvp":
            return func.jvp(loss, (chosen,), (ones,))[1]
        if self.how == "hvp":
            return torch.cat([g.flatten() for g in func.jvp(func.grad(loss), (chosen,), (ones,))[1].values()])
        return torch.cat([g.flatten() for g in func.jacfwd(loss)(chosen).values()])


class NestedPINN(nn.Module):
    """Derivatives of derivatives by torch.func, through a 2-16-16-1 tanh MLP: ``vmap(grad(grad(u)))``, a third
    derivative, ``grad`` of a summed squared gradient without vmap, ``vmap(jacrev(jacrev(u)))`` and a Laplacian
    as the trace of ``jacrev(grad(u))``."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        from torch import func

        def u(p):
            return self.net(p).squeeze(-1)

        if self.how == "grad of grad":
            return func.vmap(func.grad(lambda p: func.grad(u)(p)[0]))(x)
        if self.how == "third":
            return func.vmap(func.grad(lambda p: func.grad(lambda q: func.grad(u)(q)[0])(p)[0]))(x)
        if self.how == "unbatched":
            return func.grad(lambda p: func.grad(lambda q: u(q).sum())(p).pow(2).sum())(x)
        if self.how == "jacrev of jacrev":
            return func.vmap(func.jacrev(func.jacrev(u)))(x)
        return self.net(x), func.vmap(lambda p: func.jacrev(func.grad(u))(p).diagonal().sum())(x)


class PerSampleGradients(nn.Module):
    """torch.func with a model's parameters swapped in by functional_call, as PyTorch's tutorials write it: per-sample
    gradients (``vmap(grad(loss), in_dims=(None, 0, 0))``), the empirical neural tangent kernel (per-sample
    jacobians by ``vmap(jacrev(f))``, contracted) and ``jvp`` along a direction in parameter space, of a small CNN
    on 14 x 14 images."""

    def __init__(self, how="grad"):
        super().__init__()
        self.how = how
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                                 nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        from torch import func

        params = {k: v.detach() for k, v in self.net.named_parameters()}

        def f(p, xi):
            return func.functional_call(self.net, p, (xi.unsqueeze(0),)).squeeze(0)

        if self.how == "grad":
            targets = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            grads = func.vmap(func.grad(lambda p, xi, t: F.cross_entropy(f(p, xi), t)), (None, 0, 0))(params, x,
                                                                                                         targets)
            return torch.cat([g.flatten(1) for g in grads.values()], 1)
        if self.how == "ntk":
            jacobians = [j.flatten(2) for j in func.vmap(func.jacrev(f), (None, 0))(params, x).values()]
            return sum(torch.einsum("Naf,Mbf->NMab", j, j) for j in jacobians)
        tangents = {k: torch.ones_like(v) for k, v in params.items()}
        return func.jvp(lambda p: func.functional_call(self.net, p, (x,)), (params,), (tangents,))[1]


class FunctionalMAML(nn.Module):
    """MAML's inner step written with functional_call: fast weights W - 0.1 ∂L/∂W from 5 support points, the loss on
    the others through them (second order: the inner gradient made with create_graph=True; or first order)."""

    def __init__(self, first_order=False):
        super().__init__()
        self.first_order = first_order
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, x):
        from torch import func

        params = dict(self.net.named_parameters())
        loss = func.functional_call(self.net, params, (x[:5],)).pow(2).mean()
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=not self.first_order)
        fast = {k: v - 0.1 * g for (k, v), g in zip(params.items(), grads)}
        return func.functional_call(self.net, fast, (x[5:],)).pow(2).mean()


class InPlaceResidual(nn.Module):
    """A residual block written as torchvision's ResNets write it (``ReLU(inplace=True)``, ``out += identity``, the
    block's ReLU module called twice), after a stem convolution, in eval mode, on 2x3x8x8, differentiated in the
    forward: a saliency map ∂y/∂x (``saliency``), and a Hessian-vector product along the input (``hvp``, jvp of
    grad); the training step differentiates the saliency's gradient again (create_graph=True)."""

    def __init__(self, how="saliency"):
        super().__init__()
        self.how = how
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.conv1, self.bn1 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)

    def block(self, x):
        identity = self.relu(self.stem(x))
        out = self.relu(self.bn1(self.conv1(identity)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)

    def forward(self, x):
        from torch import func

        if self.how == "hvp":
            return func.jvp(func.grad(lambda p: self.block(p).pow(2).sum()), (x,), (torch.ones_like(x),))[1]
        x = x.detach().requires_grad_(True)
        return torch.autograd.grad(self.block(x).pow(2).sum(), x, create_graph=True)[0]


class StridedPenalty(nn.Module):
    """A gradient penalty ((‖∂D/∂x‖ - 1)², trained) of a critic whose 7x7 stride-2 convolution (padding 3, on 32x32)
    leaves input rows over, so PyTorch's double backward computes ∂W's convolution at 8x8 and narrows it to 7x7; with
    ``frozen``, a batch norm in eval mode after it (F.batch_norm(training=False), as a frozen backbone's), whose
    backward differentiated again sends no gradient to its input."""

    def __init__(self, frozen=False):
        super().__init__()
        self.frozen = frozen
        self.conv, self.head = nn.Conv2d(3, 4, 7, 2, 3), nn.Linear(4 * 16 * 16, 1)
        self.scale, self.shift = nn.Parameter(torch.ones(4)), nn.Parameter(torch.zeros(4))
        self.register_buffer("mean", torch.zeros(4))
        self.register_buffer("var", torch.ones(4))

    def forward(self, x):
        x = x.detach().requires_grad_(True)
        h = self.conv(x)
        if self.frozen:
            h = F.batch_norm(h, self.mean, self.var, self.scale, self.shift, training=False)
        g = torch.autograd.grad(self.head(h.flatten(1)).sum(), x, create_graph=True)[0]
        return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


class PermutedNormPenalty(nn.Module):
    """A gradient penalty ((‖∂D/∂x‖ - 1)², trained) of a critic with ConvNeXt's head: a LayerNorm over channels
    written as torchvision's LayerNorm2d (permute, layer_norm, permute back: a channels-last output), then
    AdaptiveAvgPool2d(1), whose mean on a channels-last input PyTorch restrides in place (as_strided_), so the
    gradient's operations copy into an as_strided view (a CopySlices) that the step differentiates again."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(3, 8, 3), nn.LayerNorm(8)
        self.pool, self.head = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 1)

    def forward(self, x):
        x = x.detach().requires_grad_(True)
        h = self.norm(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        g = torch.autograd.grad(self.head(self.pool(h).flatten(1)).sum(), x, create_graph=True)[0]
        return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


class WGANGP(nn.Module):
    """A WGAN-GP critic's loss: D(fake) - D(real) + 10 (‖∂D(x̂)/∂x̂‖ - 1)² at x̂ between a real and a fake image, the
    critic strided convolutions, LayerNorm and LeakyReLU (the penalty's gradient made with create_graph=True, so
    the step differentiates it again)."""

    def __init__(self):
        super().__init__()
        self.critic = nn.Sequential(nn.Conv2d(3, 16, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(16, 32, 4, 2, 1),
                                    nn.LayerNorm([32, 4, 4]), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(512, 1))

    def forward(self, x):
        real, fake = x[: x.shape[0] // 2], x[x.shape[0] // 2:]
        eps = torch.rand(real.shape[0], 1, 1, 1, device=x.device)
        mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
        g = torch.autograd.grad(self.critic(mixed).sum(), mixed, create_graph=True)[0]
        penalty = ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
        return self.critic(fake).mean() - self.critic(real).mean() + 10 * penalty


class AutogradFunctional(nn.Module):
    """torch.autograd.functional in a forward, of a 3-16-2 tanh MLP over 5 points: jacobian and hessian (one
    vector-Jacobian product a row, or vectorize=True: one call with is_grads_batched), hvp, vjp and jvp (each with
    create_graph=True); and two forwards that differentiate by hand: three Langevin steps of an energy (gradients
    without create_graph) and sliced score matching's v·∇(v·s(x))."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, x):
        from torch.autograd import functional

        def energy(p):
            return self.net(p).sum()

        calls = {"jacobian": lambda: functional.jacobian(self.net, x, create_graph=True),
                 "jacobian vectorized": lambda: functional.jacobian(self.net, x, create_graph=True, vectorize=True),
                 "hessian": lambda: functional.hessian(energy, x, create_graph=True),
                 "hessian vectorized": lambda: functional.hessian(energy, x, create_graph=True, vectorize=True),
                 "hvp": lambda: functional.hvp(energy, x, torch.ones_like(x), create_graph=True)[1],
                 "vjp": lambda: functional.vjp(self.net, x, torch.ones(x.shape[0], 2, device=x.device),
                                               create_graph=True)[1],
                 "jvp": lambda: functional.jvp(self.net, x, torch.ones_like(x), create_graph=True)[1]}
        if self.how in calls:
            return calls[self.how]()
        if self.how == "langevin":
            y = x.detach()
            for _ in range(3):
                y = y.requires_grad_(True)
                y = (y - 0.1 * torch.autograd.grad(energy(y), y)[0]).detach()
            return self.net(y)
        x = x.requires_grad_(True)  # (sliced score matching, v all ones)
        score = self.net(x)[:, :1].expand(-1, 3) * 1.0
        v = torch.ones_like(x)
        gv = torch.autograd.grad((score * v).sum(), x, create_graph=True)[0]
        return ((gv * v).sum(-1) + 0.5 * (score * v).sum(-1) ** 2).mean()


class Ensemble(nn.Module):
    """Model ensembling with torch.func: k members' stacked weights, one functional_call vmapped over them."""

    def __init__(self, k=4):
        super().__init__()
        self.members = nn.ModuleList(nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1)) for _ in range(k))
        self.base = [nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1)).to("meta")]  # (not a submodule)

    def forward(self, x):
        from torch import func

        params, buffers = func.stack_module_state(list(self.members))
        return func.vmap(lambda p, b: func.functional_call(self.base[0], (p, b), (x,)))(params, buffers)


@torch.jit.script
def scripted_swish_gate(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """A fused gate written as older repositories write Swish: a TorchScript function, run by its interpreter."""
    h = x @ w
    return h * torch.sigmoid(h)


class ScriptedGate(nn.Module):
    """A linear layer, then a @torch.jit.script function with a product of its own."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.w = nn.Parameter(torch.randn(16, 4))

    def forward(self, x):
        return scripted_swish_gate(self.fc(x), self.w)
