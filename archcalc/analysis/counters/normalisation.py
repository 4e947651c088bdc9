"""Normalisation: BatchNorm, LayerNorm, GroupNorm, RMSNorm, InstanceNorm, LocalResponseNorm, F.normalize.

No multiply-accumulates (torch.utils.flop_counter counts none); the element-wise work, per element:
  BatchNorm (eval)       2    x*γ/σ + (β - μγ/σ): running statistics folded into one scale and shift
  BatchNorm (train)      5    the batch's statistics, as LayerNorm's below (+ 1 for γ, + 1 for β)
  LayerNorm, GroupNorm,  5    statistics of each group: mean (1 add), x - μ (1), (x - μ)² summed (2),
  InstanceNorm                and the scale by 1/σ (1); + 1 for γ, + 1 for β when affine
                              (InstanceNorm with running statistics in eval: 2, as BatchNorm)
  RMSNorm                3    x² summed (2) and the scale by 1/rms (1); + 1 for γ
  F.normalize            3    |x|^p summed (2) and the divide (1)
  LocalResponseNorm      2n + 3   b = a / (k + α/n Σ a²)^β over n neighbouring channels
  weight norm            3    w = g·v/‖v‖ (torch._weight_norm, the weight_norm parametrization's): v² summed (2)
                              and the scale by g/‖v‖ (1), per element of v
The per-group square roots and divides by the group size are not counted (one per group, not per element).
"""

from __future__ import annotations

from functools import partial
from math import prod

from torch import nn

from archcalc.analysis.counting import MODULES, OPS, Count, ModuleCall, OpCall
from archcalc.analysis.shapes import elements_text
from archcalc.formulas.numbers import grouped
from archcalc.formulas.params import per_map_params


def norm_count(shape: tuple, statistics: int, affine: int, what: str) -> Count:
    """(statistics + affine) operations per element of ``shape``."""
    per = statistics + affine
    n = per * prod(shape)
    return Count(0, n, partial(_norm_text, shape, statistics, affine, what, n))


def _norm_text(shape, statistics, affine, what, n) -> dict[str, str]:
    per = f"({statistics} + {affine} affine)" if affine else f"{statistics}"
    return {"elementwise": f"{what}: {per}*{elements_text(shape)} = {grouped(n)}"}


# -- BatchNorm (text as the lectures' tables have it) -------------------------------------------

