"""Inception-ResNet-v2 (Szegedy et al., AAAI 2017) at 299x299, with optional SE blocks.

Two readings of the network exist, and both are data here:
  "paper": Figures 3, 7, 15-19 of the paper: the 384-channel stem, 5 x A, Reduction-A
           (k, l, m, n = 256, 256, 384, 384), 10 x B, Reduction-B, 5 x C.
  "slim":  the TF-slim implementation the pretrained weights come from: a 192-channel stem and
           Mixed_5b (320 channels), 10 x A, 20 x B, 10 x C, a final 1x1 conv to 1536.
Each residual block's branches are concatenated, projected by a linear 1x1 conv to the input
width, scaled (0.17 / 0.10 / 0.20) and added to the input, then ReLU. Every other conv has BN + ReLU.
"""

from __future__ import annotations

import torch
from torch import nn

from archcalc.layers.attention import ChannelAttention


def conv_bn(c_in: int, c_out: int, kernel, stride: int = 1, padding=0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(c_out, eps=0.001), nn.ReLU(inplace=True))


def branch(c_in: int, *layers: tuple) -> nn.Sequential:
    """A chain of (out, kernel, stride, padding) convolutions."""
    modules, c = [], c_in
    for out, kernel, stride, padding in layers:
        modules.append(conv_bn(c, out, kernel, stride, padding))
        c = out
    return nn.Sequential(*modules)


class Concat(nn.Module):
    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


class ResidualInception(nn.Module):
    """Concatenated branches -> linear 1x1 conv to the input width -> (SE) -> scale -> + input -> ReLU."""

    def __init__(self, channels: int, branches: list[nn.Sequential], width: int, scale: float,
                 attention: dict | None, activate: bool = True) -> None:
        super().__init__()
        self.mixed = Concat(*branches)
        self.project = nn.Conv2d(width, channels, 1)
        self.attention = ChannelAttention(channels, **attention) if attention else None
        self.scale = scale
        self.relu = nn.ReLU(inplace=True) if activate else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.mixed(x))
        if self.attention is not None:
            out = self.attention(out)
        out = x + out * self.scale
        return self.relu(out) if self.relu is not None else out


def block_a(c: int, attention) -> ResidualInception:
    return ResidualInception(c, [branch(c, (32, 1, 1, 0)), branch(c, (32, 1, 1, 0), (32, 3, 1, 1)),
                                 branch(c, (32, 1, 1, 0), (48, 3, 1, 1), (64, 3, 1, 1))], 128, 0.17, attention)


def block_b(c: int, attention) -> ResidualInception:
    return ResidualInception(c, [branch(c, (192, 1, 1, 0)),
                                 branch(c, (128, 1, 1, 0), (160, (1, 7), 1, (0, 3)), (192, (7, 1), 1, (3, 0)))],
                             384, 0.10, attention)


def block_c(c: int, attention, activate: bool = True) -> ResidualInception:
    return ResidualInception(c, [branch(c, (192, 1, 1, 0)),
                                 branch(c, (192, 1, 1, 0), (224, (1, 3), 1, (0, 1)), (256, (3, 1), 1, (1, 0)))],
                             448, 0.20, attention, activate)


class MaxPoolBranch(nn.MaxPool2d):
    def __init__(self) -> None:
        super().__init__(3, stride=2)


def reduction_a(c: int, k: int = 256, l_: int = 256, m: int = 384, n: int = 384) -> tuple[Concat, int]:
    return Concat(MaxPoolBranch(), branch(c, (n, 3, 2, 0)),
                  branch(c, (k, 1, 1, 0), (l_, 3, 1, 1), (m, 3, 2, 0))), c + n + m


def reduction_b(c: int) -> tuple[Concat, int]:
    return Concat(MaxPoolBranch(), branch(c, (256, 1, 1, 0), (384, 3, 2, 0)), branch(c, (256, 1, 1, 0), (288, 3, 2, 0)),
                  branch(c, (256, 1, 1, 0), (288, 3, 1, 1), (320, 3, 2, 0))), c + 384 + 288 + 320


class InceptionResNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, variant: str = "slim", attention: str | None = None,
                 reduction: int = 16) -> None:
        super().__init__()
        if variant not in ("paper", "slim"):
            raise ValueError(f"variant must be 'paper' or 'slim', got {variant!r}")
        options = {"kind": attention, "reduction": reduction} if attention else None
        layers: list[nn.Module] = [conv_bn(3, 32, 3, 2), conv_bn(32, 32, 3), conv_bn(32, 64, 3, 1, 1)]
        if variant == "paper":  # Figure 3: 35x35x384
            layers += [Concat(MaxPoolBranch(), branch(64, (96, 3, 2, 0))),
                       Concat(branch(160, (64, 1, 1, 0), (96, 3, 1, 0)),
                              branch(160, (64, 1, 1, 0), (64, (7, 1), 1, (3, 0)), (64, (1, 7), 1, (0, 3)), (96, 3, 1, 0))),
                       Concat(branch(192, (192, 3, 2, 0)), MaxPoolBranch())]
            c, repeats = 384, (5, 10, 5)
        else:  # TF-slim: 35x35x192, then Mixed_5b to 320
            layers += [nn.MaxPool2d(3, stride=2), conv_bn(64, 80, 1), conv_bn(80, 192, 3), nn.MaxPool2d(3, stride=2),
                       Concat(branch(192, (96, 1, 1, 0)), branch(192, (48, 1, 1, 0), (64, 5, 1, 2)),
                              branch(192, (64, 1, 1, 0), (96, 3, 1, 1), (96, 3, 1, 1)),
                              nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), conv_bn(192, 64, 1)))]
            c, repeats = 320, (10, 20, 10)
        self.stem = nn.Sequential(*layers)
        self.repeat_a = nn.Sequential(*[block_a(c, options) for _ in range(repeats[0])])
        self.reduction_a, c = reduction_a(c)
        self.repeat_b = nn.Sequential(*[block_b(c, options) for _ in range(repeats[1])])
        self.reduction_b, c = reduction_b(c)
        blocks_c = [block_c(c, options) for _ in range(repeats[2] - 1)]
        blocks_c.append(block_c(c, options, activate=variant == "paper"))
        self.repeat_c = nn.Sequential(*blocks_c)
        self.head = conv_bn(c, 1536, 1) if variant == "slim" else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(1536 if variant == "slim" else c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.reduction_b(self.repeat_b(self.reduction_a(self.repeat_a(x))))
        x = self.head(self.repeat_c(x))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
