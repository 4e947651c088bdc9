"""ResNet (He et al., CVPR 2016) as data: the paper's Table 1 plus one interpreter.

Two places for the downsampling stride in a bottleneck block:
  stride_on="1x1": on the first 1x1 conv, as the paper (and Caffe) built it; reproduces Table 1's
                   FLOPs (3.8, 7.6, 11.3 x 10^9) and SENet's re-implementation (3.86, 7.58, 11.30).
  stride_on="3x3": on the 3x3 conv, as torchvision (ResNet "v1.5"): more MACs (4.1 G for ResNet-50).
Basic blocks have no 1x1 conv, so ResNet-18/34 are the same either way.
Options give the CIFAR-10 versions of seed 001 (3x3 stem, no max-pool), SE or the seed-004
attention kinds in every block, and ResNeXt's grouped 3x3 convs (cardinality x width).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from archcalc.layers.attention import ChannelAttention

# Table 1: blocks per stage conv2_x .. conv5_x.
DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def conv3x3(c_in: int, c_out: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 attention: dict | None = None, **_: object) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.attention = ChannelAttention(planes, **attention) if attention else None
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.attention is not None:
            out = self.attention(out)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 attention: dict | None = None, groups: int = 1, width_per_group: int = 64,
                 stride_on: str = "1x1") -> None:
        super().__init__()
        width = int(planes * (width_per_group / 64.0)) * groups
        s1, s3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        self.conv1 = conv1x1(inplanes, width, s1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, s3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.attention = ChannelAttention(planes * self.expansion, **attention) if attention else None
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.attention is not None:
            out = self.attention(out)
        return self.relu(out + identity)


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    def __init__(self, depth: int = 50, num_classes: int = 1000, stride_on: str = "1x1", stem: str = "imagenet",
                 planes: Sequence[int] = (64, 128, 256, 512), strides: Sequence[int] = (1, 2, 2, 2),
                 stem_channels: int = 64, groups: int = 1, width_per_group: int = 64,
                 attention: str | None = None, reduction: int = 16, zero_init_residual: bool = False) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {', '.join(map(str, DEPTHS))}, got {depth}")
        if stride_on not in ("1x1", "3x3"):
            raise ValueError(f"stride_on must be '1x1' or '3x3', got {stride_on!r}")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        kind, counts = DEPTHS[depth]
        block = _BLOCKS[kind]
        self.inplanes = stem_channels
        if stem == "imagenet":  # conv1: 7x7, 64, stride 2; 3x3 max pool, stride 2
            self.conv1 = nn.Conv2d(3, stem_channels, 7, stride=2, padding=3, bias=False)
        else:  # seed 001's CIFAR-10 stem: 3x3 conv, stride 1, no max-pool
            self.conv1 = nn.Conv2d(3, stem_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else None
        options = {"groups": groups, "width_per_group": width_per_group, "stride_on": stride_on,
                   "attention": {"kind": attention, "reduction": reduction} if attention else None}
        self.layer1 = self._make_layer(block, planes[0], counts[0], strides[0], options)
        self.layer2 = self._make_layer(block, planes[1], counts[1], strides[1], options)
        self.layer3 = self._make_layer(block, planes[2], counts[2], strides[2], options)
        self.layer4 = self._make_layer(block, planes[3], counts[3], strides[3], options)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[3] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:  # seed 001: the last BN of each residual branch starts at zero
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, block, planes: int, blocks: int, stride: int, options: dict) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, **options)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, **options) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def cifar(depth: int, num_classes: int = 10, **kwargs) -> ResNet:
    """Seed 001's CIFAR-10 ResNet: 3x3 stem to 16 channels, no max-pool, planes 32/64/128/256, strides 1/1/2/2."""
    kwargs.setdefault("stride_on", "3x3")
    return ResNet(depth, num_classes, stem="cifar", planes=(32, 64, 128, 256), strides=(1, 1, 2, 2),
                  stem_channels=16, **kwargs)
