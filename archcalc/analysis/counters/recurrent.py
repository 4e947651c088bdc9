"""Recurrent layers: nn.RNN, nn.LSTM, nn.GRU, their cells, and torch's functional lstm / gru / rnn.

Symbols: T time steps, N sequences, rows = T*N (a packed sequence: its total length), I input
features, H hidden units, P projection size (LSTM's proj_size), G gates (RNN 1, GRU 3, LSTM 4).
  At every step each weight matrix multiplies one vector per sequence:
    MACs = rows * Σ over layers and directions of (G*H*I_l  [W_ih]  +  G*H*H_r  [W_hh]  (+ P*H [W_hr]))
  with I_0 = I, I_l = H_out*directions above, H_r = P when projected, else H.
  element-wise, per row and hidden unit of each layer and direction:
    RNN   1 add (W_ih x + W_hh h) + 1 tanh/relu                                        = 2 (+2 biases)
    GRU   2 adds (r, z) + 2 sigmoids + 1 r*(W_hn h) + 1 add + 1 tanh + 3 (h' = n + z*(h - n))  = 10 (+6)
    LSTM  4 adds (gates) + 3 sigmoids + 1 tanh + 3 (c' = f*c + i*g) + 1 tanh + 1 (h = o*tanh c') = 13 (+8)
This is the count of the matrix products PyTorch's kernels make (torch.utils.flop_counter / 2).
Backward, per layer and direction: ∂W of each weight matrix (rows * its elements, when trainable), ∂x
through W_ih (rows * its elements; for the first layer only when its input needs a gradient), ∂h through
W_hh at every step but the first (rows - N, the initial state being zeros; all rows when h_0 is given and
needs one), and ∂h through a projection W_hr (rows * its elements).
Forward-mode AD (jvp, jacfwd: recurrent_tangent), each product's tangent A'·B + A·B' wherever one of its operands
carries one (PyTorch fills the other's with zeros and multiplies it too), each term as many times as its tangent is
batched: x·W_ihᵀ over every row where x or W_ih carries one (the layers above: their input always does); h·W_hhᵀ
at every step after the first (h carries one from the first step on), and at the first only where h_0 or W_hh
carries one (h_0 zeros, W_hh constant: no tangent there, where the backward's ∂W_hh still multiplies at that step).
"""

from __future__ import annotations

from functools import partial
from math import prod

from torch import nn

from archcalc.analysis.counting import (GRAD_MODULES, MODULES, OPS, Count, ModuleCall, Needs, OpCall, gradients,
                                        own_tangent)
from archcalc.formulas.numbers import grouped

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}
PER_UNIT = {1: (2, 2), 3: (10, 6), 4: (13, 8)}  # gates -> (element-wise per unit, biases per unit)
NAMES = {1: "RNN", 3: "GRU", 4: "LSTM"}


def recurrent_count(rows: int, gates: int, weights: list[tuple[str, tuple[int, int]]], units: int, bias: bool) -> Count:
    """``weights``: each weight matrix (name, (rows, columns)); ``units``: hidden units over every layer and
    direction, each doing the gate arithmetic once per row."""
    macs = rows * sum(r * c for _, (r, c) in weights)
    per, biases = PER_UNIT[gates]
    per += biases if bias else 0
    elementwise = rows * units * per
    return Count(macs, elementwise, partial(_recurrent_text, rows, gates, weights, units, per, macs, elementwise))


def _recurrent_text(rows, gates, weights, units, per, macs, elementwise) -> dict[str, str]:
    matrices = " + ".join(f"{name} {r}*{c}" for name, (r, c) in weights)
    return {
        "macs": f"{rows} rows*({matrices}) = {grouped(macs)}",
        "elementwise": f"{NAMES[gates]} gates: {per} per unit*{rows} rows*{units} units = {grouped(elementwise)}",
    }


