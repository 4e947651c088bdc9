"""torchvision's detection operations (counters/detection.py, deform_conv2d in convolution.py): by hand on the
counters' own calls, and, where torchvision is installed, against its kernels' outputs (the bins and sample grids
the counts are read off reproduce what the kernels compute) and the other tools on its DeformConv2d."""

from types import SimpleNamespace

import pytest
import torch

from archcalc.analysis.counters.detection import align_grid, compared_pairs, pool_bins
from archcalc.analysis.counting import OPS, OpCall

BOXES = torch.tensor([[0, 0.0, 0, 20, 20], [0, 4, 4, 40, 30], [0, 1, 2, 9, 9]])  # (batch index, x1, y1, x2, y2)


def count(name, *args, inputs=(), outputs=()):
    return OPS.get(name)(OpCall(name, args, {}, inputs, outputs))


def test_roi_align_with_a_fixed_sampling_ratio():
    """Mask R-CNN's MultiScaleRoIAlign samples 2x2 points a bin: 8 operations a point (4 products, 3 adds of the
    bilinear interpolation, and its share of the average), 3 boxes x 256 channels x 7x7 bins x 8*4."""
    c = count("roi_align", torch.empty(1, 256, 50, 50, device="meta"), BOXES.to("meta"), 0.25, 7, 7, 2, False,
              inputs=((1, 256, 50, 50), (3, 5)), outputs=((3, 256, 7, 7),))
    assert (c.macs, c.elementwise) == (0, 3 * 256 * 49 * 32)
    assert "2*2 a bin" in c.text()["elementwise"]


def test_roi_align_grid_read_off_the_boxes():
    """sampling_ratio 0: ceil(roi/pooled) points a side. Scale 0.5, aligned: the boxes are 10x10, 18x13 and 4x3.5
    on the map: 2x2, 3x2 and 1x1 points a bin, (8*4 + 8*6 + 8*1) = 88 a bin and channel, x 8 channels x 49."""
    call = (torch.zeros(1, 8, 32, 32), BOXES, 0.5, 7, 7, 0, True)
    c = count("roi_align", *call, inputs=((1, 8, 32, 32), (3, 5)), outputs=((3, 8, 7, 7),))
    assert c.elementwise == 88 * 8 * 49
    assert align_grid(BOXES, 0.5, (7, 7), True, False).tolist() == [[2, 2], [3, 2], [1, 1]]
    # without aligned a box under 1 on the map counts as 1x1: a point a bin
    tiny = torch.tensor([[0, 3.0, 3, 3.2, 3.2]])
    assert align_grid(tiny, 1.0, (2, 2), False, True).tolist() == [[1, 1]]
    # aligned, an empty box has no points: the average's division alone
    assert count("roi_align", torch.zeros(1, 1, 8, 8), tiny[:, [0, 1, 2, 1, 2]], 1.0, 2, 2, 0, True,
                 inputs=((1, 1, 8, 8), (1, 5)), outputs=((1, 1, 2, 2),)).elementwise == 4


def test_region_counts_need_the_boxes_values():
    """On the meta device a count that reads the boxes is not made (and says why), never guessed."""
    c = count("roi_align", torch.empty(1, 8, 32, 32, device="meta"), BOXES.to("meta"), 0.5, 7, 7, 0, True,
              inputs=((1, 8, 32, 32), (3, 5)), outputs=((3, 8, 7, 7),))
    assert c.macs is None and "real device" in c.note
    for name in ("roi_pool", "ps_roi_pool"):
        c = count(name, torch.empty(1, 8, 32, 32, device="meta"), BOXES.to("meta"), 0.5, 2, 2,
                  inputs=((1, 8, 32, 32), (3, 5)), outputs=((3, 8, 2, 2),))
        assert c.macs is None and "real device" in c.note
    c = count("nms", BOXES[:, 1:].to("meta"), torch.empty(3, device="meta"), 0.5, inputs=((3, 4), (3,)),
              outputs=((2,),))
    assert c.macs is None


