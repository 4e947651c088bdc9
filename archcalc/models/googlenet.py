"""GoogLeNet / Inception v1 (Szegedy et al., CVPR 2015), Table 1 of the paper, as data.

Each row: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj). The 5x5 branches are really
5x5 (torchvision uses 3x3 there). The auxiliary classifiers after 4a and 4d exist for training
only: the network is built without them (the paper's inference network, 6.8 M parameters);
aux_logits=True builds them (they then run in training mode), and aux_in_count=True runs them
in the analysis too.
"""

from __future__ import annotations

import torch
from torch import nn

INCEPTION: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def conv_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2), nn.ReLU(inplace=True))


class Inception(nn.Module):
    def __init__(self, c_in: int, n1x1: int, n3x3red: int, n3x3: int, n5x5red: int, n5x5: int, pool_proj: int):
        super().__init__()
        self.branch1 = conv_relu(c_in, n1x1, 1)
        self.branch2 = nn.Sequential(conv_relu(c_in, n3x3red, 1), conv_relu(n3x3red, n3x3, 3))
        self.branch3 = nn.Sequential(conv_relu(c_in, n5x5red, 1), conv_relu(n5x5red, n5x5, 5))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_relu(c_in, pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class AuxClassifier(nn.Module):
    """5x5 average pool, stride 3 -> 1x1 conv 128 -> FC 1024 -> dropout 70% -> FC classes."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv = conv_relu(c_in, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


def _width(name: str) -> int:
    n1, _, n3, _, n5, pool = INCEPTION[name]
    return n1 + n3 + n5 + pool


class GoogLeNet(nn.Module):
    def __init__(self, num_classes: int = 1000, aux_logits: bool = False, aux_in_count: bool = False) -> None:
        super().__init__()
        self.aux_in_count = aux_in_count
        self.conv1 = conv_relu(3, 64, 7, stride=2)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.norm1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv2 = conv_relu(64, 64, 1)
        self.conv3 = conv_relu(64, 192, 3)
        self.norm2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        widths = {"3a": 192}
        order = list(INCEPTION)
        for previous, name in zip(order, order[1:]):
            widths[name] = _width(previous)
        for name in order:
            setattr(self, f"inception{name}", Inception(widths[name], *INCEPTION[name]))
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.maxpool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.aux1 = AuxClassifier(_width("4a"), num_classes) if aux_logits else None
        self.aux2 = AuxClassifier(_width("4d"), num_classes) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(_width("5b"), num_classes)

    def forward(self, x: torch.Tensor):
        x = self.maxpool1(self.conv1(x))
        x = self.norm1(x)
        x = self.norm2(self.conv3(self.conv2(x)))
        x = self.maxpool2(x)
        x = self.inception3b(self.inception3a(x))
        x = self.maxpool3(x)
        x = self.inception4a(x)
        run_aux = self.aux1 is not None and (self.training or self.aux_in_count)
        aux1 = self.aux1(x) if run_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if run_aux else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        return (x, aux2, aux1) if run_aux else x
