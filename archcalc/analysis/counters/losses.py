"""Loss functions, where a model's forward computes its own (Hugging Face's with labels, a detector's in train mode):
element-wise work, no multiply-accumulates, by a declared rule in archcalc's element-wise convention (an activation
such as GELU is one operation per element, a reduction one per input element):

  point-wise losses  1 per input element (the loss function of each element), + 1 per input element for the
                     reduction (mean or sum; none with reduction='none'): MSE, L1, smooth L1, Huber, binary
                     cross-entropy (with logits), soft margin, Poisson and Gaussian NLL, KL divergence, hinge
                     embedding, margin ranking, multilabel soft margin
  cross_entropy      class indices: log_softmax, 1 per logit, then nll_loss, 1 per target element (the picked
                     log-probability negated and reduced); label smoothing adds 1 per logit (its sum over
                     classes); class probabilities as target: log_softmax, a product and a sum, 3 per logit
  nll_loss           1 per target element
  triplet_margin_loss  its 2 (3 with swap) pairwise distances, 3 per element each, + 3 per triplet (+ the swap's
                     minimum) + the reduction;  cosine_embedding_loss  the cosines, 3 per element, + 9 per pair
  linear_cross_entropy   the logits' MACs (N*D*V) and bias, then cross_entropy's rule; PyTorch's chunked path
                     computes the gradients in the forward when autograd records it (reduction 'mean', 'sum')
  ctc_loss           the CPU kernel's forward recursion: per step t >= 1 and extended label s, 11 operations (a
                     log-sum-exp of three terms) and the max's comparisons, the likelihood, the reduction; the
                     labels and lengths read from the tensors (on the meta device, which has none: not counted)
  multi_margin_loss  per class but the target's, the hinge (1; p = 2 and a weight + 1 each) and the sum over
                     classes (1); the reduction 1 a sample
  multilabel_margin_loss  per (target, non-target class) pair the hinge and the sum (2), L*(C - U) pairs a sample
                     for its L targets (U different) read from the target's labels (on meta: not counted); /C and
                     the reduction 1 a sample each
Their gradients: as every element-wise operation's, one per forward operation (counting.ELEMENTWISE_BACKWARD).
"""

from __future__ import annotations

from math import prod
from typing import NamedTuple

import torch

from archcalc.analysis.counting import GRAD_OPS, OPS, Count, Needs, OpCall, gradients
from archcalc.analysis.shapes import elements_text
from archcalc.errors import real_device
from archcalc.formulas.numbers import grouped

POINT_WISE = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
              "binary_cross_entropy_with_logits", "soft_margin_loss", "poisson_nll_loss", "gaussian_nll_loss",
              "kl_div", "hinge_embedding_loss", "margin_ranking_loss", "multilabel_soft_margin_loss")


def _reduced(call: OpCall) -> bool:
    return call.kwargs.get("reduction", "mean") != "none"


@OPS.register(*POINT_WISE)
def point_wise_loss(call: OpCall) -> Count:
    x = call.inputs[0]
    reduced = _reduced(call)
    n = prod(x) * (2 if reduced else 1)
    what = "(the loss + the reduction)" if reduced else "the loss (reduction='none')"
    per = "2*" if reduced else ""
    return Count(0, n, {"elementwise": f"{what} per input element: {per}{elements_text(x)} = {grouped(n)}"})


@OPS.register("cross_entropy")
def cross_entropy(call: OpCall) -> Count:
    return cross_entropy_count(call.inputs[0], call.inputs[1], call.kwargs.get("label_smoothing", 0.0) or 0.0)


def cross_entropy_count(logits: tuple, target: tuple, smoothing: float) -> Count:
    n, t = prod(logits), prod(target)
    if tuple(target) == tuple(logits) and len(logits) > 1:  # class probabilities
        total = 3 * n
        return Count(0, total, {"elementwise": f"log_softmax, product and sum: 3*{elements_text(logits)} = "
                                               f"{grouped(total)}"})
    total = n * (2 if smoothing else 1) + t
    text = f"log_softmax {elements_text(logits)}" + (f" + smoothing {elements_text(logits)}" if smoothing else "")
    return Count(0, total, {"elementwise": f"{text} + nll {elements_text(target)} = {grouped(total)}"})