def test_roi_pool_bins_by_hand():
    """RoIPool (Fast R-CNN): the box 0..3 spans 4 cells (x2 - x1 + 1), in 2x2 bins of 2x2: 3 comparisons a bin,
    12 a channel; ps_roi_pool's box 0..4 spans 4 (x2 - x1): bins of 4 elements, 4 operations each (3 adds, a
    division), 16 an output channel (8 channels in: 2 out for 2x2 bins)."""
    box = torch.tensor([[0, 0.0, 0, 3, 3]])
    c = count("roi_pool", torch.zeros(1, 5, 8, 8), box, 1.0, 2, 2, inputs=((1, 5, 8, 8), (1, 5)),
              outputs=((1, 5, 2, 2), (1, 5, 2, 2)))
    assert c.elementwise == 12 * 5
    c = count("ps_roi_pool", torch.zeros(1, 8, 8, 8), torch.tensor([[0, 0.0, 0, 4, 4]]), 1.0, 2, 2,
              inputs=((1, 8, 8, 8), (1, 5)), outputs=((1, 2, 2, 2), (1, 2, 2, 2)))
    assert c.elementwise == 16 * 2
    # a box off the map: empty bins, nothing compared
    off = torch.tensor([[0, 20.0, 20, 30, 30]])
    assert count("roi_pool", torch.zeros(1, 5, 8, 8), off, 1.0, 2, 2, inputs=((1, 5, 8, 8), (1, 5)),
                 outputs=((1, 5, 2, 2), (1, 5, 2, 2))).elementwise == 0


def test_nms_pairs_by_hand():
    """torchvision's CPU loop: the best box is compared with the two others and suppresses the one it overlaps
    (IoU 81/100 > 0.5); the third, kept, has nothing after it: 2 IoUs of 12 and 3 areas of 3 = 33."""
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert compared_pairs(boxes, scores, 0.5) == (2, 2)
    c = count("nms", boxes, scores, 0.5, inputs=((3, 4), (3,)), outputs=((2,),))
    assert (c.macs, c.elementwise) == (0, 33)
    # at 0.9 nothing is suppressed: all three pairs compared
    assert compared_pairs(boxes, scores, 0.9) == (3, 3)
    # CUDA's kernel compares every pair, 18 operations each (the areas again): 1000 boxes, 499,500 pairs
    cuda = SimpleNamespace(shape=(1000, 4), device=torch.device("cuda"))
    assert count("nms", cuda, None, 0.7, inputs=((1000, 4), (1000,)), outputs=((10,),)).elementwise == 18 * 499_500


def test_deform_conv2d_by_hand():
    """A 3x3 deformable convolution 8 -> 16 on 32x32: the convolution's MACs, 16*32*32*(3*3*8) = 1,179,648, and 8
    per sample (bilinear 7 and the mask's product), 8*(8*9*32*32) = 589,824, + the bias 16,384."""
    x, w = torch.empty(1, 8, 32, 32, device="meta"), torch.empty(16, 8, 3, 3, device="meta")
    args = (x, w, torch.empty(1, 18, 32, 32, device="meta"), torch.empty(1, 1, device="meta"),
            torch.empty(16, device="meta"), 1, 1, 1, 1, 1, 1, 1, 1, False)
    c = count("deform_conv2d", *args, inputs=((1, 8, 32, 32), (16, 8, 3, 3), (1, 18, 32, 32), (1, 1), (16,)),
              outputs=((1, 16, 32, 32),))
    assert (c.macs, c.elementwise) == (1_179_648, 589_824 + 16_384)


# -- against torchvision's kernels ---------------------------------------------------------------

def _boxes(generator, n, size):
    """Random boxes, some reaching past the map, some tiny."""
    xy = torch.rand(n, 2, generator=generator) * size * 1.2 - size * 0.1
    wh = torch.rand(n, 2, generator=generator) * size * 0.6
    return torch.cat([torch.zeros(n, 1), xy, xy + wh], 1)


def test_roi_pool_bins_reproduce_the_kernel():
    """The bins the counts are read off are the kernel's: on a map whose values grow along rows and columns the
    maximum of a bin is at its last row and column, on the negated map at its first; an empty bin gives 0."""
    ops = pytest.importorskip("torchvision.ops")
    g = torch.Generator().manual_seed(0)
    height, width, pooled = 23, 29, (3, 4)
    ramp = (torch.arange(height)[:, None] * 100 + torch.arange(width)[None]).float()[None, None]
    for scale in (1.0, 0.5, 0.25):
        rois = _boxes(g, 40, width / scale)
        (h0, h1), (w0, w1) = pool_bins(rois, scale, pooled, (height, width), True, 0)
        empty = ((h1 <= h0)[:, :, None] | (w1 <= w0)[:, None, :])
        top = torch.ops.torchvision.roi_pool(ramp, rois, scale, *pooled)[0][:, 0]
        low = torch.ops.torchvision.roi_pool(-ramp, rois, scale, *pooled)[0][:, 0]
        expect_top = ((h1 - 1) * 100)[:, :, None] + (w1 - 1)[:, None, :]
        expect_low = (h0 * 100)[:, :, None] + w0[:, None, :]
        assert torch.equal(top, torch.where(empty, 0, expect_top).float())
        assert torch.equal(low, torch.where(empty, 0, -expect_low).float())


