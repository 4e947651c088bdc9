"""Vision Transformer (Dosovitskiy et al., ICLR 2021), laid out module for module as torchvision's
VisionTransformer, so that its published figures can be checked: ViT-B/16 86,567,656 parameters
and 17.564 G multiply-adds at 224x224.

Configurations (Table 1 of the paper), keyed by the paper's names:
  B (Base)   12 layers, width D = 768,  MLP 3072, 12 heads
  L (Large)  24 layers, width D = 1024, MLP 4096, 16 heads
  H (Huge)   32 layers, width D = 1280, MLP 5120, 16 heads
An image of side s cut into P x P patches gives (s/P)² tokens and a class token. Each encoder layer:
LayerNorm, multi-head self-attention, residual; LayerNorm, MLP (Linear D -> MLP, GELU, Linear), residual.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

import torch
from torch import nn

from archcalc.errors import argument_option

CONFIGS = {  # name -> (layers, width D, MLP size, heads)
    "B": (12, 768, 3072, 12),
    "L": (24, 1024, 4096, 16),
    "H": (32, 1280, 5120, 16),
}

LayerNorm = partial(nn.LayerNorm, eps=1e-6)


class MLPBlock(nn.Sequential):
    def __init__(self, width: int, mlp: int, dropout: float):
        super().__init__(nn.Linear(width, mlp), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp, width), nn.Dropout(dropout))


class EncoderBlock(nn.Module):
    def __init__(self, heads: int, width: int, mlp: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.ln_1 = LayerNorm(width)
        self.self_attention = nn.MultiheadAttention(width, heads, dropout=attention_dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = LayerNorm(width)
        self.mlp = MLPBlock(width, mlp, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = self.dropout(y) + x
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, tokens: int, layers: int, heads: int, width: int, mlp: int, dropout: float,
                 attention_dropout: float):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, tokens, width).normal_(std=0.02))
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(heads, width, mlp, dropout, attention_dropout)) for i in range(layers)))
        self.ln = LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(nn.Module):
    def __init__(self, config: str = "B", patch_size: int = 16, image_size: int = 224, num_classes: int = 1000,
                 dropout: float = 0.0, attention_dropout: float = 0.0):
        super().__init__()
        if config not in CONFIGS:
            raise ValueError(f"config must be one of {', '.join(CONFIGS)}, got {config!r}")
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        layers, width, mlp, heads = CONFIGS[config]
        self.patch_size, self.image_size, self.hidden_dim = patch_size, image_size, width
        self.conv_proj = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, width))
        tokens = (image_size // patch_size) ** 2 + 1
        self.encoder = Encoder(tokens, layers, heads, width, mlp, dropout, attention_dropout)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(width, num_classes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if h != self.image_size or w != self.image_size:
            raise ValueError(f"this ViT was built for {self.image_size}x{self.image_size} images (its position "
                             f"embedding has one row per patch); give "
                             f"{argument_option('image_size', h)} for {h}x{w}")
        p = self.patch_size
        x = self.conv_proj(x).reshape(n, self.hidden_dim, (h // p) * (w // p)).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        return self.heads(self.encoder(x)[:, 0])