# -- F.linear_cross_entropy: a language model's head and its loss in one ------------------------------------------

class _Head(NamedTuple):
    logits: tuple  # (*batch, classes, *out_features)
    d: int  # in_features
    bias: bool
    loss: Count  # cross_entropy's element-wise work over the logits
    chunked: bool  # PyTorch's chunked path: options given, a configuration it supports
    needs: tuple[bool, bool, bool]  # input, linear weight, linear bias: each requires grad


def _head(call: OpCall) -> _Head:
    x, w, target = call.args[0], call.args[1], call.args[2]
    bias = call.kwargs.get("linear_bias")
    logits = (*x.shape[:-1], *w.shape[:-1])
    reduction, smoothing = call.kwargs.get("reduction", "mean"), call.kwargs.get("label_smoothing", 0.0) or 0.0
    chunked = (call.kwargs.get("options") is not None and reduction in ("mean", "sum", "none") and not smoothing
               and target.dtype == torch.int64 and w.dim() == 2)
    needs = (x.requires_grad, w.requires_grad, bias is not None and bias.requires_grad)
    return _Head(logits, x.shape[-1], bias is not None, cross_entropy_count(logits, tuple(target.shape), smoothing),
                 chunked, needs)


def _gradients_in_forward(call: OpCall, head: _Head) -> bool:
    """The chunked path with reduction 'mean' or 'sum' computes the gradients in its forward, when autograd
    records the call (its compute_input_grad, compute_linear_weight_grad, compute_linear_bias_grad)."""
    return head.chunked and call.kwargs.get("reduction", "mean") != "none" and call.recorded


@OPS.register("linear_cross_entropy")
def linear_cross_entropy(call: OpCall) -> Count:
    """F.linear_cross_entropy(input, linear_weight, target, linear_bias=, ..., options=) and nn.LinearCrossEntropyLoss
    (PyTorch 2.13: a language model's head and its loss in one): the logits, N*D*V MACs (N the input's rows, V the
    classes x out_features) and their bias, then cross_entropy's element-wise rule. The chunked path (options
    given, a configuration it supports) never holds the logits; with reduction 'mean' or 'sum', when autograd
    records the call, it computes the gradients in this forward: ∂x N*V*D where the input needs one, ∂W V*N*D
    where the weight does, and their element-wise work (the declared backward rule: as much again); its backward
    then only scales them by ∂loss."""
    head = _head(call)
    n = prod(head.logits)
    macs, elementwise = n * head.d, (n if head.bias else 0) + head.loss.elementwise
    terms = [f"logits {elements_text(head.logits)}*{head.d}" + (" (PyTorch's chunked path)" if head.chunked else "")]
    extra = ""
    if _gradients_in_forward(call, head):
        for what, needed in (("∂x", head.needs[0]), ("∂W", head.needs[1])):
            if needed:
                macs += n * head.d
                terms.append(f"{what} (in the chunked forward) {elements_text(head.logits)}*{head.d}")
        elementwise *= 2
        extra = ", and as much again for the gradients (the declared backward rule)"
    loss = head.loss.text()["elementwise"].rsplit(" = ", 1)[0]
    return Count(macs, elementwise, {
        "macs": " + ".join(terms) + f" = {grouped(macs)}",
        "elementwise": (f"bias {elements_text(head.logits)} + " if head.bias else "") + f"{loss}{extra} = "
                       f"{grouped(elementwise)}"})


