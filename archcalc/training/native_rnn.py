"""Recurrent layers as the CPU runs them without oneDNN, on the meta device.

nn.GRU, nn.RNN and an nn.LSTM that oneDNN does not take (proj_size, oneDNN off) run PyTorch's own layers
(aten/src/ATen/native/RNN.cpp: FullLayer, FullBidirectionalLayer, apply_layer_stack). They do one thing
only on the CPU: a layer projects every step's input at once, W_ih x_t + b_ih for all t in one linear, and
the cell then adds the step's row; elsewhere, the meta device included, each step projects its own input.
What autograd saves differs (one T x N x G*H projection against T of them, and the gates built from it),
so while cpu_recurrence("cpu") is open, _VF.gru, _VF.rnn_tanh, _VF.rnn_relu and _VF.lstm run that CPU path
op for op on the meta device (the cells: r = σ(W_ir x + b_ir + W_hr h + b_hr), z likewise, n = tanh(W_in x +
b_in + r ⊙ (W_hn h + b_hn)), h' = (h - n) ⊙ z + n; an RNN cell h' = tanh(W_ih x + b_ih + W_hh h + b_hh);
an LSTM cell with its projection h' = W_hr (o ⊙ tanh(c'))), in PyTorch's order of operations and in-place
updates; packed sequences too (PackedLayer: the batch shrinks as sequences end).

The cells (nn.GRUCell, nn.LSTMCell, nn.RNNCell: _VF.gru_cell, lstm_cell, rnn_tanh_cell, rnn_relu_cell) run the
same cell with its own input projection (pre_compute_input false: a GRU projects x before h, an LSTM and an RNN
h before x). The meta device runs them so too; they run here, op for op, so that a simulated autocast casts
the linear layers inside them, as the CPU's autocast casts the at::linear calls its cells make (it has no entry
for the cells themselves).
"""

from __future__ import annotations

from contextlib import contextmanager

from functools import partial

import torch
import torch.nn.functional as F

from archcalc.errors import InputError
from archcalc.training.onednn import mkldnn_rnn, refusal, takes_onednn
from archcalc.patching import TURN, replaced

_CELLS = ("gru", "rnn_tanh", "rnn_relu", "lstm")
_STEPS = ("gru_cell", "rnn_tanh_cell", "rnn_relu_cell", "lstm_cell")


@contextmanager
def cpu_recurrence(device: str, amp: str | None = None):
    """While open (for device "cpu"), recurrent layers on the meta device run as the CPU runs them: an LSTM
    that oneDNN takes by its kernel (onednn.py; refused where oneDNN would run it in a low precision, as under
    autocast ``amp``), the rest by PyTorch's native path."""
    low = None if amp is None else getattr(torch, amp)
    if device != "cpu":
        yield
        return
    with TURN:
        originals = {name: getattr(torch._VF, name) for name in _CELLS}

        def entry(name):
            def run(*args, **kwargs):
                if kwargs or len(args) != 9 or not args[0].is_meta:
                    return originals[name](*args, **kwargs)
                if isinstance(args[3], bool):
                    if name == "lstm" and takes_onednn(args[0], args[1]):
                        why = refusal(args[0].dtype, low)
                        if why:
                            raise InputError(why)
                        return mkldnn_rnn(*args)  # oneDNN's fused LSTM, with its workspace (onednn.py)
                    return _rnn(name, *args)
                return _packed_rnn(name, *args)  # (data, batch_sizes, hx, weights, ...): a packed sequence

            return run

        def step(name):
            original = getattr(torch._VF, name)

            def run(x, hx, w_ih, w_hh, b_ih=None, b_hh=None):
                if not x.is_meta:
                    return original(x, hx, w_ih, w_hh, b_ih, b_hh)
                return _cell(name.removesuffix("_cell"))(x, hx, _Params((w_ih, w_hh, b_ih, b_hh), True, False), False)

            return run

        with replaced([(torch._VF, name, entry(name)) for name in _CELLS] +
                      [(torch._VF, name, step(name)) for name in _STEPS]):
            yield


