"""The super-resolution networks of seed 002, on one luminance channel.

VDSR (Kim et al., CVPR 2016): 20 layers of 3x3 convolutions, 64 channels, ReLU between them, and
residual learning: the network predicts the difference added to the (bicubic-upscaled) input.

SR-DenseNet (Tong et al., ICCV 2017), the variant with dense skip connections: a 3x3 conv to 128
low-level features; 8 dense blocks of 8 3x3 conv layers with growth rate 16 (128 maps per block);
the low-level features and every block's output concatenated (128 + 8*128 = 1152 maps, the
"over 1,000 feature maps" after dense block 8), a 1x1 bottleneck to 256, two stride-2
deconvolutions (x4) and a 3x3 reconstruction conv to one channel.
"""

from __future__ import annotations

import torch
from torch import nn


class VDSR(nn.Module):
    def __init__(self, depth: int = 20, channels: int = 64) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be at least 2, got {depth}")
        layers: list[nn.Module] = [nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(channels, 1, 3, padding=1, bias=False))
        self.residual = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.add(self.residual(x), x)  # global residual learning


class SRDenseBlock(nn.Module):
    def __init__(self, c_in: int, growth_rate: int = 16, layers: int = 8) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in + i * growth_rate, growth_rate, 3, padding=1) for i in range(layers))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in self.convs:
            features.append(self.relu(conv(torch.cat(features, 1))))
        return torch.cat(features[1:], 1)


class SRDenseNet(nn.Module):
    def __init__(self, blocks: int = 8, layers: int = 8, growth_rate: int = 16, low_level: int = 128,
                 bottleneck: int = 256, scale: int = 4) -> None:
        super().__init__()
        if scale not in (2, 4, 8):
            raise ValueError(f"scale must be 2, 4 or 8, got {scale}")
        block_out = layers * growth_rate
        self.low = nn.Sequential(nn.Conv2d(1, low_level, 3, padding=1), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList(
            SRDenseBlock(low_level if i == 0 else block_out, growth_rate, layers) for i in range(blocks))
        self.bottleneck = nn.Sequential(nn.Conv2d(low_level + blocks * block_out, bottleneck, 1),
                                        nn.ReLU(inplace=True))
        ups: list[nn.Module] = []
        for _ in range({2: 1, 4: 2, 8: 3}[scale]):
            ups += [nn.ConvTranspose2d(bottleneck, bottleneck, 3, stride=2, padding=1, output_padding=1),
                    nn.ReLU(inplace=True)]
        self.deconv = nn.Sequential(*ups)
        self.reconstruction = nn.Conv2d(bottleneck, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.low(x)
        outputs = [x]
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        x = self.bottleneck(torch.cat(outputs, 1))
        return self.reconstruction(self.deconv(x))
