"""LeNet-5 as LeCun et al. (1998) built it, with layers named after the paper (Fig. 2)."""

from __future__ import annotations

import torch
from torch import nn

from archcalc.layers.lenet import C3_TABLE, ConnectionTableConv2d, RBFOutput, ScaledTanh, Subsampling


class LeNet5(nn.Module):
    """INPUT 32x32 -> C1 6@28x28 -> S2 6@14x14 -> C3 16@10x10 -> S4 16@5x5 -> C5 120 -> F6 84 -> OUTPUT 10."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, kernel_size=5)
        self.s2 = Subsampling(6)
        self.c3 = ConnectionTableConv2d(C3_TABLE, in_maps=6, kernel_size=5)
        self.s4 = Subsampling(16)
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)
        self.f6 = nn.Linear(120, 84)
        self.output = RBFOutput(84, 10)
        self.squash = ScaledTanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squash(self.c1(x))
        x = self.squash(self.s2(x))
        x = self.squash(self.c3(x))
        x = self.squash(self.s4(x))
        x = self.squash(self.c5(x))
        x = torch.flatten(x, 1)
        x = self.squash(self.f6(x))
        return self.output(x)
