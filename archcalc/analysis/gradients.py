"""A record's backward count: which of its gradients autograd computes (its inputs', its weights'), each by its
counter's backward formula, with the element-wise work by the declared rule (counting.with_elementwise)."""

from __future__ import annotations

from torch import nn

from archcalc.analysis import transforms
from archcalc.analysis.counting import (GRAD_OPS, NO_GRADIENT, NO_PRODUCTS, NOT_COUNTED, Count, Needs, OpCall, needs_of,
                                        parameter_names, with_elementwise)

FORWARD_AD_BACKWARD = Count(None, None, {}, "the backward of operations that computed forward-mode AD's tangents out "
                                          "of the trace's sight (tangents of tangents: jvp of jvp; a gradient's "
                                          "tangents under nested forward mode) has no formula here: not counted")


def operation_gradient(call: OpCall, count: Count, inputs: list) -> Count:
    """The gradients of an operation a Function's backward ran again and differentiated (custom_functions.py), as
    an operation row's (_leave_op): the parameters among its inputs are its own."""
    params = [t for t in inputs if isinstance(t, nn.Parameter)]
    return gradient(GRAD_OPS.get(call.name), call, count, inputs, params)


def alike(call, params: tuple[int, ...]) -> bool:
    """Whether a layer's weight matrices' tangents are all batched alike, and as much as any of its parameters' (its
    biases'): what a tangent rule of its own (counting.own_tangent) takes as its weights' one figure."""
    if not params or not any(params):
        return True
    names = parameter_names(call.module)
    matrices = {e for n, e in zip(names, params) if "weight" in n.rsplit(".", 1)[-1]}
    return len(names) == len(params) and len(matrices) == 1 and max(matrices) == max(params)


def gradient(counter, call, count: Count, inputs: list, params) -> Count:
    """A record's backward count: no MACs for what has no products (norms, activations, copies), the
    counter's for what has, "not counted" where there is no backward formula; element-wise work by the
    declared rule (counting.with_elementwise). An input a torch.func transform wraps needs one where the plain
    tensor under it does, and so do weights (functional_call's, jvp in parameter space): the step's backward is regular
    autograd's, not the transform's level."""
    return gradient_for(counter, call, count, needs_of(
        call, tuple(transforms.levels(t)[-1].requires_grad for t in inputs),
        [p is not None and transforms.levels(p)[-1].requires_grad for p in params]))


def gradient_for(counter, call, count: Count, needs: Needs) -> Count:
    """A record's backward count, ``needs`` saying which of its gradients are computed."""
    if count.macs is None:
        return NOT_COUNTED
    if count.macs == 0:
        grad = NO_PRODUCTS
    elif counter is None:  # (no backward formula, none needed where autograd differentiates nothing: a quantized layer)
        return NOT_COUNTED if needs.weights or any(needs.inputs) else NO_GRADIENT
    else:
        grad = counter(call, needs)
    return with_elementwise(grad, count, needs.weights or any(needs.inputs))