class _Params:
    """One layer and direction's weights (PyTorch's CellParams): linear_ih, linear_hh, matmul_hr."""

    def __init__(self, weights, has_biases: bool, projected: bool):
        self.w_ih, self.w_hh = weights[0], weights[1]
        self.b_ih, self.b_hh = (weights[2], weights[3]) if has_biases else (None, None)
        self.w_hr = weights[-1] if projected else None

    def linear_ih(self, x):
        return F.linear(x, self.w_ih, self.b_ih)

    def linear_hh(self, h):
        return F.linear(h, self.w_hh, self.b_hh)

    def matmul_hr(self, h):
        return h if self.w_hr is None else torch.matmul(h, self.w_hr.t())


def _setup(name, hx, flat, has_biases):
    """(cell, gather_params's weights, the hidden states a layer and direction) for one call."""
    lstm = name == "lstm"
    projected = lstm and hx[0].size(-1) != hx[1].size(-1)
    stride = (4 if has_biases else 2) + projected
    params = [_Params(flat[i:i + stride], has_biases, projected) for i in range(0, len(flat), stride)]
    hiddens = list(zip(hx[0].unbind(0), hx[1].unbind(0))) if lstm else list(hx.unbind(0))
    return _cell(name), params, hiddens


def _cell(name):
    return {"gru": _gru, "rnn_tanh": _simple(torch.tanh), "rnn_relu": _simple(torch.relu), "lstm": _lstm}[name]


def _finals(name, finals):
    if name == "lstm":
        return torch.stack([h for h, _ in finals], 0), torch.stack([c for _, c in finals], 0)
    return (torch.stack(finals, 0),)


