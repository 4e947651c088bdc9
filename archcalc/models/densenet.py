"""DenseNet-BC (Huang et al., CVPR 2017) as data: the table of seed 002 and one interpreter.

Growth rate k = 32; each layer is BN-ReLU-1x1 conv (4k) - BN-ReLU-3x3 conv (k) on the
concatenation of every earlier feature map of its block; a transition is BN-ReLU-1x1 conv
(compression 0.5) and a 2x2 average pool, stride 2; the stem is a 7x7 conv, stride 2, with 2k
channels and a 3x3 max pool, stride 2; the head is BN-ReLU, 7x7 global average pool, FC.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

BLOCKS: dict[int, tuple[int, int, int, int]] = {
    121: (6, 12, 24, 16),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
    264: (6, 12, 64, 48),
}


class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(c_in, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    def __init__(self, layers: int, c_in: int, growth_rate: int, bn_size: int) -> None:
        super().__init__({f"denselayer{i + 1}": DenseLayer(c_in + i * growth_rate, growth_rate, bn_size)
                          for i in range(layers)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.pool = nn.AvgPool2d(2, stride=2)


class DenseNet(nn.Module):
    def __init__(self, depth: int = 121, growth_rate: int = 32, bn_size: int = 4, compression: float = 0.5,
                 num_classes: int = 1000, blocks: Sequence[int] | None = None) -> None:
        super().__init__()
        if blocks is None:
            if depth not in BLOCKS:
                raise ValueError(f"depth must be one of {', '.join(map(str, BLOCKS))}, got {depth}")
            blocks = BLOCKS[depth]
        if not 0 < compression <= 1:
            raise ValueError(f"compression must be in (0, 1], got {compression}")
        channels = 2 * growth_rate
        stages: dict[str, nn.Module] = {
            "conv0": nn.Conv2d(3, channels, 7, stride=2, padding=3, bias=False),
            "norm0": nn.BatchNorm2d(channels),
            "relu0": nn.ReLU(inplace=True),
            "pool0": nn.MaxPool2d(3, stride=2, padding=1),
        }
        for i, layers in enumerate(blocks):
            stages[f"denseblock{i + 1}"] = DenseBlock(layers, channels, growth_rate, bn_size)
            channels += layers * growth_rate
            if i != len(blocks) - 1:
                reduced = int(channels * compression)
                stages[f"transition{i + 1}"] = Transition(channels, reduced)
                channels = reduced
        stages["norm5"] = nn.BatchNorm2d(channels)
        stages["relu5"] = nn.ReLU(inplace=True)
        self.features = nn.Sequential(OrderedDict(stages))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)