@GRAD_OPS.register("linear_cross_entropy")
def linear_cross_entropy_backward(call: OpCall, needs: Needs) -> Count:
    """The reference path: ∂x = ∂logits·W and ∂W = ∂logitsᵀ·x, N*V*D each. The chunked path: with reduction
    'mean' or 'sum' the gradients made in the forward scaled by ∂loss (one product per element of each); with
    'none' the logits recomputed, then the gradients."""
    head = _head(call)
    each = prod(head.logits) * head.d
    text = f"{elements_text(head.logits)}*{head.d}"
    if _gradients_in_forward(call, head):
        bias = call.kwargs.get("linear_bias")
        sizes = (call.args[0].numel(), call.args[1].numel(), bias.numel() if bias is not None else 0)
        scaled = sum(size for size, needed in zip(sizes, head.needs) if needed)
        return Count(0, scaled, {"macs": "made in the chunked forward: none here",
                                 "elementwise": f"the forward's gradients scaled by ∂loss: {grouped(scaled)}"})
    recompute = [("logits recomputed", head.chunked, each, text)]
    return gradients(recompute + [("∂x", head.needs[0], each, text), ("∂W", head.needs[1], each, text)])


@OPS.register("triplet_margin_loss")
def triplet_margin_loss(call: OpCall) -> Count:
    """F.triplet_margin_loss(anchor, positive, negative, margin, p, eps, swap) as ATen writes it: the distances
    anchor-positive and anchor-negative (and positive-negative with swap, then their minimum), each
    pairwise_distance's 3 per element; per triplet margin + d_pos - d_neg clamped at 0 (3); the reduction."""
    x = call.inputs[0]
    rows, swap = prod(x[:-1]), bool(call.arg(6, "swap", False))
    distances = 3 if swap else 2
    n = distances * 3 * prod(x) + rows * (3 + (1 if swap else 0) + (1 if _reduced(call) else 0))
    return Count(0, n, {"elementwise": f"{distances} distances 3*{elements_text(x)} each + per triplet "
                                       f"{3 + swap + _reduced(call)} = {grouped(n)}"})


@OPS.register("cosine_embedding_loss")
def cosine_embedding_loss(call: OpCall) -> Count:
    """F.cosine_embedding_loss(x1, x2, y, margin) as ATen writes it: the cosine of each pair (cosine_similarity's
    3 per element), then per pair 2 eps adds, a product, a root and a division, 1 - cos, cos - margin clamped
    at 0 and the two branches' sum (9); the reduction."""
    x = call.inputs[0]
    rows = prod(x[:-1]) if len(x) > 1 else 1
    n = 3 * prod(x) + rows * (9 + (1 if _reduced(call) else 0))
    return Count(0, n, {"elementwise": f"cosines 3*{elements_text(x)} + per pair {9 + _reduced(call)} = "
                                       f"{grouped(n)}"})


@OPS.register("multi_margin_loss")
def multi_margin_loss(call: OpCall) -> Count:
    """F.multi_margin_loss(x (N, C), y, p, margin, weight) as ATen's MultiMarginCriterion runs it: for each class i
    but the target's, the hinge max(0, margin - x_y + x_i) (1, the loss function of each element, as the
    point-wise losses; p = 2 squares it, + 1; a weight multiplies it, + 1), summed over the classes and divided
    by C (C - 1 a sample), then the reduction (1 a sample)."""
    x = call.inputs[0]
    classes = x[-1] if x else 1
    rows = prod(x[:-1]) if len(x) > 1 else 1
    squared = int(call.arg(2, "p", 1)) == 2
    weighted = call.arg(4, "weight", None) is not None
    each = 1 + squared + weighted
    hinges = rows * (classes - 1)
    n = hinges * (each + 1) + (rows if _reduced(call) else 0)
    parts = "the hinge" + (", its square" if squared else "") + (", the class weight" if weighted else "")
    return Count(0, n, {"elementwise": f"{rows}*{classes - 1} classes but the target's * ({parts}: {each}, their sum"
                                       f" and /C: 1){' + the reduction ' + str(rows) if _reduced(call) else ''}"
                                       f" = {grouped(n)}"})


def _no_targets() -> str:
    return (f"its pairs of a target and a non-target class are read from the target's labels, which the meta device "
            f"does not hold: {real_device()}")


