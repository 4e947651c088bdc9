"""VGG (Simonyan & Zisserman, ICLR 2015) as data: Table 1's columns and one interpreter.

A configuration lists, in order, a 3x3 conv's output channels (64), a 1x1 conv ('1x1-256',
column C), a 2x2 max-pool ('M') or local response normalisation ('LRN', column A-LRN).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from archcalc.layers.attention import ChannelAttention

CONFIGS: dict[str, list] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, "1x1-256", "M", 512, 512, "1x1-512", "M",
          512, 512, "1x1-512", "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
    # Seed 001's CIFAR-10 VGG-16 (deeplearningzerotoall lab-10-5-2): 13 convs, 3 max-pools -> 512x4x4.
    "cifar16": [32, 32, "M", 64, 64, 128, 128, 128, "M", 256, 256, 256, 512, 512, 512, "M"],
    # The assignment's VGG-19 for CIFAR-10 (16 convs, 3 max-pools): E's widths with the lab's pool
    # positions. The seed gives no cfg, so this is archcalc's reading of "cfg adapted to VGG 19".
    "cifar19": [64, 64, "M", 128, 128, 256, 256, 256, 256, "M", 512, 512, 512, 512, 512, 512, 512, 512, "M"],
    # Seed 001's 'custom' cfg, built with batch norm: ends at 256x4x4.
    "custom": [64, 64, 64, "M", 128, 128, 128, "M", 256, 256, 256, "M"],
}


def make_layers(cfg: Sequence, batch_norm: bool = False, in_channels: int = 3,
                attention: dict | None = None) -> nn.Sequential:
    """The seed's make_layers: conv (+ BN) + ReLU per number, max-pool per 'M'; SE after each ReLU if asked."""
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif v == "LRN":  # AlexNet's normalisation, as VGG's A-LRN uses it
            layers.append(nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0))
        else:
            kernel, width = (1, int(v.split("-")[1])) if isinstance(v, str) else (3, int(v))
            layers.append(nn.Conv2d(in_channels, width, kernel_size=kernel, padding=kernel // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            if attention:
                layers.append(ChannelAttention(width, **attention))
            in_channels = width
    return nn.Sequential(*layers)


def _out_channels(cfg: Sequence, in_channels: int = 3) -> int:
    widths = [int(v.split("-")[1]) if isinstance(v, str) and v.startswith("1x1") else v
              for v in cfg if v not in ("M", "LRN")]
    return widths[-1] if widths else in_channels


class VGG(nn.Module):
    """features -> (adaptive avg-pool to 7x7) -> FC-4096 -> FC-4096 -> FC-classes, with dropout."""

    def __init__(self, cfg: str = "D", batch_norm: bool = False, num_classes: int = 1000,
                 pool_to: int | None = 7, spatial: int = 7, classifier_in: int | None = None,
                 attention: str | None = None, reduction: int = 16) -> None:
        super().__init__()
        if cfg not in CONFIGS:
            raise ValueError(f"cfg must be one of {', '.join(CONFIGS)}, got {cfg!r}")
        layers = CONFIGS[cfg]
        options = {"kind": attention, "reduction": reduction} if attention else None
        self.features = make_layers(layers, batch_norm, attention=options)
        self.avgpool = nn.AdaptiveAvgPool2d((pool_to, pool_to)) if pool_to else None
        side = pool_to or spatial
        features = classifier_in or _out_channels(layers) * side * side
        self.classifier = nn.Sequential(
            nn.Linear(features, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.avgpool is not None:
            x = self.avgpool(x)
        x = x.view(x.size(0), -1)
        return self.classifier(x)


def cifar(cfg: str = "cifar16", num_classes: int = 10, batch_norm: bool = False,
          classifier_in: int | None = None) -> VGG:
    """Seed 001's CIFAR-10 VGG: no adaptive pooling, classifier from the 4x4 feature map."""
    return VGG(cfg, batch_norm, num_classes, pool_to=None, spatial=4, classifier_in=classifier_in)
