"""LeNet-5's own layers (LeCun, Bottou, Bengio, Haffner 1998, Section II.B and Appendix A)."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

# Table I of the paper: which S2 maps (columns 0-5) feed each of C3's 16 maps.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class ScaledTanh(nn.Module):
    """The squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (Appendix A)."""

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0):
        super().__init__()
        self.amplitude = amplitude
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)


class Subsampling(nn.Module):
    """S2/S4: the K x K inputs are added, multiplied by a trainable coefficient, plus a trainable bias.

    Trainable parameters: (coefficient + bias) * maps, e.g. S2 (1 + 1)*6 = 12.
    """

    def __init__(self, maps: int, kernel_size: int = 2):
        super().__init__()
        self.maps = maps
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.ones(maps))
        self.bias = nn.Parameter(torch.zeros(maps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        window_sum = F.avg_pool2d(x, k) * (k * k)
        return window_sum * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class ConnectionTableConv2d(nn.Module):
    """C3: a convolution in which output map j sees only the input maps table[j].

    One K x K kernel per connection (60 for LeNet-5) and one bias per output map:
    (5*5*3 + 1)*6 + (5*5*4 + 1)*9 + (5*5*6 + 1)*1 = 1516 trainable parameters.
    """

    def __init__(self, table: tuple[tuple[int, ...], ...], in_maps: int, kernel_size: int = 5):
        super().__init__()
        if any(not 0 <= i < in_maps for inputs in table for i in inputs):
            raise ValueError(f"connection table refers to input maps outside 0..{in_maps - 1}")
        self.table = tuple(tuple(inputs) for inputs in table)
        self.in_maps = in_maps
        self.out_maps = len(table)
        self.kernel_size = (kernel_size, kernel_size)
        self.weight = nn.Parameter(torch.empty(sum(len(t) for t in self.table), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(self.out_maps))
        nn.init.uniform_(self.weight, -0.1, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, start = [], 0
        for j, inputs in enumerate(self.table):
            kernel = self.weight[start:start + len(inputs)].unsqueeze(0)
            start += len(inputs)
            chosen = x[:, list(inputs)]
            outputs.append(F.conv2d(chosen, kernel, self.bias[j:j + 1]))
        return torch.cat(outputs, dim=1)


class RBFOutput(nn.Module):
    """The output layer: Euclidean radial basis units y_i = sum_j (x_j - w_ij)^2.

    The parameter vectors were chosen by hand and kept fixed, so they are parameters that are
    not trainable: 84*10 = 840. Computed as |x|^2 - 2 x.w_i + |w_i|^2, whose x.w_i is a
    matrix multiplication of in*out multiply-accumulates.
    """

    def __init__(self, in_features: int = 84, out_features: int = 10):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-1, 1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cross = x @ self.weight.t()
        return (x * x).sum(dim=1, keepdim=True) - 2 * cross + (self.weight * self.weight).sum(dim=1)
