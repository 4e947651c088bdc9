"""The lectures' own layers (archcalc.layers.lenet): LeNet-5's subsampling, its C3 connection table, its
RBF output layer and its scaled tanh (LeCun et al. 1998, as the lecture's parameter table counts them)."""

from __future__ import annotations

from math import prod

from archcalc.analysis.counters.text import bias_text
from archcalc.analysis.counting import GRAD_MODULES, MODULES, Count, ModuleCall, Needs, repeated
from archcalc.analysis.shapes import elements_text, window_formula
from archcalc.formulas.numbers import grouped
from archcalc.formulas.params import connection_table_params, per_map_params
from archcalc.layers.lenet import ConnectionTableConv2d, RBFOutput, ScaledTanh, Subsampling


@MODULES.register(Subsampling)
def subsampling(call: ModuleCall) -> Count:
    m, out = call.module, call.output
    k = m.kernel_size
    elementwise = (k * k + 1) * prod(out)
    return Count(0, elementwise, lambda: {
        "output": window_formula(call.input[-2:], k, k, 0, 1, False),
        "params": f"(coefficient + bias)*maps = {per_map_params(m.maps, ('coefficient', 'bias'))}",
        "elementwise": f"({k}*{k} - 1 adds + 1 multiply + 1 bias)*{elements_text(out)} = {grouped(elementwise)}",
    }, "no convolution or linear work: its cost is element-wise")


@MODULES.register(ConnectionTableConv2d)
def connection_table_conv(call: ModuleCall) -> Count:
    m, out = call.module, call.output
    connections = sum(len(t) for t in m.table)
    spatial = prod(out[:1] + out[2:])
    per_output = list(m.kernel_size) + [connections]
    macs = spatial * prod(per_output)
    elementwise = prod(out)
    return Count(macs, elementwise, lambda: {
        "output": window_formula(call.input[-2:], m.kernel_size, 1, 0, 1, False),
        "params": str(connection_table_params(m.kernel_size, [len(t) for t in m.table])),
        "macs": f"{elements_text(out[:1] + out[2:])}*({'*'.join(map(str, per_output))} connections) = {grouped(macs)}",
        "elementwise": bias_text(out, elementwise),
    })


@MODULES.register(RBFOutput)
def rbf_output(call: ModuleCall) -> Count:
    m = call.module
    rows = prod(call.input[:-1])
    macs = rows * m.in_features * m.out_features
    return Count(macs, macs, lambda: {
        "params": f"{m.in_features}*{m.out_features} = {grouped(m.in_features * m.out_features)} "
                  "(fixed, not trainable)",
        "macs": f"y_i = Σ_j (x_j - w_ij)²: {rows}*{m.in_features}*{m.out_features} = {grouped(macs)}",
        "elementwise": f"subtractions: {rows}*{m.in_features}*{m.out_features} = {grouped(macs)}",
    })


@MODULES.register(ScaledTanh)
def scaled_tanh(call: ModuleCall) -> Count:
    n = prod(call.output)
    return Count(0, 3 * n, lambda: {"elementwise": f"A*tanh(S*a): 3*{elements_text(call.output)} = {grouped(3 * n)}"})


@GRAD_MODULES.register(ConnectionTableConv2d, RBFOutput)
def products_backward(call: ModuleCall, needs: Needs) -> Count:
    """As a convolution or linear layer: ∂x and ∂W each the forward's MACs (the RBF's W is fixed: ∂x only)."""
    forward = connection_table_conv(call) if isinstance(call.module, ConnectionTableConv2d) else rbf_output(call)
    return repeated(forward, ("∂x", needs.input(0)), ("∂W", needs.weight()))