def _rnn(name, x, hx, flat, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    cell, params, hiddens = _setup(name, hx, flat, has_biases)
    x = x.transpose(0, 1) if batch_first else x
    output, finals = _layer_stack(_full_layer, cell, x, hiddens, params, num_layers, dropout, train, bidirectional)
    if batch_first:
        output = output.transpose(0, 1) if name == "lstm" else output.transpose_(0, 1)
    return (output, *_finals(name, finals))


def _packed_rnn(name, data, batch_sizes, hx, flat, has_biases, num_layers, dropout, train, bidirectional):
    cell, params, hiddens = _setup(name, hx, flat, has_biases)
    layer = partial(_packed_layer, [int(b) for b in batch_sizes])
    output, finals = _layer_stack(layer, cell, data, hiddens, params, num_layers, dropout, train, bidirectional)
    return (output, *_finals(name, finals))


def _layer_stack(layer, cell, x, hiddens, params, num_layers, dropout, train, bidirectional):
    """apply_layer_stack: layer after layer (both directions in each), dropout between them."""
    layer_input, finals, directions = x, [], 2 if bidirectional else 1
    for index in range(num_layers):
        at = index * directions
        if bidirectional:
            layer_input, hidden = layer(cell, layer_input, hiddens[at:at + 2], params[at:at + 2])
            finals += hidden
        else:
            layer_input, hidden = layer(cell, layer_input, hiddens[at], params[at])
            finals.append(hidden)
        if dropout and train and index < num_layers - 1:
            layer_input = torch.dropout(layer_input, dropout, True)
    return layer_input, finals


def _full_layer(cell, x, hidden, params):
    """FullLayer, or FullBidirectionalLayer (hidden and params pairs), with the CPU's input projection."""
    if isinstance(params, list):
        input_w = params[0].linear_ih(x)
        step_inputs = input_w.unbind(0)
        fw_outputs, fw_hidden = _full(cell, step_inputs, hidden[0], params[0])
        fw_output = torch.stack(fw_outputs, 0)
        input_w = params[1].linear_ih(x)
        step_inputs = input_w.unbind(0)
        rev_outputs, rev_hidden = _full(cell, step_inputs[::-1], hidden[1], params[1])
        rev_output = torch.stack(rev_outputs[::-1], 0)
        return torch.cat([fw_output, rev_output], fw_output.dim() - 1), [fw_hidden, rev_hidden]
    input_w = params.linear_ih(x)  # (alive until the layer returns, its stack made)
    step_outputs, hidden = _full(cell, input_w.unbind(0), hidden, params)
    return torch.stack(step_outputs, 0), hidden


def _packed_layer(sizes, cell, data, hidden, params):
    """PackedLayer and ReversedPackedLayer, or PackedBidirectionalLayer (pairs): the batch shrinks step by
    step; each direction projects all of the data at once first, on the CPU."""
    if isinstance(params, list):
        fw, fw_hidden = _packed_forward(sizes, cell, data, hidden[0], params[0])
        rev, rev_hidden = _packed_reversed(sizes, cell, data, hidden[1], params[1])
        return torch.cat([fw, rev], -1), [fw_hidden, rev_hidden]
    return _packed_forward(sizes, cell, data, hidden, params)


def _packed_forward(sizes, cell, data, hidden, params):
    step_outputs, hiddens, offset, last = [], [], 0, sizes[0]
    data_w = params.linear_ih(data)
    for size in sizes:
        step_input = data_w.narrow(0, offset, size)
        offset += size
        if last - size > 0:
            hiddens.append(_slice(hidden, size, last))
            hidden = _slice(hidden, 0, size)
        last = size
        hidden = cell(step_input, hidden, params)
        step_outputs.append(hidden[0] if isinstance(hidden, tuple) else hidden)
    hiddens.append(hidden)
    return torch.cat(step_outputs, 0), _concat(hiddens[::-1])


def _packed_reversed(sizes, cell, data, input_hidden, params):
    step_outputs, offset, last = [], data.size(0), sizes[-1]
    data_w = params.linear_ih(data)
    hidden = _slice(input_hidden, 0, sizes[-1])
    for size in reversed(sizes):
        if size - last > 0:
            hidden = _concat([hidden, _slice(input_hidden, last, size)])
        step_input = data_w.narrow(0, offset - size, size)
        offset -= size
        last = size
        hidden = cell(step_input, hidden, params)
        step_outputs.append(hidden[0] if isinstance(hidden, tuple) else hidden)
    return torch.cat(step_outputs[::-1], 0), hidden


def _slice(hidden, start, end):
    if isinstance(hidden, tuple):
        return tuple(h.narrow(0, start, end - start) for h in hidden)
    return hidden.narrow(0, start, end - start)


def _concat(hiddens):
    if isinstance(hiddens[0], tuple):
        return tuple(torch.cat(parts, 0) for parts in zip(*hiddens))
    return torch.cat(hiddens, 0)


def _full(cell, step_inputs, hidden, params):
    step_outputs = []
    for x in step_inputs:
        hidden = cell(x, hidden, params)
        step_outputs.append(hidden[0] if isinstance(hidden, tuple) else hidden)
    return step_outputs, hidden


def _gru(x, h, p, pre_computed=True):
    """GRUCell (RNN.cpp): ``x`` the step's row of the layer's projection (pre_compute_input), or its input."""
    chunked_igates = (x if pre_computed else p.linear_ih(x)).unsafe_chunk(3, 1)
    chunked_hgates = p.linear_hh(h).unsafe_chunk(3, 1)
    reset_gate = chunked_hgates[0].add_(chunked_igates[0]).sigmoid_()
    input_gate = chunked_hgates[1].add_(chunked_igates[1]).sigmoid_()
    new_gate = chunked_igates[2].add(chunked_hgates[2].mul_(reset_gate)).tanh_()
    return (h - new_gate).mul_(input_gate).add_(new_gate)


def _simple(nonlinearity):
    def cell(x, h, p, pre_computed=True):
        return nonlinearity(p.linear_hh(h).add_(x if pre_computed else p.linear_ih(x)))

    return cell


def _lstm(x, hidden, p, pre_computed=True):
    hx, cx = hidden
    gates = p.linear_hh(hx).add_(x if pre_computed else p.linear_ih(x))
    chunked_gates = gates.unsafe_chunk(4, 1)
    ingate = chunked_gates[0].sigmoid_()
    forgetgate = chunked_gates[1].sigmoid_()
    cellgate = chunked_gates[2].tanh_()
    outgate = chunked_gates[3].sigmoid_()
    cy = (forgetgate * cx).add_(ingate * cellgate)
    hy = outgate * cy.tanh()
    return p.matmul_hr(hy), cy