def test_ps_roi_pool_bins_reproduce_the_kernel():
    """ps_roi_pool averages its bin: on maps of h and of h*h (and of w, w*w) the averages over the bins found
    here equal the kernel's."""
    ops = pytest.importorskip("torchvision.ops")
    g = torch.Generator().manual_seed(1)
    height, width, pooled = 19, 21, (2, 3)
    rows = torch.arange(height, dtype=torch.float64)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float64)[None].expand(height, width)
    rois = _boxes(g, 40, width).double()
    (h0, h1), (w0, w1) = pool_bins(rois, 1.0, pooled, (height, width), False, 1)

    def mean_of(f, lo, hi):  # the average of f(i) over i in [lo, hi), 0 when empty
        grid = torch.arange(max(height, width), dtype=torch.float64)
        inside = (grid >= lo[..., None]) & (grid < hi[..., None])
        return torch.where(hi > lo, (f(grid) * inside).sum(-1) / (hi - lo).clamp(min=1), 0)

    for value, along in ((rows, "h"), (rows ** 2, "h2"), (cols, "w"), (cols ** 2, "w2")):
        maps = value[None, None].expand(1, pooled[0] * pooled[1], height, width).contiguous()
        got = torch.ops.torchvision.ps_roi_pool(maps, rois, 1.0, *pooled)[0][:, 0]
        empty = ((h1 <= h0)[:, :, None] | (w1 <= w0)[:, None, :])
        f = (lambda i: i) if along in ("h", "w") else (lambda i: i * i)
        side = mean_of(f, h0, h1)[:, :, None].expand_as(got) if along[0] == "h" else \
            mean_of(f, w0, w1)[:, None, :].expand_as(got)
        torch.testing.assert_close(got, torch.where(empty, 0, side), rtol=1e-12, atol=1e-9)


def test_roi_align_grid_reproduces_the_kernel():
    """With sampling_ratio 0 the kernel averages ceil(roi/pooled) x ceil(roi/pooled) points a bin; on a map of
    ones a point counts 1 where it lies within the map's border (-1 <= y <= H), 0 beyond: each bin's output is
    (points inside)/(points), which the grid found here reproduces, for roi_align (aligned or not) and
    ps_roi_align."""
    ops = pytest.importorskip("torchvision.ops")
    g = torch.Generator().manual_seed(2)
    height, width, pooled = 13, 17, (3, 2)
    for name, aligned in (("roi_align", False), ("roi_align", True), ("ps_roi_align", True)):
        scale = 0.5
        rois = _boxes(g, 30, width / scale)
        sides = align_grid(rois, scale, pooled, aligned, clamp=name == "roi_align" and not aligned)
        channels = pooled[0] * pooled[1] if name == "ps_roi_align" else 1
        ones = torch.ones(1, channels, height, width)
        if name == "roi_align":
            got = torch.ops.torchvision.roi_align(ones, rois, scale, *pooled, 0, aligned)[:, 0]
        else:
            got = torch.ops.torchvision.ps_roi_align(ones, rois, scale, *pooled, 0)[0][:, 0]
        offset = 0.5 if aligned else 0.0
        start = rois[:, 1:3] * scale - offset
        size = rois[:, 3:5] * scale - offset - start
        if name == "roi_align" and not aligned:
            size = size.clamp(min=1)
        expect = torch.zeros_like(got)
        for k in range(rois.shape[0]):
            gw, gh = sides[k].tolist()
            for ph in range(pooled[0]):
                for pw in range(pooled[1]):
                    bin_h, bin_w = size[k, 1] / pooled[0], size[k, 0] / pooled[1]
                    inside = sum(1 for iy in range(max(gh, 0)) for ix in range(max(gw, 0))
                                 if -1 <= start[k, 1] + ph * bin_h + (iy + 0.5) * bin_h / gh <= height
                                 and -1 <= start[k, 0] + pw * bin_w + (ix + 0.5) * bin_w / gw <= width)
                    expect[k, ph, pw] = inside / max(gh * gw, 1)
        torch.testing.assert_close(got, expect, rtol=1e-5, atol=1e-5)


def test_nms_loop_keeps_what_torchvision_keeps():
    """The loop run again keeps as many boxes as torchvision's own nms, on random boxes at several thresholds."""
    ops = pytest.importorskip("torchvision.ops")
    g = torch.Generator().manual_seed(3)
    for n, threshold in ((50, 0.3), (300, 0.5), (600, 0.7)):
        boxes = _boxes(g, n, 100)[:, 1:]
        scores = torch.rand(n, generator=g)
        pairs, kept = compared_pairs(boxes, scores, threshold)
        assert kept == ops.nms(boxes, scores, threshold).numel()
        assert kept - 1 <= pairs <= n * (n - 1) // 2


