"""A small CNN and its int8 forms, as a course's quantization lab makes them with torch.ao.quantization:
post-training static quantization (conv-bn-relu fused, FBGEMM's per-channel weights, calibrated on random
images), dynamic quantization of its classifier, and the network prepared for quantization-aware training.

    archcalc compare examples/quantized_cnn.py:Net examples/quantized_cnn.py:quantized --input 3x32x32
    archcalc summary examples/quantized_cnn.py:quantized
    archcalc flops examples/quantized_cnn.py:qat --pass train
"""

import warnings

import torch
import torch.ao.quantization as tq
from torch import nn


class Net(nn.Module):
    """conv-bn-relu, conv-relu, a skip add, pooling and a classifier, on 3x32x32 images."""

    archcalc_input = (3, 32, 32)

    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()  # (identities until the network is converted)
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()
        self.skip = nn.quantized.FloatFunctional()  # (the add, made a quantized::add by convert)
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(16, 10)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(self.quant(x))))
        x = self.skip.add(x, self.relu2(self.conv2(x)))
        return self.dequant(self.fc(torch.flatten(self.pool(x), 1)))


FUSED = [["conv1", "bn1", "relu1"], ["conv2", "relu2"]]


def quantized() -> nn.Module:
    """Post-training static quantization: every layer int8, BatchNorm folded into conv1."""
    torch.manual_seed(0)
    model = Net().eval()
    model.qconfig = tq.get_default_qconfig("fbgemm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch.ao.quantization's deprecation notices)
        tq.fuse_modules(model, FUSED, inplace=True)
        prepared = tq.prepare(model)
        prepared(torch.randn(8, 3, 32, 32))  # calibration: the observers see the activations' ranges
        return tq.convert(prepared)


def dynamic() -> nn.Module:
    """Dynamic quantization: the classifier's weights int8, its input quantised at run time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tq.quantize_dynamic(Net().eval(), {nn.Linear}, dtype=torch.qint8)


def qat() -> nn.Module:
    """Quantization-aware training: the float network with fake quantization (observers and quantise-dequantise)
    after each weight and activation."""
    torch.manual_seed(0)
    model = Net().train()
    model.qconfig = tq.get_default_qat_qconfig("fbgemm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq.fuse_modules_qat(model, FUSED, inplace=True)
        return tq.prepare_qat(model)


for _make in (quantized, dynamic, qat):
    _make.archcalc_input = Net.archcalc_input
