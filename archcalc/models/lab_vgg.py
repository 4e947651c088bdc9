"""The CIFAR-10 networks of the Dong-A lab (000): VGG-16 cut to 6 convs, and its variants.

One class reproduces each of the lab's classes with their attribute names (conv1_1 ... conv3_2,
conv_skip1/2/3, caconv1/2, fc1/2/3, one shared relu and pooling module) and forward passes:
  vgg_base  (class Model):   conv-conv-pool x3, torch.reshape(out, (-1, 4096)), fc 4096-512-256-10
  vgg_skip  (VGG_SKIP):      out = torch.add(out, relu(conv_skipN(stage input))) before each pool
  vgg_dense:                 out = torch.cat([stage input, out], dim=1) after stages 1 and 2,
                             so conv2_1 takes 3 + 32 = 35 and conv3_1 takes 35 + 64 = 99 channels
  vgg_ca    (VGG_CA):        after conv2_2: GAP, 1x1 conv 64-64, ReLU, 1x1 conv, sigmoid,
                             expand_as, out * CA_map
The combination experiment (skip, dense and attention together) used max pooling; its entries
combine the flags in the order of the slides: convs, attention, skip add, dense concatenation.
Stage 3 keeps no concatenation (commented out on the slide) so that fc1 still sees 256*4*4 = 4096.
"""

from __future__ import annotations

import torch
from torch import nn


class LabVGG(nn.Module):
    def __init__(self, skip: bool = False, dense: bool = False, attention: bool = False,
                 pool: str = "avg", num_classes: int = 10) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.skip, self.dense, self.attention = skip, dense, attention
        c1 = 3
        c2 = c1 + 32 if dense else 32
        c3 = c2 + 64 if dense else 64
        self.conv1_1 = nn.Conv2d(in_channels=c1, out_channels=16, kernel_size=3, padding=1)
        self.conv1_2 = nn.Conv2d(in_channels=16, out_channels=32, kernel_size=3, padding=1)
        self.conv2_1 = nn.Conv2d(in_channels=c2, out_channels=32, kernel_size=3, padding=1)
        self.conv2_2 = nn.Conv2d(in_channels=32, out_channels=64, kernel_size=3, padding=1)
        self.conv3_1 = nn.Conv2d(in_channels=c3, out_channels=128, kernel_size=3, padding=1)
        self.conv3_2 = nn.Conv2d(in_channels=128, out_channels=256, kernel_size=3, padding=1)
        if skip:
            self.conv_skip1 = nn.Conv2d(in_channels=c1, out_channels=32, kernel_size=3, padding=1)
            self.conv_skip2 = nn.Conv2d(in_channels=c2, out_channels=64, kernel_size=3, padding=1)
            self.conv_skip3 = nn.Conv2d(in_channels=c3, out_channels=256, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(in_features=4096, out_features=512)
        self.fc2 = nn.Linear(in_features=512, out_features=256)
        self.fc3 = nn.Linear(in_features=256, out_features=num_classes)
        if attention:
            self.adaptiveAvgPool2d = nn.AdaptiveAvgPool2d((1, 1))
            self.caconv1 = nn.Conv2d(in_channels=64, out_channels=64, kernel_size=1)
            self.caconv2 = nn.Conv2d(in_channels=64, out_channels=64, kernel_size=1)
            self.sigmoid = nn.Sigmoid()
        self.relu = nn.ReLU()
        if pool == "avg":
            self.avgPool2d = nn.AvgPool2d(kernel_size=2, stride=2)
        else:
            self.maxPool2d = nn.MaxPool2d(kernel_size=2, stride=2)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return self.avgPool2d(x) if hasattr(self, "avgPool2d") else self.maxPool2d(x)

    def _stage(self, x: torch.Tensor, first: nn.Conv2d, second: nn.Conv2d, skip: str, concat: bool,
               attend: bool = False) -> torch.Tensor:
        out = self.relu(first(x))
        out = self.relu(second(out))
        if attend:
            caout = self.adaptiveAvgPool2d(out)
            caout = self.relu(self.caconv1(caout))
            caout = self.sigmoid(self.caconv2(caout))
            CA_map = caout.expand_as(out)
            out = out * CA_map
        if self.skip:
            input_skip = self.relu(getattr(self, skip)(x))
            out = torch.add(out, input_skip)
        if concat:
            out = torch.cat([x, out], dim=1)
        return self._pool(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._stage(x, self.conv1_1, self.conv1_2, "conv_skip1", self.dense)
        out = self._stage(out, self.conv2_1, self.conv2_2, "conv_skip2", self.dense, self.attention)
        out = self._stage(out, self.conv3_1, self.conv3_2, "conv_skip3", False)
        out = torch.reshape(out, (-1, 4096))  # feature map flattening, as the lab writes it
        out = self.relu(self.fc1(out))
        out = self.relu(self.fc2(out))
        return self.fc3(out)


def build(**kwargs) -> LabVGG:
    return LabVGG(**kwargs)