def test_a_detector_counted_whole():
    """Faster R-CNN (torchvision, MobileNet-v3 backbone at 320): every operation counted, RoIAlign and NMS
    included; no batch warning from its anchors (made from constants, 3x4: not the batch); its MACs equal
    flop_counter's (RoIAlign and NMS add element-wise work only)."""
    detection = pytest.importorskip("torchvision.models.detection")
    from torch.utils.flop_counter import FlopCounterMode

    import archcalc

    torch.manual_seed(0)
    model = detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None).eval()
    image = [torch.rand(3, 320, 320)]
    a = archcalc.analyze(model, inputs=(image,), device="cpu")
    assert not [n for n in a.notes if "not counted" in n or "turned batch" in n], a.notes
    kinds = {r.type for r in a.records}
    assert {"roi_align", "nms"} <= kinds
    with FlopCounterMode(display=False) as fc:
        model(image)
    assert 2 * a.totals.macs == fc.get_total_flops()


@pytest.mark.parametrize("name", ["fasterrcnn_mobilenet_v3_large_320_fpn", "ssdlite320_mobilenet_v3_large"])
def test_a_detector_reconciled_with_every_tool(name):
    """archcalc.reconcile(detector, inputs=([image],)): each tool run on the list of images, on the same values
    (so the same boxes survive), equal to archcalc's convention of it: fvcore, torchinfo, thop, ptflops and
    flop_counter (run with torchvision 0.29: Faster R-CNN 2.893 G under fvcore, SSDlite 0.604 G)."""
    detection = pytest.importorskip("torchvision.models.detection")

    import archcalc

    torch.manual_seed(0)
    model = getattr(detection, name)(weights=None, weights_backbone=None).eval()
    a, tools = archcalc.reconcile(model, inputs=([torch.rand(3, 320, 320)],))
    for convention, tool in tools.items():
        assert tool.total == a.convention_total(convention), (convention, tool)


class DeformNet(torch.nn.Module):
    """An offset convolution and torchvision's DeformConv2d (DCN v1), 8 -> 16 channels on 32x32."""

    def __init__(self):
        super().__init__()
        from torchvision.ops import DeformConv2d

        self.offset = torch.nn.Conv2d(8, 18, 3, padding=1)
        self.deform = DeformConv2d(8, 16, 3, padding=1)

    def forward(self, x):
        return self.deform(x, self.offset(x))


def test_deformable_convolution_against_the_tools():
    """archcalc's convention of each tool equals the tool on DeformConv2d: fvcore and flop_counter do not count
    it (0), thop neither (not its type), torchinfo as a convolution by its class name, ptflops by its own hook
    (k^2 x (C_in C_out/g + 24) per position + bias); every difference explained; and the MACs are the
    convolution's, 16*32*32*(3*3*8) beside the offset convolution's 18*32*32*(3*3*8)."""
    pytest.importorskip("torchvision.ops")
    from pathlib import Path

    from archcalc.analysis.engine import analyse
    from archcalc.analysis.reconcile import UNEXPLAINED, differences, run_tools
    from archcalc.models.registry import ModelEntry

    entry = ModelEntry("dcn", "user", f"{Path(__file__)}:DeformNet", (8, 32, 32), "", "", {})
    a = analyse(entry, batch=1)
    assert a.totals.macs == 18 * 32 * 32 * 72 + 16 * 32 * 32 * 72
    # its backward: the columns' gradient and ∂W, each the forward's MACs (the offset convolution: ∂W only, its
    # input being the model's)
    b = analyse(entry, batch=1, backward=True)
    deform = next(r for r in b.records if r.type == "deform_conv2d")
    assert deform.backward.macs == 2 * 16 * 32 * 32 * 72
    assert b.totals.backward_macs == 2 * 16 * 32 * 32 * 72 + 18 * 32 * 32 * 72
    tools = run_tools(entry, None, 1)
    for convention in ("fvcore", "torchinfo", "thop", "ptflops", "flop_counter"):
        assert tools[convention].total == a.convention_total(convention), (convention, tools[convention])
        assert not any(why.endswith(UNEXPLAINED) for why, _ in differences(a, convention)), convention
        explained = sum(amount for _, amount in differences(a, convention))
        assert explained == a.convention_total(convention) - a.totals.macs, convention
