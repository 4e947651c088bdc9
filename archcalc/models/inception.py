"""BN-Inception (Ioffe & Szegedy, ICML 2015, Figure 5) as data, with optional SE blocks.

Each module row: (#1x1, #3x3 reduce, #3x3, #double-3x3 reduce, #double-3x3, pool, pool proj, stride).
A stride-2 module (3c, 4e) has no 1x1 branch, puts the stride on the last 3x3 of each branch and
passes its max-pooled input through. Every convolution is followed by batch norm and ReLU. The
first layer is a plain 7x7 convolution (the paper used a separable one with depth multiplier 8;
the common BN-Inception implementations, whose counts SENet quotes, use a plain one).
"""

from __future__ import annotations

import torch
from torch import nn

from archcalc.layers.attention import ChannelAttention

MODULES: dict[str, tuple[int, int, int, int, int, str, int, int]] = {
    "3a": (64, 64, 64, 64, 96, "avg", 32, 1),
    "3b": (64, 64, 96, 64, 96, "avg", 64, 1),
    "3c": (0, 128, 160, 64, 96, "max", 0, 2),
    "4a": (224, 64, 96, 96, 128, "avg", 128, 1),
    "4b": (192, 96, 128, 96, 128, "avg", 128, 1),
    "4c": (160, 128, 160, 128, 160, "avg", 128, 1),
    "4d": (96, 128, 192, 160, 192, "avg", 128, 1),
    "4e": (0, 128, 192, 192, 256, "max", 0, 2),
    "5a": (352, 192, 320, 160, 224, "avg", 128, 1),
    "5b": (352, 192, 320, 192, 224, "max", 128, 1),
}


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class BNInceptionModule(nn.Module):
    def __init__(self, c_in: int, n1: int, r3: int, n3: int, rd: int, nd: int, pool: str, proj: int,
                 stride: int, attention: dict | None = None) -> None:
        super().__init__()
        self.branch1 = conv_bn(c_in, n1, 1) if n1 else None
        self.branch3 = nn.Sequential(conv_bn(c_in, r3, 1), conv_bn(r3, n3, 3, stride))
        self.branch_d3 = nn.Sequential(conv_bn(c_in, rd, 1), conv_bn(rd, nd, 3), conv_bn(nd, nd, 3, stride))
        pooling = nn.AvgPool2d(3, 1, 1) if pool == "avg" else nn.MaxPool2d(3, stride, 1)
        self.branch_pool = nn.Sequential(pooling, conv_bn(c_in, proj, 1)) if proj else pooling
        self.out_channels = n1 + n3 + nd + (proj or c_in)
        self.attention = ChannelAttention(self.out_channels, **attention) if attention else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch3(x), self.branch_d3(x), self.branch_pool(x)]
        if self.branch1 is not None:
            branches.insert(0, self.branch1(x))
        out = torch.cat(branches, 1)
        return self.attention(out) if self.attention is not None else out


class BNInception(nn.Module):
    def __init__(self, num_classes: int = 1000, attention: str | None = None, reduction: int = 16) -> None:
        super().__init__()
        options = {"kind": attention, "reduction": reduction} if attention else None
        self.conv1 = conv_bn(3, 64, 7, stride=2)
        self.pool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2_reduce = conv_bn(64, 64, 1)
        self.conv2 = conv_bn(64, 192, 3)
        self.pool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        channels = 192
        for name, row in MODULES.items():
            module = BNInceptionModule(channels, *row, attention=options)
            setattr(self, f"inception_{name}", module)
            channels = module.out_channels
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(self.conv2_reduce(x)))
        for name in MODULES:
            x = getattr(self, f"inception_{name}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))
