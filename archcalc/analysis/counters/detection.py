"""The operations of detectors (torchvision.ops): a region's features pooled to a fixed grid, and boxes kept by
non-maximum suppression. No multiply-accumulates; element-wise work, by what torchvision's kernels compute:

  roi_align (Mask R-CNN's RoIAlign), ps_roi_align (R-FCN's, position-sensitive)
        per output element: g = grid_h*grid_w sample points of its bin, each a bilinear interpolation (4 products
        + 3 adds, as interpolate's), summed (g - 1 adds) and averaged (1 division): 8g (1, the division, for an
        empty grid). grid = sampling_ratio x sampling_ratio, or, with sampling_ratio <= 0, ceil(roi_h/pooled_h) x
        ceil(roi_w/pooled_w) for each box (read off its coordinates: a real device's run).
  roi_pool (Fast R-CNN's RoIPool)   per output element, the maximum of its bin: (bin elements - 1) comparisons,
        as max pooling's K - 1; an empty bin (outside the map) 0. Bins from the box's rounded coordinates.
  ps_roi_pool   per output element, the average of its bin: bin elements (K - 1 adds and a division), as average
        pooling's; an empty bin 0.
  nms   the boxes' areas, 3 a box (2 differences, a product), and an IoU for every pair the kernel compares:
        on the CPU 12 (4 max/min for the intersection, 2 differences, 2 clamps at 0, its area, the union's add
        and subtraction, a division), for each kept box against each later box not yet suppressed, in the order
        of the scores (torchvision's loop, run again here on the boxes); on CUDA 18 (both areas again in every
        pair) for every pair i < j, N(N-1)/2, and no areas apart.
  Not counted (as interpolate's, as sort's): the interpolation weights, computed once a position for all channels,
  the sort by score, the test against the IoU threshold.
The region counts that depend on the boxes read them from the real tensors; on the meta device, which has no
values, they are not counted (the note says so): detectors run on a real device anyway (--device cpu).
"""

from __future__ import annotations

from math import prod

import numpy as np
import torch

from archcalc.analysis.counting import OPS, Count, OpCall
from archcalc.analysis.shapes import elements_text
from archcalc.errors import real_device
from archcalc.formulas.numbers import grouped

def _no_values() -> str:
    return f"reads the boxes' coordinates, which the meta device does not hold: {real_device()}"


def _rois(call: OpCall) -> torch.Tensor | None:
    """The (K, 5) regions (batch index, x1, y1, x2, y2) where their values exist, else None."""
    rois = call.args[1]
    return None if rois.device.type == "meta" else rois.detach().cpu()


# -- RoIAlign ----------------------------------------------------------------------------------

def _sampled(g: torch.Tensor) -> torch.Tensor:
    """Operations of one output element from its bin's sample count: 7 a sample, g - 1 adds, a division."""
    return torch.where(g > 0, 8 * g, torch.ones_like(g))


def align_grid(rois: torch.Tensor, spatial_scale: float, pooled: tuple[int, int], aligned: bool,
               clamp: bool) -> torch.Tensor:
    """(K, 2) sample points a bin side, (w, h), as the kernel computes them in the boxes' dtype:
    ceil(roi_w / pooled_w), ceil(roi_h / pooled_h); roi sizes from the box scaled, less 0.5 when ``aligned``,
    at least 1 when ``clamp`` (roi_align without aligned: "force malformed ROIs to be 1x1")."""
    scale = torch.tensor(spatial_scale, dtype=rois.dtype)
    offset = torch.tensor(0.5 if aligned else 0.0, dtype=rois.dtype)
    size = (rois[:, 3:5] * scale - offset) - (rois[:, 1:3] * scale - offset)
    if clamp:
        size = size.clamp(min=1)
    return torch.ceil(size / torch.tensor(pooled[::-1], dtype=rois.dtype)).to(torch.int64)


