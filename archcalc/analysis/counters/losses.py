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
Their gradients: as every element-wise operation's, one per forward operation (counting.ELEMENTWISE_BACKWARD).
"""

from __future__ import annotations

from math import prod

from archcalc.analysis.counting import OPS, Count, OpCall
from archcalc.analysis.shapes import elements_text
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
    logits, target = call.inputs[0], call.inputs[1]
    n, t = prod(logits), prod(target)
    if tuple(target) == tuple(logits) and len(logits) > 1:  # class probabilities
        total = 3 * n
        return Count(0, total, {"elementwise": f"log_softmax, product and sum: 3*{elements_text(logits)} = "
                                               f"{grouped(total)}"})
    smoothing = call.kwargs.get("label_smoothing", 0.0) or 0.0
    total = n * (2 if smoothing else 1) + t
    text = f"log_softmax {elements_text(logits)}" + (f" + smoothing {elements_text(logits)}" if smoothing else "")
    return Count(0, total, {"elementwise": f"{text} + nll {elements_text(target)} = {grouped(total)}"})


@OPS.register("nll_loss", "nll_loss2d")
def nll_loss(call: OpCall) -> Count:
    t = prod(call.inputs[1])
    return Count(0, t, {"elementwise": f"1 per target element (picked, negated, reduced): "
                                       f"{elements_text(call.inputs[1])} = {grouped(t)}"})
