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
updates. Packed sequences keep PyTorch's own path.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from archcalc.training.patching import TURN, replaced

_CELLS = ("gru", "rnn_tanh", "rnn_relu", "lstm")


@contextmanager
def cpu_recurrence(device: str):
    """While open (for device "cpu"), recurrent layers on the meta device run the CPU's native path."""
    if device != "cpu":
        yield
        return
    with TURN:
        originals = {name: getattr(torch._VF, name) for name in _CELLS}

        def entry(name):
            def run(*args, **kwargs):
                if kwargs or len(args) != 9 or not isinstance(args[3], bool) or not args[0].is_meta:
                    return originals[name](*args, **kwargs)  # a packed sequence (its 4th: the weights): PyTorch's
                return _rnn(name, *args)

            return run

        with replaced([(torch._VF, name, entry(name)) for name in _CELLS]):
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


def _rnn(name, x, hx, flat, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    lstm = name == "lstm"
    projected = lstm and hx[0].size(-1) != hx[1].size(-1)
    stride = (4 if has_biases else 2) + projected
    params = [_Params(flat[i:i + stride], has_biases, projected) for i in range(0, len(flat), stride)]
    x = x.transpose(0, 1) if batch_first else x
    hiddens = list(zip(hx[0].unbind(0), hx[1].unbind(0))) if lstm else list(hx.unbind(0))
    cell = {"gru": _gru, "rnn_tanh": _simple(torch.tanh), "rnn_relu": _simple(torch.relu), "lstm": _lstm}[name]
    output, finals = _layer_stack(cell, x, hiddens, params, num_layers, dropout, train, bidirectional)
    if lstm:
        hy, cy = torch.stack([h for h, _ in finals], 0), torch.stack([c for _, c in finals], 0)
        return (output.transpose(0, 1) if batch_first else output), hy, cy
    hy = torch.stack(finals, 0)
    return (output.transpose_(0, 1) if batch_first else output), hy


def _layer_stack(cell, x, hiddens, params, num_layers, dropout, train, bidirectional):
    """apply_layer_stack over FullLayer or FullBidirectionalLayer, with the CPU's input projection."""
    layer_input, finals, directions = x, [], 2 if bidirectional else 1
    for layer in range(num_layers):
        at = layer * directions
        if bidirectional:
            input_w = params[at].linear_ih(layer_input)
            step_inputs = input_w.unbind(0)
            fw_outputs, fw_hidden = _full(cell, step_inputs, hiddens[at], params[at])
            fw_output = torch.stack(fw_outputs, 0)
            input_w = params[at + 1].linear_ih(layer_input)
            step_inputs = input_w.unbind(0)
            rev_outputs, rev_hidden = _full(cell, step_inputs[::-1], hiddens[at + 1], params[at + 1])
            rev_output = torch.stack(rev_outputs[::-1], 0)
            outputs = torch.cat([fw_output, rev_output], fw_output.dim() - 1)
            finals += [fw_hidden, rev_hidden]
            del input_w, step_inputs, fw_outputs, fw_output, rev_outputs, rev_output
        else:
            input_w = params[at].linear_ih(layer_input)  # (alive until the layer returns, its stack made)
            step_outputs, hidden = _full(cell, input_w.unbind(0), hiddens[at], params[at])
            outputs = torch.stack(step_outputs, 0)
            finals.append(hidden)
            del input_w, step_outputs
        layer_input = outputs
        del outputs
        if dropout and train and layer < num_layers - 1:
            layer_input = torch.dropout(layer_input, dropout, True)
    return layer_input, finals


def _full(cell, step_inputs, hidden, params):
    step_outputs = []
    for x in step_inputs:
        hidden = cell(x, hidden, params)
        step_outputs.append(hidden[0] if isinstance(hidden, tuple) else hidden)
    return step_outputs, hidden


def _gru(x, h, p):
    chunked_igates = x.unsafe_chunk(3, 1)
    chunked_hgates = p.linear_hh(h).unsafe_chunk(3, 1)
    reset_gate = chunked_hgates[0].add_(chunked_igates[0]).sigmoid_()
    input_gate = chunked_hgates[1].add_(chunked_igates[1]).sigmoid_()
    new_gate = chunked_igates[2].add(chunked_hgates[2].mul_(reset_gate)).tanh_()
    return (h - new_gate).mul_(input_gate).add_(new_gate)


def _simple(nonlinearity):
    def cell(x, h, p):
        return nonlinearity(p.linear_hh(h).add_(x))

    return cell


def _lstm(x, hidden, p):
    hx, cx = hidden
    gates = p.linear_hh(hx).add_(x)
    chunked_gates = gates.unsafe_chunk(4, 1)
    ingate = chunked_gates[0].sigmoid_()
    forgetgate = chunked_gates[1].sigmoid_()
    cellgate = chunked_gates[2].tanh_()
    outgate = chunked_gates[3].sigmoid_()
    cy = (forgetgate * cx).add_(ingate * cellgate)
    hy = outgate * cy.tanh()
    return p.matmul_hr(hy), cy