@OPS.register("roi_align", "ps_roi_align")
def roi_align(call: OpCall) -> Count:
    """torch.ops.torchvision.roi_align(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned);
    ps_roi_align(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio)."""
    ratio = call.arg(5, "sampling_ratio")
    out = call.output
    per_box = prod(out[1:])
    what = f"{call.name}: 8 per sample point"
    if ratio > 0:
        g = ratio * ratio
        n = 8 * g * prod(out)
        return Count(0, n, {"elementwise": f"{what}, {ratio}*{ratio} a bin: 8*{g}*{elements_text(out)} = {grouped(n)}"})
    rois = _rois(call)
    if rois is None:
        return Count(None, None, {}, f"sampling_ratio {ratio}: a grid a box that {_no_values()}")
    aligned = call.name == "ps_roi_align" or bool(call.arg(6, "aligned", False))
    sides = align_grid(rois, call.arg(2, "spatial_scale"), tuple(call.args[3:5]), aligned,
                       clamp=call.name == "roi_align" and not aligned)
    grid = sides.clamp(min=0).prod(1)
    ops = int(_sampled(grid).sum())
    n = ops * per_box
    return Count(0, n, {"elementwise": f"{what}, ceil(roi/pooled) a side: a bin of each of the {rois.shape[0]} "
                                       f"boxes, {ops} in all (1 an empty grid's) * {elements_text(out[1:])} = "
                                       f"{grouped(n)}"})


# -- RoIPool ---------------------------------------------------------------------------------

def _c_round(x: torch.Tensor) -> torch.Tensor:
    """C's round (half away from zero), in double from the kernel's float product."""
    x = x.double()
    return (torch.sign(x) * torch.floor(x.abs() + 0.5)).to(torch.int64)


