"""The CIFAR-10 CNN of the 'CNN modules' lecture (003), written as on the slide."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class CNNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels=3, out_channels=32, kernel_size=3, padding=0, stride=1)
        self.conv2 = nn.Conv2d(32, 64, 4)
        self.dropout = nn.Dropout(0.5)
        self.fc1 = nn.Linear(64 * 6 * 6, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # 3x32x32 -> 32x30x30
        x = F.relu(x)
        x = F.max_pool2d(x, 2)  # 32x15x15
        x = self.conv2(x)  # 64x12x12
        x = F.relu(x)
        x = F.max_pool2d(x, 2)  # 64x6x6
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        return self.fc1(x)
