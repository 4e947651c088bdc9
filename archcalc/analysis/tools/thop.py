"""thop's counting rules (thop 0.1.1.post2209072238, ``thop.profile``), read from its source and
checked against it (tests/test_conventions.py runs thop itself).

thop hooks leaf modules by their *exact* type (a subclass of nn.Conv2d is not counted) and
ignores every functional operation (torch.add, torch.cat, F.relu). Per call, with x the input
and y the output:

  Conv{1,2,3}d, ConvTranspose{1,2,3}d   numel(y) x C_in(x)/g x prod(kernel), bias excluded
  Linear                                in_features x numel(y), bias excluded
  BatchNorm, InstanceNorm, LayerNorm    2 x numel(x), doubled again when affine (4 per element)
  AvgPool{1,2,3}d                       numel(y)
  AdaptiveAvgPool{1,2,3}d               (prod(in_i / out_i) + 1) x numel(y), in floating point, truncated
  Softmax                               (3F - 1) per softmax of F features
  PReLU                                 numel(x) (thop profiles in eval mode)
  Upsample                              numel(y) x 1 (nearest), 5 (linear), 11 (bilinear), 259 (bicubic),
                                        0 (other modes)
  ReLU, ReLU6, LeakyReLU, MaxPool, AdaptiveMaxPool, Dropout, ZeroPad2d, PixelShuffle   0
  any other module                      0 ("treat it as zero Macs")
  RNN, LSTM, GRU (thop/rnn_hooks.py)   N x T x Σ over layers and directions of its cell's count:
      RNN cell   (I + H)H + H (+ 2H bias)
      GRU cell   3((I + H)H + H) (+ 6H bias) + H (r * ...) + 3H (h' = (1 - z)n + zh)
      LSTM cell  4((I + H)H + H) (+ 8H bias) + 3H (c') + H (h'); proj_size is not seen
      with I = input_size for the first layer, H (2H bidirectional) above; the cells: N x the cell's count
  MultiheadAttention, Embedding, LayerNorm's functional form, any other module   0
A module held by k parents (CoaT's shared position encodings): model.apply reaches it k times and hooks it
each time, and thop's sum adds its count from each parent: every call of it counts k x k times
(count's paths, from tools._shared).
"""

from __future__ import annotations

from math import prod

from torch import nn

from archcalc.analysis.records import OP, LayerRecord


def _conv(r: LayerRecord, m) -> int:
    return prod(r.output_shapes[0]) * (r.input_shapes[0][1] // m.groups) * prod(m.weight.shape[2:])


def _norm(r: LayerRecord, m) -> int:
    affine = getattr(m, "affine", False) or getattr(m, "elementwise_affine", False)
    return 2 * prod(r.input_shapes[0]) * (2 if affine else 1)


def _adaptive_avg(r: LayerRecord, m) -> int:
    kernel = 1.0
    for i, o in zip(r.input_shapes[0][2:], r.output_shapes[0][2:]):
        kernel *= i / o
    return int((kernel + 1) * prod(r.output_shapes[0]))


def _softmax(r: LayerRecord, m) -> int:
    shape = r.input_shapes[0]
    features = shape[m.dim]
    return prod(shape) // features * (3 * features - 1)


_UPSAMPLE = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 224 + 35}


def _cell(kind: type, n_in: int, hidden: int, bias: bool) -> int:
    state = (n_in + hidden) * hidden + hidden
    if kind in (nn.RNN, nn.RNNCell):
        return state + (2 * hidden if bias else 0)
    if kind in (nn.GRU, nn.GRUCell):
        return 3 * state + (6 * hidden if bias else 0) + hidden + 3 * hidden
    return 4 * state + (8 * hidden if bias else 0) + 3 * hidden + hidden


def _recurrent(r: LayerRecord, m) -> int:
    kind = nn.RNN if isinstance(m, nn.RNN) else nn.GRU if isinstance(m, nn.GRU) else nn.LSTM
    directions = 2 if m.bidirectional else 1
    total = _cell(kind, m.input_size, m.hidden_size, m.bias) * directions
    total += (m.num_layers - 1) * _cell(kind, m.hidden_size * directions, m.hidden_size, m.bias) * directions
    x = r.input_shapes[0]
    return total * prod(x[:2]) if len(x) == 3 else total * x[0]


def _recurrent_cell(r: LayerRecord, m) -> int:
    x = r.input_shapes[0]
    return _cell(type(m), m.input_size, m.hidden_size, m.bias) * (x[0] if len(x) == 2 else 1)


RULES = {
    **dict.fromkeys((nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d),
                    _conv),
    nn.Linear: lambda r, m: m.in_features * prod(r.output_shapes[0]),
    **dict.fromkeys((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LayerNorm,
                     nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d), _norm),
    **dict.fromkeys((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), lambda r, m: prod(r.output_shapes[0])),
    **dict.fromkeys((nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d), _adaptive_avg),
    nn.Softmax: _softmax,
    nn.PReLU: lambda r, m: prod(r.input_shapes[0]),
    **dict.fromkeys((nn.Upsample, nn.UpsamplingBilinear2d, nn.UpsamplingNearest2d),
                    lambda r, m: _UPSAMPLE.get(m.mode, 0) * prod(r.output_shapes[0])),
    **dict.fromkeys((nn.RNN, nn.GRU, nn.LSTM), _recurrent),
    **dict.fromkeys((nn.RNNCell, nn.GRUCell, nn.LSTMCell), _recurrent_cell),
}


def count(r: LayerRecord, module, paths: int = 1) -> int:
    """``paths``: the parents that hold the module; thop hooks it from each and adds its count from each."""
    if r.kind == OP or module is None:
        return 0
    rule = RULES.get(type(module))
    return rule(r, module) * paths * paths if rule is not None else 0