@OPS.register("multilabel_margin_loss")
def multilabel_margin_loss(call: OpCall) -> Count:
    """F.multilabel_margin_loss(x (N, C), y (N, C)) as ATen's MultiLabelMarginCriterion runs it: a sample's targets
    are y's labels up to the first negative one (L of them, U different); for each target j and each class i not a
    target, the hinge max(0, 1 - x_j + x_i) (1) and its sum, L*(C - U) pairs, 2 each; the division by C (1 a
    sample), then the reduction (1 a sample). The labels are read from the target's values."""
    x, target = call.inputs[0], call.arg(1, "target", None)
    if not isinstance(target, torch.Tensor) or target.device.type == "meta":
        return Count(None, None, {}, _no_targets())
    classes = x[-1] if x else 1
    pairs, rows = 0, 0
    for row in target.detach().cpu().reshape(-1, classes).tolist():
        labels = row[:next((i for i, v in enumerate(row) if v < 0), len(row))]
        pairs, rows = pairs + len(labels) * (classes - len(set(labels))), rows + 1
    n = 2 * pairs + rows + (rows if _reduced(call) else 0)
    return Count(0, n, {"elementwise": f"{grouped(pairs)} (target, non-target) pairs * 2 (the hinge and its sum) + "
                                       f"/C {rows}{' + the reduction ' + str(rows) if _reduced(call) else ''} = "
                                       f"{grouped(n)}"})


@OPS.register("nll_loss", "nll_loss2d")
def nll_loss(call: OpCall) -> Count:
    t = prod(call.inputs[1])
    return Count(0, t, {"elementwise": f"1 per target element (picked, negated, reduced): "
                                       f"{elements_text(call.inputs[1])} = {grouped(t)}"})


def _no_labels() -> str:
    return f"reads the targets' labels and lengths, which the meta device does not hold: {real_device()}"


@OPS.register("ctc_loss")
def ctc_loss(call: OpCall) -> Count:
    """F.ctc_loss(log_probs (T, N, C), targets, input_lengths, target_lengths, blank, reduction) as PyTorch's CPU
    kernel runs it (LossCTC.cpp, the forward recursion of Graves et al.), for each sample b over its T_b steps and
    S = 2L_b + 1 extended labels: for t >= 1 and every s, a log-sum-exp of three terms as the kernel writes it
    (3 differences, 3 exponentials, 2 adds, a log, the max and the log-probability added: 11, an absent term's
    exp(-inf) included) and the max's comparisons (one for s > 0, one where the label differs from the one two
    back: D_b such pairs); the likelihood from the last two alphas (9: a max, 2 differences, 2 exponentials, an
    add, a log, the max added, the sign), or 1 for an empty target; the reduction ('mean': a clamp, a division by
    L_b and the mean, 3 a sample; 'sum' 1). The labels and lengths are read from the tensors."""
    log_probs, targets = call.args[0], call.args[1]
    lengths = [_values(call.arg(i, name)) for i, name in ((2, "input_lengths"), (3, "target_lengths"))]
    if targets.device.type == "meta" or None in lengths:
        return Count(None, None, {}, _no_labels())
    inputs, targets_per = lengths
    labels = targets.detach().cpu().reshape(len(targets_per), -1) if targets.dim() == 2 or log_probs.dim() == 2 \
        else torch.split(targets.detach().cpu(), targets_per)
    steps = total = 0
    for t, length, row in zip(inputs, targets_per, labels):
        row = row[:length]
        changes = int((row[1:] != row[:-1]).sum()) if length > 1 else 0
        s = 2 * length + 1
        steps += max(t - 1, 0) * s
        total += max(t - 1, 0) * (11 * s + 2 * length + changes) + (0 if t == 0 else 9 if length else 1)
    reduction = call.arg(5, "reduction", "mean")
    reduced = {"mean": 3, "sum": 1}.get(reduction, 0) * len(inputs)
    n = total + reduced
    return Count(0, n, {"elementwise": f"{grouped(steps)} (t, s) steps of the recursion, 11 each + the max's "
                                       f"comparisons, the likelihoods and the reduction ({reduction}) = {grouped(n)}"})


def _values(lengths) -> list[int] | None:
    """A tensor's or a sequence's lengths as integers; None where the tensor holds no values (meta)."""
    if isinstance(lengths, torch.Tensor):
        return None if lengths.device.type == "meta" else [int(v) for v in lengths.reshape(-1).tolist()]
    return [int(v) for v in lengths]