def sequence_rows(shape: tuple) -> int:
    """Sequence rows T*N: (T, N, I), (N, T, I), unbatched (T, I), a cell's (N, I) or (I,), and a packed
    sequence's data (total length, I) all give prod(shape[:-1])."""
    return prod(shape[:-1])


@MODULES.register(nn.RNN, nn.LSTM, nn.GRU)
def recurrent(call: ModuleCall) -> Count:
    m = call.module
    gates = GATES[m.mode]
    weights = [(name, tuple(p.shape)) for name, p in m.named_parameters(recurse=False) if name.startswith("weight_")]
    directions = 2 if m.bidirectional else 1
    rows = sequence_rows(call.input)
    count = recurrent_count(rows, gates, weights, m.num_layers * directions * m.hidden_size, m.bias)
    if not (m.training and m.dropout > 0 and m.num_layers > 1):
        return count
    width = (getattr(m, "proj_size", 0) or m.hidden_size) * directions  # (train mode: dropout between layers)
    between = 2 * rows * width * (m.num_layers - 1)
    text = count.text()
    return count._replace(elementwise=count.elementwise + between, formulas={
        **text, "elementwise": f"{text['elementwise']} + dropout between layers 2*{rows} rows*{width}*"
                               f"{m.num_layers - 1} = {grouped(count.elementwise + between)}"})


@MODULES.register(nn.RNNCell, nn.LSTMCell, nn.GRUCell)
def recurrent_cell(call: ModuleCall) -> Count:
    m = call.module
    gates = m.weight_ih.shape[0] // m.hidden_size
    weights = [("W_ih", tuple(m.weight_ih.shape)), ("W_hh", tuple(m.weight_hh.shape))]
    return recurrent_count(sequence_rows(call.input), gates, weights, m.hidden_size, m.bias)


@OPS.register("lstm", "gru", "rnn_tanh", "rnn_relu")
def recurrent_op(call: OpCall) -> Count:
    """torch.lstm(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first), or
    with a packed sequence (data, batch_sizes, hx, params, has_biases, ...)."""
    packed = len(call.args) > 1 and not isinstance(call.args[1], (list, tuple))
    params = call.args[3 if packed else 2]
    has_biases = call.args[4 if packed else 3]
    matrices = [tuple(p.shape) for p in params if p.dim() == 2]
    gates = {"lstm": 4, "gru": 3}.get(call.name, 1)
    hidden = matrices[0][0] // gates
    units = hidden * sum(1 for p in params if p.dim() == 2 and p.shape[0] == gates * hidden) // 2
    weights = [(f"W{i}", shape) for i, shape in enumerate(matrices)]
    return recurrent_count(prod(call.inputs[0][:-1]), gates, weights, units, bool(has_biases))


# -- backward ------------------------------------------------------------------------------

def _batch(shape: tuple, batch_first: bool) -> int:
    if len(shape) == 3:
        return shape[0] if batch_first else shape[1]
    return 1


def _tangent_terms(rows: int, first: int, weights: list[tuple[str, int, int]], extra: tuple[int, ...],
                   weight: int) -> Count:
    """A recurrent layer's tangent's products: ``weights`` (name, elements, layer) of each matrix, ``first`` the
    first step's rows (its sequences), ``extra`` how many times the input's and the initial states' tangents run (0:
    none), ``weight`` the weights'."""
    x, h0 = (extra[0] if extra else 0), max(extra[1:], default=0)
    h = max(x, h0, weight)  # (the hidden state's tangent, from the first step on: batched as any that feeds it)
    w = max(weight, 1)  # (a weight's term: its tangent, or its zeros, once)
    terms, macs = [], 0
    for name, n, layer in weights:
        if name.startswith("weight_hh") or name == "W_hh":
            parts = [(first, max(h0, 1)) if h0 or weight else (0, 0), (rows - first, max(h, 1)) if h else (0, 0)]
        elif name.startswith("weight_hr"):  # (an LSTM's projection of each step's o*tanh(c), which carries one)
            parts = [(rows, max(h, 1)) if h else (0, 0)]
        else:  # (W_ih: the input, the layer below's output above the first)
            a = x if layer == 0 else h
            parts = [(rows, max(a, 1)) if a or weight else (0, 0)]
        for r, times in parts:
            if r:
                macs += r * n * (times + w)
                terms.append(f"{name} {r}*{n}*({times} + {w})")
    text = " + ".join(terms) + f" = {grouped(macs)}" if terms else "no operand carries a tangent: 0"
    return Count(macs, None, {"macs": f"each product's tangent, its operand's term and its weight's (zeros where it "
                                      f"carries none), x as many times as each is batched: {text}"})