@MODULES.register(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
def batch_norm(call: ModuleCall) -> Count:
    m = call.module
    if m.training or not m.track_running_stats:  # the batch's own statistics (PyTorch's bn_training)
        count = norm_count(call.output, 5, _affine(m.weight, m.bias), "BatchNorm with the batch's statistics")
        return count._replace(formulas={**count.text(), **_batch_norm_params(m)})
    elementwise = 2 * prod(call.output)
    return Count(0, elementwise, partial(_batch_norm_text, m, call.output, elementwise))


def _batch_norm_text(m: nn.Module, out: tuple, elementwise: int) -> dict[str, str]:
    return {"elementwise": f"2*{elements_text(out)} = {grouped(elementwise)} (x*γ/σ + (β - μγ/σ), folded)",
            **_batch_norm_params(m)}


def _batch_norm_params(m: nn.Module) -> dict[str, str]:
    return {"params": f"(γ + β)*C = {per_map_params(m.num_features, ('γ', 'β'))}"} if m.affine else {}


@OPS.register("batch_norm")
def batch_norm_op(call: OpCall) -> Count:
    """F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps): the running
    statistics folded (2 per element), or with training (or no running statistics) the batch's own."""
    if call.arg(5, "training", False) or call.arg(1, "running_mean") is None:
        return norm_count(call.output, 5, _affine(call.arg(3, "weight"), call.arg(4, "bias")),
                          "batch_norm with the batch's statistics")
    n = 2 * prod(call.output)
    return Count(0, n, {"elementwise": f"2*{elements_text(call.output)} = {grouped(n)}"})


# -- statistics of the tensor itself -------------------------------------------------------------

@MODULES.register(nn.LayerNorm)
def layer_norm(call: ModuleCall) -> Count:
    m = call.module
    return norm_count(call.output, 5, _affine(m.weight, m.bias), f"LayerNorm over {tuple(m.normalized_shape)}")


@MODULES.register(nn.GroupNorm)
def group_norm(call: ModuleCall) -> Count:
    m = call.module
    return norm_count(call.output, 5, _affine(m.weight, m.bias), f"GroupNorm, {m.num_groups} groups")


@MODULES.register(nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
def instance_norm(call: ModuleCall) -> Count:
    m = call.module
    if m.track_running_stats and not m.training:
        return norm_count(call.output, 2, 0, "InstanceNorm with running statistics (folded)")
    return norm_count(call.output, 5, _affine(m.weight, m.bias), "InstanceNorm, per map")


if hasattr(nn, "RMSNorm"):  # PyTorch 2.4 and later
    @MODULES.register(nn.RMSNorm)
    def rms_norm(call: ModuleCall) -> Count:
        m = call.module
        return norm_count(call.output, 3, _affine(m.weight), f"RMSNorm over {tuple(m.normalized_shape)}")


def lrn_count(out: tuple, size: int) -> Count:
    """b = a / (k + α/n Σ a²)^β over n neighbouring channels: per element n squares, n - 1 adds,
    then scale, add k, power and divide (4): 2n + 3 operations."""
    per = 2 * size + 3
    n = per * prod(out)
    return Count(0, n, lambda: {"elementwise": f"(2*{size} + 3)*{elements_text(out)} = {grouped(n)}"})


@MODULES.register(nn.LocalResponseNorm)
def local_response_norm(call: ModuleCall) -> Count:
    return lrn_count(call.output, call.module.size)


def _affine(*tensors) -> int:
    return sum(t is not None for t in tensors)


@OPS.register("layer_norm")
def layer_norm_op(call: OpCall) -> Count:
    """F.layer_norm(input, normalized_shape, weight, bias, eps)."""
    return norm_count(call.inputs[0], 5, _affine(call.arg(2, "weight"), call.arg(3, "bias")),
                      f"layer_norm over {tuple(call.arg(1, 'normalized_shape'))}")


@OPS.register("group_norm")
def group_norm_op(call: OpCall) -> Count:
    """F.group_norm(input, num_groups, weight, bias, eps)."""
    return norm_count(call.inputs[0], 5, _affine(call.arg(2, "weight"), call.arg(3, "bias")),
                      f"group_norm, {call.arg(1, 'num_groups')} groups")


@OPS.register("instance_norm")
def instance_norm_op(call: OpCall) -> Count:
    """F.instance_norm(input, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)."""
    if not call.arg(5, "use_input_stats", True):
        return norm_count(call.inputs[0], 2, 0, "instance_norm with running statistics (folded)")
    return norm_count(call.inputs[0], 5, _affine(call.arg(3, "weight"), call.arg(4, "bias")), "instance_norm, per map")


@OPS.register("rms_norm")
def rms_norm_op(call: OpCall) -> Count:
    """F.rms_norm(input, normalized_shape, weight, eps)."""
    return norm_count(call.inputs[0], 3, _affine(call.arg(2, "weight")),
                      f"rms_norm over {tuple(call.arg(1, 'normalized_shape'))}")


@OPS.register("normalize")
def normalize_op(call: OpCall) -> Count:
    """F.normalize(input, p, dim): x / max(‖x‖_p, eps)."""
    return norm_count(call.inputs[0], 3, 0, f"normalize (p={call.arg(1, 'p', 2.0):g})")


@OPS.register("local_response_norm")
def local_response_norm_op(call: OpCall) -> Count:
    return lrn_count(call.output, call.arg(1, "size"))


@OPS.register("_weight_norm")
def weight_norm(call: OpCall) -> Count:
    """torch._weight_norm(v, g, dim): w = g·v/‖v‖, the norm over every dimension but ``dim`` (a weight_norm
    parametrization's, run each forward): 3 per element of v."""
    return norm_count(call.inputs[0], 3, 0, "weight norm g·v/‖v‖")
