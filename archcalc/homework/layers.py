"""The layers homework is asked about, as plain numbers: their shapes, parameters and MACs by archcalc's
formulas, their PyTorch code, and their description in the lectures' words. (meta.py builds them in
PyTorch; nothing here imports torch.)"""

from __future__ import annotations

from dataclasses import dataclass

from archcalc.formulas import outsize as outsize_rule
from archcalc.formulas import params as params_rule

WINDOWED = ("conv", "maxpool", "avgpool")  # layers whose output size is (in + 2p - k)/s + 1
POOLS = ("maxpool", "avgpool")


@dataclass(frozen=True)
class Layer:
    """A 2-D layer on square maps (H = W). ``c_in``/``c_out``: channels (features for linear)."""

    kind: str  # conv, maxpool, avgpool, batchnorm, relu, flatten, linear
    c_in: int
    c_out: int
    k: int = 1
    s: int = 1
    p: int = 0
    d: int = 1
    groups: int = 1
    bias: bool = True
    ceil: bool = False

    @property
    def windowed(self) -> bool:
        return self.kind in WINDOWED

    def out_size(self, size: int):
        """The output size with its arithmetic (formulas.outsize), for a windowed layer."""
        return outsize_rule.conv_out_size(size, self.k, self.s, self.p, self.d, self.ceil)

    def params(self):
        """The trainable parameters with the lecture's arithmetic (a Term), None for a layer without any."""
        if self.kind == "conv":
            return params_rule.conv_params((self.k, self.k), self.c_in, self.c_out, self.groups, self.bias)
        if self.kind == "linear":
            return params_rule.linear_params(self.c_in, self.c_out, self.bias)
        if self.kind == "batchnorm":
            return params_rule.per_map_params(self.c_out, ("γ", "β"))
        return None

    def macs(self, out: int | None) -> tuple[int, str]:
        """Multiply-accumulates, bias excluded: conv H_out*W_out*C_out*(K*K*C_in/g); linear n_in*n_out;
        every other layer 0 (pooling, BatchNorm and ReLU do no multiply-accumulates)."""
        if self.kind == "conv":
            per = self.k * self.k * (self.c_in // self.groups)
            value = out * out * self.c_out * per
            c_in = f"{self.c_in}/{self.groups}" if self.groups > 1 else f"{self.c_in}"
            return value, f"({out}*{out}*{self.c_out})*({self.k}*{self.k}*{c_in}) = {value:,}"
        if self.kind == "linear":
            return self.c_in * self.c_out, f"{self.c_in}*{self.c_out} = {self.c_in * self.c_out:,}"
        return 0, "0"

    def code(self) -> str:
        """The PyTorch line that makes it: nn.Conv2d(3, 16, kernel_size=3, padding=1)."""
        if self.kind == "conv":
            extra = _options(stride=(self.s, 1), padding=(self.p, 0), dilation=(self.d, 1),
                             groups=(self.groups, 1), bias=(self.bias, True))
            return f"nn.Conv2d({self.c_in}, {self.c_out}, kernel_size={self.k}{extra})"
        if self.kind in POOLS:
            name = "MaxPool2d" if self.kind == "maxpool" else "AvgPool2d"
            extra = _options(stride=(self.s, self.k), padding=(self.p, 0), dilation=(self.d, 1),
                             ceil_mode=(self.ceil, False))
            return f"nn.{name}(kernel_size={self.k}{extra})"
        if self.kind == "batchnorm":
            return f"nn.BatchNorm2d({self.c_out})"
        if self.kind == "relu":
            return "nn.ReLU()"
        if self.kind == "flatten":
            return "nn.Flatten()"
        return f"nn.Linear({self.c_in}, {self.c_out}{_options(bias=(self.bias, True))})"


def _options(**given) -> str:
    """', stride=2, padding=1': the keyword arguments that differ from PyTorch's defaults."""
    return "".join(f", {name}={value}" for name, (value, default) in given.items() if value != default)