def recurrent_tangent(call: ModuleCall, extra: tuple[int, ...], weights: int) -> Count:
    """nn.RNN, nn.LSTM, nn.GRU under forward-mode AD (jvp, jacfwd): _tangent_terms over every layer and
    direction, their first steps N sequences each."""
    m = call.module
    matrices = [(name, p.numel(), int(name.split("_l")[1].split("_")[0]))
                for name, p in m.named_parameters(recurse=False) if name.startswith("weight_")]
    return _tangent_terms(sequence_rows(call.input), _batch(call.input, m.batch_first), matrices, extra, weights)


def recurrent_cell_tangent(call: ModuleCall, extra: tuple[int, ...], weights: int) -> Count:
    """nn.RNNCell, nn.LSTMCell, nn.GRUCell under forward-mode AD: one step, h's given state (an LSTM cell's h, not
    its c) carrying a tangent or not."""
    m = call.module
    rows = sequence_rows(call.input)
    matrices = [("W_ih", m.weight_ih.numel(), 0), ("W_hh", m.weight_hh.numel(), 0)]
    return _tangent_terms(rows, rows, matrices, tuple(extra[:2]), weights)


@GRAD_MODULES.register(nn.RNN, nn.LSTM, nn.GRU)
@own_tangent(recurrent_tangent)
def recurrent_backward(call: ModuleCall, needs: Needs) -> Count:
    m = call.module
    rows = sequence_rows(call.input)
    first_steps = 0 if needs.input(1) else _batch(call.input, m.batch_first)  # no ∂h_0 when h_0 is zeros
    w = needs.weights
    g = w or needs.input(0) or needs.input(1)  # is any gradient computed at all?
    terms = []
    for name, p in m.named_parameters(recurse=False):
        if not name.startswith("weight_"):
            continue
        n = p.numel()
        terms.append((f"∂{name}", needs.weight(name), rows * n, f"{rows}*{n}"))
        layer = int(name.split("_l")[1].split("_")[0])
        if name.startswith("weight_ih"):
            terms.append(("∂x", (layer > 0 and g) or needs.input(0), rows * n, f"{rows}*{n}"))
        elif name.startswith("weight_hh"):
            terms.append(("∂h", g, (rows - first_steps) * n, f"{rows - first_steps}*{n}"))
        else:  # weight_hr: the projection of h
            terms.append(("∂h", g, rows * n, f"{rows}*{n}"))
    return gradients(terms)


@GRAD_MODULES.register(nn.RNNCell, nn.LSTMCell, nn.GRUCell)
@own_tangent(recurrent_cell_tangent)
def recurrent_cell_backward(call: ModuleCall, needs: Needs) -> Count:
    m = call.module
    rows = sequence_rows(call.input)
    ih, hh = m.weight_ih.numel(), m.weight_hh.numel()
    return gradients([
        ("∂W_ih", needs.weight("weight_ih"), rows * ih, f"{rows}*{ih}"),
        ("∂W_hh", needs.weight("weight_hh"), rows * hh, f"{rows}*{hh}"),
        ("∂x", needs.input(0), rows * ih, f"{rows}*{ih}"), ("∂h", needs.input(1), rows * hh, f"{rows}*{hh}"),
    ])