def pool_bins(rois: torch.Tensor, spatial_scale: float, pooled: tuple[int, int], size: tuple[int, int],
              plus_one: bool, last: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each bin's [start, end) rows and columns, [(h starts, h ends), (w starts, w ends)], each (K, pooled), as
    roi_pool's kernel (``plus_one``: a box of x1..x2 spans x2 - x1 + 1; clipped to the map, ``last`` 0) or
    ps_roi_pool's (x2 - x1; clipped to the last row and column, ``last`` 1) finds them from the rounded box."""
    scale = torch.tensor(spatial_scale, dtype=rois.dtype)
    corners = _c_round(rois[:, 1:5] * scale)
    start, end = corners[:, :2], corners[:, 2:]
    spans = (end - start + (1 if plus_one else 0)).clamp(min=1)  # (w, h)
    sides = []
    for axis, count, limit in ((1, pooled[0], size[0]), (0, pooled[1], size[1])):
        bin_size = spans[:, axis].to(rois.dtype) / torch.tensor(count, dtype=rois.dtype)
        p = torch.arange(count, dtype=rois.dtype)
        lo = torch.floor(p[None] * bin_size[:, None]).to(torch.int64) + start[:, axis, None]
        hi = torch.ceil((p[None] + 1) * bin_size[:, None]).to(torch.int64) + start[:, axis, None]
        sides.append((lo.clamp(0, limit - last), hi.clamp(0, limit - last)))
    return sides


def _bins(call: OpCall, rois: torch.Tensor, plus_one: bool, last: int) -> torch.Tensor:
    """(K, pooled_h, pooled_w) elements in each bin (0 an empty one)."""
    (h0, h1), (w0, w1) = pool_bins(rois, call.arg(2, "spatial_scale"), tuple(call.args[3:5]),
                                   tuple(call.inputs[0][-2:]), plus_one, last)
    return (h1 - h0).clamp(min=0)[:, :, None] * (w1 - w0).clamp(min=0)[:, None, :]


@OPS.register("roi_pool")
def roi_pool(call: OpCall) -> Count:
    """torch.ops.torchvision.roi_pool(input, rois, spatial_scale, pooled_h, pooled_w): (output, argmax)."""
    rois = _rois(call)
    if rois is None:
        return Count(None, None, {}, f"bins that {_no_values()}")
    area = _bins(call, rois, plus_one=True, last=0)
    comparisons = int((area - 1).clamp(min=0).sum())
    channels = call.output[1]
    n = comparisons * channels
    return Count(0, n, {"elementwise": f"roi_pool: (bin elements - 1) comparisons a bin, {comparisons} over "
                                       f"{rois.shape[0]} boxes' bins * {channels} channels = {grouped(n)}"})


@OPS.register("ps_roi_pool")
def ps_roi_pool(call: OpCall) -> Count:
    """torch.ops.torchvision.ps_roi_pool(input, rois, spatial_scale, pooled_h, pooled_w): (output, mapping)."""
    rois = _rois(call)
    if rois is None:
        return Count(None, None, {}, f"bins that {_no_values()}")
    elements = int(_bins(call, rois, plus_one=False, last=1).sum())
    channels = call.output[1]
    n = elements * channels
    return Count(0, n, {"elementwise": f"ps_roi_pool: bin elements (adds and a division) a bin, {elements} over "
                                       f"{rois.shape[0]} boxes' bins * {channels} channels out = {grouped(n)}"})


# -- non-maximum suppression -------------------------------------------------------------------

def compared_pairs(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> tuple[int, int]:
    """torchvision's CPU loop, worked out again: (the IoUs it computes, the boxes it keeps). In the order of the
    scores (the same sort), each box not yet suppressed is kept and compared with every later box not yet
    suppressed; one whose IoU exceeds the threshold (a float compared with a double, as in C++) is suppressed. So
    a kept box is compared with every kept box before it, and a suppressed one with every kept box up to the one
    that suppressed it: the sum of those, from which boxes suppress which (their IoUs in blocks of rows, as the
    kernel computes them in the boxes' dtype, and the loop over the rows on those)."""
    order = scores.sort(0, descending=True)[1]
    x1, y1, x2, y2 = boxes[order].unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    n = order.numel()
    removed = np.zeros(n, dtype=bool)
    kept = np.zeros(n, dtype=bool)
    suppressor = np.full(n, -1)
    for start in range(0, n, _ROWS):
        rows, cols = slice(start, min(start + _ROWS, n)), slice(start, n)  # (a row's later boxes only)
        w = (torch.minimum(x2[rows, None], x2[None, cols]) - torch.maximum(x1[rows, None], x1[None, cols])).clamp(min=0)
        h = (torch.minimum(y2[rows, None], y2[None, cols]) - torch.maximum(y1[rows, None], y1[None, cols])).clamp(min=0)
        inter = w * h
        over = ((inter / (areas[rows, None] + areas[None, cols] - inter)).double() > threshold).numpy()
        for i in range(rows.start, rows.stop):
            if removed[i]:
                continue
            kept[i] = True
            hits = over[i - start, i + 1 - start:]
            if hits.any():
                later = hits & ~removed[i + 1:]
                suppressor[i + 1:][later] = i
                removed[i + 1:] |= later
    rank = np.cumsum(kept)  # kept boxes up to each position
    pairs = int((rank[kept] - 1).sum() + rank[suppressor[~kept]].sum())
    return pairs, int(kept.sum())


_ROWS = 256  # (rows of IoUs worked out at once: 256 x N floats)


@OPS.register("nms")
def nms(call: OpCall) -> Count:
    """torch.ops.torchvision.nms(boxes (N, 4), scores (N,), iou_threshold)."""
    boxes, scores, threshold = call.args[0], call.args[1], call.arg(2, "iou_threshold")
    n = boxes.shape[0]
    if boxes.device.type == "cuda":
        pairs = n * (n - 1) // 2
        total = 18 * pairs
        return Count(0, total, {"elementwise": f"nms on CUDA: every pair, {n}*({n} - 1)/2 = {grouped(pairs)} IoUs, "
                                               f"18 each = {grouped(total)}"})
    if boxes.device.type == "meta":
        return Count(None, None, {}, f"which boxes it compares {_no_values()}")
    with torch.no_grad():
        pairs, kept = compared_pairs(boxes.detach().cpu(), scores.detach().cpu(), float(threshold))
    total = 3 * n + 12 * pairs
    return Count(0, total, {"elementwise": f"nms: areas 3*{n} + IoUs 12*{grouped(pairs)} (the pairs torchvision's "
                                           f"CPU loop compares; {kept} of {n} boxes kept) = {grouped(total)}"})
