"""Channel attention: SENet's squeeze-and-excitation (Hu et al., CVPR 2018) and the four
average/max pooling mixes of the student report (seed 004).

Every kind squeezes C x H x W to C numbers, excites them through a bottleneck of C/r units
(FC C -> C/r, ReLU, FC C/r -> C, sigmoid), and scales each channel of the input by its number.
  se           : avg-pool -> fc                       (SENet)
  mul_then_fc  : avg-pool * max-pool -> fc            (report's Model 1, "Avg * Max -> fc")
  add_then_fc  : avg-pool + max-pool -> fc            (Model 2, "Avg + Max -> fc")
  fc_then_mul  : fc(avg-pool) * fc(max-pool), shared  (Model 3, "Avg, Max -> fc -> Avg * Max")
  fc_then_add  : fc(avg-pool) + fc(max-pool), shared  (Model 4, "Avg, Max -> fc -> Avg + Max")
"""

from __future__ import annotations

import torch
from torch import nn

KINDS = ("se", "mul_then_fc", "add_then_fc", "fc_then_mul", "fc_then_add")


class ChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, kind: str = "se"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"attention kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if reduction < 1 or channels // reduction < 1:
            raise ValueError(f"reduction must be between 1 and {channels}, got {reduction}")
        self.kind = kind
        self.avgp = nn.AdaptiveAvgPool2d(1)
        if kind != "se":
            self.maxp = nn.AdaptiveMaxPool2d(1)
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(channels // reduction, channels)
        self.sigmoid = nn.Sigmoid()

    def _excite(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(z)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        avg = torch.flatten(self.avgp(x), 1)
        if self.kind == "se":
            weights = self._excite(avg)
        else:
            peak = torch.flatten(self.maxp(x), 1)
            if self.kind == "mul_then_fc":
                weights = self._excite(avg * peak)
            elif self.kind == "add_then_fc":
                weights = self._excite(avg + peak)
            elif self.kind == "fc_then_mul":
                weights = self._excite(avg) * self._excite(peak)
            else:
                weights = self._excite(avg) + self._excite(peak)
        scale = self.sigmoid(weights).view(n, c, 1, 1)
        return x * scale
