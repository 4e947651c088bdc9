"""Formulas beyond the lectures' layers, by hand and against torch.utils.flop_counter where it counts them:
losses a forward computes, Fourier transforms, matrix powers and products, distances, pooling variants, scatters."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archcalc
from archcalc.analysis.engine import analyse_module
from tests.networks import LanguageHead


class Calls(nn.Module):
    def __init__(self, *calls):
        super().__init__()
        self.calls = calls

    def forward(self, x):
        return [call(x) for call in self.calls]


def rows(*calls, shape=(2, 4, 8), backward=False):
    """Each call's records, by type, and the analysis' notes."""
    a = analyse_module(Calls(*calls), "calls", shape, torch.device("cpu"), torch.float32, backward=backward)
    assert not [n for n in a.notes if "not counted" in n], a.notes
    return {r.type: r for r in a.records}


def labels(x, classes=10):
    return torch.zeros(x.shape[0], dtype=torch.long, device=x.device)


def test_losses_a_forward_computes():
    """1 per element for the loss and 1 for the reduction (an activation's and a reduction's rule): MSE over
    2x4x8 = 128, 64 with reduction='none'; cross-entropy over 2x10 logits: log_softmax 20 + nll 2 = 22, with
    label smoothing 42, probabilities as target 3*20 = 60; nll_loss 2."""
    got = rows(lambda x: F.mse_loss(x, x * 2), lambda x: F.l1_loss(x, x * 2, reduction="none"),
               lambda x: F.cross_entropy(x.flatten(1)[:, :10], labels(x)),
               lambda x: nn.CrossEntropyLoss(label_smoothing=0.1)(x.flatten(1)[:, :10], labels(x)),
               lambda x: F.binary_cross_entropy_with_logits(x, torch.ones_like(x)),
               lambda x: F.nll_loss(x.flatten(1)[:, :10], labels(x)))
    assert got["mse_loss"].elementwise == 128 and got["l1_loss"].elementwise == 64
    assert got["mse_loss"].formulas["elementwise"] == "(the loss + the reduction) per input element: 2*(2*4*8) = 128"
    assert got["binary_cross_entropy_with_logits"].elementwise == 128 and got["nll_loss"].elementwise == 2
    probabilities = rows(lambda x: F.cross_entropy(x[:, 0, :5], x[:, 1, :5].softmax(-1)))["cross_entropy"]
    assert probabilities.elementwise == 3 * 10
    smoothing = analyse_module(Calls(lambda x: F.cross_entropy(x.flatten(1)[:, :10], labels(x)),
                                     lambda x: F.cross_entropy(x.flatten(1)[:, :10], labels(x), label_smoothing=0.1)),
                               "ce", (2, 4, 8), torch.device("cpu"), torch.float32)
    assert [r.elementwise for r in smoothing.records if r.type == "cross_entropy"] == [22, 42]
    assert all(r.macs == 0 for r in got.values() if "loss" in r.type or r.type == "cross_entropy")



class CTC(nn.Module):
    """A recogniser's loss: log-probabilities of 5 labels over T steps, two targets ([1, 1, 2] and [3, 4]), the
    second sample 2 steps shorter; targets padded (N x S) or concatenated."""

    def __init__(self, concatenated=False, reduction="mean", on_input=False):
        super().__init__()
        self.project, self.concatenated, self.reduction, self.on_input = nn.Linear(8, 5), concatenated, reduction, on_input

    def forward(self, x):  # x: (T, N, 8)
        device = x.device if self.on_input else "cpu"
        targets = torch.tensor([1, 1, 2, 3, 4] if self.concatenated else [[1, 1, 2], [3, 4, 0]], device=device)
        lengths = torch.tensor([x.shape[0], x.shape[0] - 2], device=device), torch.tensor([3, 2], device=device)
        return F.ctc_loss(self.project(x).log_softmax(-1), targets, *lengths, reduction=self.reduction)


def test_ctc_loss_is_the_cpu_kernels_recursion():
    """Sample 1: T = 10, labels [1, 1, 2]: S = 7, one label differing from the one before it (D = 1): 9 steps x
    (11*7 + 2*3 + 1) + 9 = 765; sample 2: T = 8, [3, 4]: 7 x (11*5 + 2*2 + 1) + 9 = 429; the mean 3 a sample:
    1,200 ('sum': 1,196). Targets concatenated: the same. Asked for the meta device, which has no kernel for it
    (nor values for the labels), the analysis runs on the CPU and says why."""
    import archcalc

    for kwargs, n in (({}, 1_200), ({"concatenated": True}, 1_200), ({"reduction": "sum"}, 1_196)):
        a = analyse_module(CTC(**kwargs), "ctc", (10, 2, 8), torch.device("cpu"), torch.float32)
        loss = next(r for r in a.records if r.type == "ctc_loss")
        assert (loss.macs, loss.elementwise) == (0, n)
    assert loss.formulas["elementwise"].startswith("98 (t, s) steps of the recursion, 11 each")
    meta = archcalc.analyze(CTC(on_input=True), input_size=(10, 2, 8), device="meta")
    assert next(r for r in meta.records if r.type == "ctc_loss").elementwise == 1_200
    assert meta.notes[0].split(": ", 1)[1] == ("a kernel in the forward pass of CTC runs on real devices only (aten::_ctc_loss has no meta "
                          "kernel): run on the CPU instead, with a random input")  # (no value read: no branch)


def test_margin_losses_for_multiple_classes():
    """multi_margin_loss over 2 x 8 scores (the 2x4x8 input's first row): per class but the target's the hinge
    and the sum, 2*7*2 = 28, + the mean 2 = 30; p = 2 and a class weight 2*7*4 + 2 = 58. multilabel_margin_loss
    with targets [3, 5, 3, -1, ...] (L = 3, U = 2: 3*(8 - 2) = 18 pairs, the duplicate label's pairs counted
    twice as the kernel does) and [0, 1, ...] (all 8 classes targets: 0 pairs): 2*18 + /C 2 + the mean 2 = 40;
    the pairs are checked by the loss's own value, Σ max(0, 1 - x_j + x_i) / C over them. On the meta device,
    whose tensors hold no labels: not counted, said why."""
    target = torch.tensor([[3, 5, 3, -1, 0, 0, 0, 0], list(range(8))])
    got = rows(lambda x: F.multi_margin_loss(x[:, 0], labels(x)),
               lambda x: F.multilabel_margin_loss(x[:, 0], target))
    assert got["multi_margin_loss"].elementwise == 30 and got["multilabel_margin_loss"].elementwise == 40
    assert got["multilabel_margin_loss"].formulas["elementwise"].startswith("18 (target, non-target) pairs * 2")
    weighted = rows(lambda x: F.multi_margin_loss(x[:, 0], labels(x), p=2, weight=torch.ones(8)))
    assert weighted["multi_margin_loss"].elementwise == 58
    x = torch.randn(2, 8)
    pairs = [(0, j, i) for j in (3, 5, 3) for i in range(8) if i not in (3, 5)]
    by_pairs = sum(max(0.0, 1 - x[n, j].item() + x[n, i].item()) for n, j, i in pairs) / 8
    assert abs(F.multilabel_margin_loss(x, target, reduction="none")[0].item() - by_pairs) < 1e-5
    assert F.multilabel_margin_loss(x, target, reduction="none")[1].item() == 0

    class Tagger(nn.Module):
        def forward(self, x):
            return F.multilabel_margin_loss(x, torch.zeros(x.shape, dtype=torch.long, device=x.device))

    meta = archcalc.analyze(Tagger(), input_size=(2, 8), device="meta")
    assert next(r for r in meta.records if r.type == "multilabel_margin_loss").macs is None
    assert any("read from the target's labels, which the meta device does not hold" in n for n in meta.notes), \
        meta.notes


class GraphConvolution(nn.Module):
    """A graph convolution, Â·(X·W), over a ring of 6 nodes with self-loops held as a sparse matrix (COO or CSR):
    12 stored values of 36."""

    def __init__(self, layout=torch.sparse_coo):
        super().__init__()
        self.weight = nn.Linear(16, 8, bias=False)
        ring = torch.arange(6)
        index = torch.stack([torch.cat([ring, ring]), torch.cat([ring, (ring + 1) % 6])])
        adjacency = torch.sparse_coo_tensor(index, torch.full((12,), 0.5), (6, 6)).coalesce()
        self.register_buffer("adjacency", adjacency if layout == torch.sparse_coo else adjacency.to_sparse_csr())

    def forward(self, x):
        h = self.weight(x)
        return torch.mm(self.adjacency, h) + torch.sparse.mm(self.adjacency, h) + torch.addmm(h, self.adjacency, h) \
            + torch.mm(h.T, self.adjacency).T[:, :1]


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
def test_a_sparse_matrix_product_counts_its_stored_values(layout):
    """Â (6 x 6, 12 stored values) times H (6 x 8): 12*8 = 96 MACs, not the dense 6*6*8 = 288, for torch.mm,
    torch.sparse.mm and addmm (+ 48 adds); Hᵀ (8 x 6) times Â: 8 rows * 12 = 96. flop_counter counts aten::mm and
    addmm by their shapes (288 each) and torch.sparse.mm not at all: its convention reproduces that. The meta device
    has no sparse mm: the analysis runs on the CPU and says so. A training step: each gradient the forward's count
    (∂H = Âᵀ·∂Y)."""
    model = GraphConvolution(layout)
    got = analyse_module(model, "gcn", (6, 16), torch.device("cpu"), torch.float32)
    products = [r for r in got.records if r.type in ("mm", "_sparse_mm", "addmm")]
    assert [r.macs for r in products] == [96, 96, 96, 96]
    assert products[0].formulas["macs"] == "sparse: 12 stored values of sparse A * B's 8 columns = 96"
    assert products[3].formulas["macs"] == "sparse: 12 stored values of sparse B * A's 8 rows = 96"
    assert next(r for r in products if r.type == "addmm").elementwise == 48
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(6, 16))
    assert counter.get_total_flops() == 2 * (6 * 16 * 8 + 3 * 288) == got.convention_total("flop_counter")
    from archcalc.analysis.roofline import points
    from archcalc.analysis.storages import stored_bytes

    stored = stored_bytes(model.adjacency)  # (COO: 2 x 12 int64 indices and 12 values; CSR: 7 + 12 int64 and 12 values)
    assert stored == (2 * 12 * 8 + 12 * 4 if layout == torch.sparse_coo else (7 + 12) * 8 + 12 * 4)
    sparse_mm = next(p for p in points(got) if p.type == "_sparse_mm")
    assert sparse_mm.bytes == stored + 2 * 6 * 8 * 4  # (the adjacency as stored, not 6*6*4; H read, Y written)
    meta = archcalc.analyze(model, (6, 16), device="meta", backward=True)
    assert meta.device == "cpu" and "has no meta kernel for a sparse tensor" in meta.notes[0]
    assert [r.backward.macs for r in meta.records if r.type in ("mm", "_sparse_mm", "addmm")] == [96, 96, 96, 96]


def test_the_memory_of_training_a_graph_convolution_holds_its_sparse_adjacency():
    """A sparse tensor has no storage of its own: its memory is its indices' and stored values' (COO: 2 x 12 int64
    and 12 float32, 240 bytes), which the training step's simulation tracks; the meta device has no sparse mm, so
    the two steps run on the CPU, and their peak is the real tensors'."""
    from archcalc.models.user import module_entry
    from archcalc.analysis.storages import nbytes
    from tests.test_peak import real_cpu_peak

    model = GraphConvolution()
    assert nbytes(model.adjacency) == 2 * 12 * 8 + 12 * 4
    estimate = archcalc.memory(model, (6, 16), optimizer="adam")
    assert estimate.peak.allocated == real_cpu_peak(module_entry(model, (16,)), (6, 16), "adam")


def test_the_trapezoidal_rule_vandermonde_and_polar_as_pytorch_computes_them():
    """3 rows of 6 points (15 intervals), as Integration.cpp runs them: even spacing dx*(Σy - (y_0 + y_5)/2), 3 rows
    x (6 summed + 4) = 30; sample points x: Δx 5, add, product and sum 3*15, /2 a row 3: 53; cumulative 3*15 = 45,
    with x 4*15 + 5 = 65; vander of 6 values to N = 4: cumprod of 6 x 3 = 18; polar 4 per element, 72; a layout's
    change (to_sparse, to_dense) no arithmetic."""
    got = analyse_module(Calls(lambda y: torch.trapezoid(y, dx=0.5), lambda y: torch.trapezoid(y, torch.arange(6.)),
                               lambda y: torch.cumulative_trapezoid(y),
                               lambda y: torch.cumulative_trapezoid(y, torch.arange(6.)),
                               lambda y: torch.linalg.vander(y[0], N=4), lambda y: torch.polar(y.abs(), y),
                               lambda y: y.to_sparse().to_dense()),
                         "calls", (3, 6), torch.device("cpu"), torch.float32)
    assert [r.elementwise for r in got.records if r.type in ("trapezoid", "cumulative_trapezoid", "linalg_vander",
                                                              "polar", "to_sparse", "to_dense")] == \
        [30, 53, 45, 65, 18, 72, 0, 0]
    assert not [n for n in got.notes if "not counted" in n]


def test_fourier_transforms_by_fftws_count():
    """5 N log2 N a complex transform, 2.5 N log2 N a real one, once for each position of the other dimensions:
    rfft over 8 points of 2x4x8: 2.5*8*3 = 60, x 8 = 480; fft2 over 4x8: 5*32*5 = 800, x 2 = 1,600; fftn over
    dims (1, 2) the same; irfft back to 8 points from a 5-point half spectrum: 480; rfft of 6 points:
    2.5*6*log2(6) x 8 = 310 (rounded)."""
    got = rows(lambda x: torch.fft.rfft(x), lambda x: torch.fft.fft2(x), lambda x: torch.fft.fftn(x, dim=(1, 2)),
               lambda x: torch.fft.irfft(torch.fft.rfft(x), n=8), lambda x: torch.fft.ihfft(x[..., :6]))
    assert got["fft_rfft"].elementwise == 480 and got["fft_fft2"].elementwise == 1_600
    assert got["fft_fftn"].elementwise == 1_600 and got["fft_irfft"].elementwise == 480
    assert got["fft_ihfft"].elementwise == round(2.5 * 6 * 2.584962500721156 * 8) == 310
    assert got["fft_rfft"].formulas["elementwise"] == "fft.rfft: 2.5*8*log2(8) a transform * 8 = 480"
    assert got["fft_fft2"].macs == 0


def test_a_short_time_fourier_transform():
    """64 samples, n_fft 16, hop 4, centred: 17 frames a signal, 34 in all, each 16 window products and a real
    transform of 16 points (2.5*16*4 = 160): 34*176 = 5,984."""
    window = torch.hann_window(16)
    got = rows(lambda x: torch.stft(x, 16, window=window, return_complex=True), shape=(2, 64))
    assert got["stft"].elementwise == 5_984


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_an_inverse_short_time_fourier_transform(device):
    """Back from those 34 frames to 2 x 64 samples (HDemucs, vocoders): 34 inverse real transforms (5,440),
    the window and the overlap-add 2*34*16 = 1,088, the window's envelope 16 + 17*16 = 288 and its check for a 0
    (abs and min of its 64 samples: 128), 128 divisions: 7,072; with length=50, the same frames, a check of 100
    and 100 divisions. On the meta device, whose kernel reads the envelope's minimum, a stand-in gives the
    signal's shape: the same numbers, no note."""
    import archcalc

    class Inverse(nn.Module):
        def __init__(self, length=None):
            super().__init__()
            self.length = length

        def forward(self, x):
            window = torch.hann_window(16, device=x.device)
            spec = torch.stft(x, 16, hop_length=4, window=window, return_complex=True)
            return torch.istft(spec, 16, hop_length=4, window=window, length=self.length)

    for length, samples, n in ((None, 64, 7_072), (50, 50, 7_072 - 4 * 14)):
        a = archcalc.analyze(Inverse(length), input_size=(2, 64), device=device)
        inverse = next(r for r in a.records if r.type == "istft")
        assert (inverse.output_shapes, inverse.elementwise, a.notes) == (((2, samples),), n, ())
    assert inverse.formulas["elementwise"].startswith("inverse transforms 5,440 (istft: 2.5*16*log2(16) a transform")


@pytest.mark.parametrize("k", [2, 3, 4, 5, 7, 8, 13])
def test_matrix_power_equals_flop_counter(k):
    """PyTorch's products for A^k: 1 for 2, 2 for 3, else a squaring per binary digit after the first and a
    product per 1 after the first (13 = 1101b: 3 + 2 = 5); each n^3 a matrix; gradients twice the forward."""
    w = nn.Parameter(torch.randn(3, 4, 4))
    got = rows(lambda x: torch.linalg.matrix_power(w, k), backward=True)["linalg_matrix_power"]
    with FlopCounterMode(display=False) as counter:
        y = torch.linalg.matrix_power(w, k)
        forward = counter.get_total_flops()
        y.sum().backward()
    assert 2 * got.macs == forward and 2 * (got.macs + got.backward.macs) == counter.get_total_flops()
    assert got.macs == {2: 1, 3: 2, 4: 2, 5: 3, 7: 4, 8: 3, 13: 5}[k] * 3 * 4 * 4 * 4


def test_products_flop_counter_has_no_formula_for():
    """vecdot 2x4 dot products of 8 terms = 64; affine_grid: 2x5x6 points by θᵀ (3x2) = 360, its ∂θ as much
    (flop_counter counts that backward product: 2*360); cdist between 2x5 and 2x6 rows of 3 coordinates: 60
    pairs x 3 = 180 MACs, 60 x (3 + 1) element-wise."""
    theta = nn.Parameter(torch.randn(2, 2, 3))
    got = rows(lambda x: torch.linalg.vecdot(x, x), lambda x: F.affine_grid(theta, [2, 1, 5, 6], align_corners=False),
               lambda x: torch.cdist(x[:, :, :3], x[:, :, 3:6].repeat(1, 2, 1)[:, :6]), backward=True)
    assert got["linalg_vecdot"].macs == 64
    assert got["affine_grid"].macs == 360 and got["affine_grid"].backward.macs == 360
    with FlopCounterMode(display=False) as counter:
        F.affine_grid(theta, [2, 1, 5, 6], align_corners=False).sum().backward()
    assert counter.get_total_flops() == 2 * 360
    cdist = got["cdist"]
    assert (cdist.macs, cdist.elementwise) == (2 * 4 * 6 * 3, 2 * 4 * 6 * 4)


def test_pooling_variants_scatters_and_bags():
    """LP pooling (p = 2, windows of 2) over 2x4x8: 64 powers + 2 per output (a sum and a root) x 32 = 128;
    fractional max pooling (2x2 windows) of the 2-channel 4x8 map to 2x4: 3 comparisons x 2*2*4 = 48;
    scatter_add and index_add 1 per source element (64); embedding_bag of 2 bags of 3 indices, 4 wide: 24;
    gumbel_softmax 5 per element."""
    got = rows(lambda x: F.lp_pool1d(x, 2, 2), lambda x: F.fractional_max_pool2d(x, 2, output_size=(2, 4)),
               lambda x: torch.zeros_like(x).scatter_add(1, torch.zeros_like(x, dtype=torch.long), x),
               lambda x: x.index_add(0, torch.tensor([1, 0]), x),
               lambda x: F.embedding_bag(torch.zeros(2, 3, dtype=torch.long), torch.randn(10, 4)),
               lambda x: F.gumbel_softmax(x), lambda x: F.max_unpool1d(*F.max_pool1d(x, 2, return_indices=True), 2))
    assert got["lp_pool1d"].elementwise == 64 + 2 * 32
    assert got["fractional_max_pool2d"].elementwise == 3 * 2 * 2 * 4
    assert got["scatter_add"].elementwise == got["index_add"].elementwise == 64
    assert got["embedding_bag"].elementwise == 24 and got["gumbel_softmax"].elementwise == 5 * 64
    assert got["max_unpool1d"].elementwise == 0


def test_pooling_an_unbatched_map_counts_every_spatial_dimension():
    """A C x H x W map without its batch (which PyTorch's 2-D pooling takes): 2x2 windows, not 2-wide ones,
    though the output has one dimension less than a batch would give (the window was read off the rank)."""
    got = rows(lambda x: F.max_pool2d(x, 2), lambda x: F.avg_pool2d(x, 2), lambda x: F.adaptive_avg_pool2d(x, 2))
    modules = analyse_module(nn.Sequential(nn.MaxPool2d(2), nn.AdaptiveMaxPool2d(1)), "pools", (2, 4, 8),
                             torch.device("cpu"), torch.float32).records
    got.update({r.type: r for r in modules})
    assert got["max_pool2d"].elementwise == got["MaxPool2d"].elementwise == 3 * 2 * 2 * 4
    assert got["avg_pool2d"].elementwise == 4 * 2 * 2 * 4 and got["adaptive_avg_pool2d"].elementwise == 2 * 4 * 8
    assert got["AdaptiveMaxPool2d"].elementwise == 2 * (2 * 4 - 1)  # (after the 2x2 max pooling: 2x4)
    assert got["max_pool2d"].formulas["output"] == "H: (4 + 2*0 - 2)/2 + 1 = 2; W: (8 + 2*0 - 2)/2 + 1 = 4"


@pytest.mark.filterwarnings("ignore:dropout2d")  # (PyTorch's warning that it takes a 3-D input as N x C x L)
def test_other_call_forms():
    """tensordot over dims given as a tensor (2x2 outputs of 32 terms: 128); multi_dot with a vector first (1x8,
    8x4, 4x3: (AB)C = 1*8*4 + 1*4*3 = 44 against A(BC) 8*4*3 + 1*8*3 = 120); cdist with p = 1 (16 pairs,
    3 operations a coordinate and a root: 16*(3*8 + 1) = 400); fft of n = 16 points over 8 rows (5*16*4*8 =
    2,560); a right-side upper solve with divisions (8 rows of 8 unknowns: 8*28 = 224 MACs, 64 divisions); dropout2d of a 3-D input, which PyTorch takes as N x C x L (8 mask entries: 64 + 8)."""
    got = rows(lambda x: torch.tensordot(x, x, dims=torch.tensor([[1, 2], [1, 2]])),
               lambda x: torch.linalg.multi_dot([x[0, 0], x[0].T, x[0, :, :3]]),
               lambda x: torch.cdist(x[0], x[1], p=1.0), lambda x: torch.fft.fft(x, n=16),
               lambda x: torch.linalg.solve_triangular(torch.eye(8), x, upper=True, left=False),
               lambda x: F.dropout2d(x, 0.5, training=True), backward=True)
    assert got["tensordot"].macs == 128 and got["linalg_multi_dot"].macs == 44
    assert got["linalg_multi_dot"].formulas["macs"] == "1*8*4 + 1*4*3 = 44"
    assert (got["cdist"].macs, got["cdist"].elementwise) == (0, 400) and got["fft_fft"].elementwise == 2_560
    solve = got["linalg_solve_triangular"]
    assert (solve.macs, solve.elementwise) == (224, 64)
    assert got["dropout2d"].elementwise == 64 + 8


def test_max_and_min_of_two_tensors_are_element_wise():
    """torch.max(x, y) and torch.min(x, y) are torch.maximum and torch.minimum (HyNet's TLU: max(x, τ), τ one a
    channel): 1 per output element, 2x4x8 = 64 each, and the receptive field passes through; torch.max(x, dim) is
    the reduction, 1 per input element (64), which crashed the receptive field's reading of a tensor as its dim."""
    a = analyse_module(Calls(lambda x: torch.max(x, x[:1, :, :1]), lambda x: torch.min(x, other=x[:1, :, :1]),
                             lambda x: torch.max(x, 2).values), "calls", (2, 4, 8), torch.device("meta"),
                       torch.float32)
    two, other, reduced = [r for r in a.records if r.type in ("max", "min")]
    assert (two.elementwise, other.elementwise, reduced.elementwise) == (64, 64, 64)
    assert two.formulas["elementwise"].startswith("1 per output element") and \
        reduced.formulas["elementwise"].startswith("1 per input element")
    assert two.receptive.size == (1,) and reduced.receptive.whole


def test_f_threshold_is_an_activation():
    """F.threshold reaches a trace as torch.nn.functional._threshold (kornia's Canny): 1 per element, 2x4x8."""
    assert rows(lambda x: F.threshold(x, 0.1, 0.0))["_threshold"].elementwise == 64


def test_what_the_libraries_call_that_does_no_arithmetic_is_declared():
    """torch.as_tensor of a tensor (MONAI's HighResNet), torch.multinomial, poisson and binomial draws (a masked
    autoencoder's choice of patches), nn.utils.rnn.pad_sequence (adaptive token sampling's kept tokens): 0, by a
    declared rule, not "not counted"."""
    from torch.nn.utils.rnn import pad_sequence

    got = rows(lambda x: torch.as_tensor(x), lambda x: torch.asarray(x),
               lambda x: torch.multinomial(x.flatten(0, 1).softmax(-1), 2), lambda x: torch.poisson(x.exp()),
               lambda x: torch.binomial(torch.full_like(x, 4.0), x.sigmoid()),
               lambda x: pad_sequence([x[0, :1], x[1]], batch_first=True))
    for name in ("as_tensor", "asarray", "multinomial", "poisson", "binomial", "pad_sequence"):
        assert (got[name].macs, got[name].elementwise) == (0, 0) and got[name].note, name


class Flex(nn.Module):
    def __init__(self, score_mod=None):
        super().__init__()
        self.project, self.score_mod = nn.Linear(8, 8), score_mod

    def forward(self, x):
        from torch.nn.attention.flex_attention import flex_attention

        q = self.project(x)
        return flex_attention(q, q, q, score_mod=self.score_mod)


def test_flex_attention_is_counted_as_attention():
    """flex_attention compiles its kernel even in eager mode, which stopped the trace ("cls_source must not be
    None for MRO walk"); a trace now calls the kernel directly: 2x4 heads of 16x16 scores, d = 8: QKᵀ + AV =
    2,048*(8 + 8) = 32,768 MACs, 2 a score (scale, softmax), 3 with a score_mod. Its kernel refuses the meta
    device: the analysis runs on the CPU and says why. flex_attention's own switch is left as it was."""
    import torch.nn.attention.flex_attention as flex

    import archcalc

    for score_mod, per in ((None, 2), (lambda s, b, h, q, kv: s + (q - kv), 3)):
        a = archcalc.analyze(Flex(score_mod), [(2, 4, 16, 8)], device="meta")
        attention = next(r for r in a.records if r.type == "flex_attention")
        assert (attention.macs, attention.elementwise) == (2 * 4 * 16 * 16 * (8 + 8), per * 2 * 4 * 16 * 16)
        assert "a kernel in the forward pass of Flex runs on real devices only" in a.notes[0]
    assert flex._FLEX_ATTENTION_DISABLE_COMPILE_DEBUG is False


def _profiled_macs(run) -> int:
    """The multiply-accumulates of every mm, addmm and addmm_ PyTorch runs inside ``run``, read off the profiler's
    recorded shapes (it sees inside custom operators, as flop_counter does not)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
        run()
    macs = 0
    for e in p.events():
        if e.name == "aten::mm":
            (m, k), (_, n) = e.input_shapes[0], e.input_shapes[1]
            macs += m * k * n
        elif e.name in ("aten::addmm", "aten::addmm_"):
            (m, k), (_, n) = e.input_shapes[1], e.input_shapes[2]
            macs += m * k * n
    return macs


@pytest.mark.skipif(not hasattr(F, "linear_cross_entropy"), reason="F.linear_cross_entropy: PyTorch 2.13 on")
@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_linear_cross_entropy_counts_where_pytorch_multiplies(chunked, reduction):
    """The logits 16*16*100 = 25,600 MACs. The reference path: forward 25,600, backward ∂x and ∂W 51,200. The
    chunked path (options given) with reduction 'mean' computes both gradients in its forward when autograd
    records it: 76,800 forward, no product in its backward (the gradients scaled by ∂loss: 16*16 + 100*16 =
    1,856); with 'none' its forward makes the loss only and its backward recomputes the logits: 25,600 and
    76,800. Without gradients (a forward-only analysis), 25,600 whatever the path. Each against the products
    PyTorch's kernels run, forward and backward apart (the profiler's shapes)."""
    options = nn.LinearCrossEntropyOptions(batch_chunk_size=4) if chunked else None
    model = LanguageHead(options, reduction)
    a = analyse_module(model, "head", (16, 16), torch.device("cpu"), torch.float32, backward=True)
    head = next(r for r in a.records if r.type == "linear_cross_entropy")
    x = torch.randn(16, 16)
    loss = {}
    forward = _profiled_macs(lambda: loss.setdefault("value", model(x)))
    backward = _profiled_macs(lambda: loss["value"].sum().backward())
    body = 16 * 16 * 16  # (the Linear before it: its product forward, its ∂W backward)
    assert (head.macs, head.backward.macs) == (forward - body, backward - body)
    in_forward = chunked and reduction == "mean"
    assert head.macs == (3 if in_forward else 1) * 25_600
    assert head.backward.macs == (0 if in_forward else 3 * 25_600 if chunked else 2 * 25_600)
    if in_forward:
        assert head.backward.elementwise == 16 * 16 + 100 * 16
    inference = analyse_module(LanguageHead(options, reduction), "head", (16, 16), torch.device("cpu"), torch.float32)
    assert next(r for r in inference.records if r.type == "linear_cross_entropy").macs == 25_600


class TimeFirst(nn.Module):
    def __init__(self, pad):
        super().__init__()
        self.weight, self.bias, self.pad = nn.Parameter(torch.randn(3, 4, 5)), nn.Parameter(torch.zeros(5)), pad

    def forward(self, x):  # x: (T, B, 4)
        return torch.conv_tbc(x, self.weight, self.bias, self.pad)


@pytest.mark.parametrize("pad,steps", [(0, (5, 5, 5)), (1, (6, 7, 6)), (4, (7, 7, 7))])
def test_conv_tbc_skips_the_padding_as_its_kernel_does(pad, steps):
    """fairseq's ConvTBC over 7 steps, batch 2, 4 -> 5 channels, 3 taps: each tap multiplies the steps it reaches
    (padded 1: 6, 7 and 6 of the 7 outputs); MACs = Σ steps*2*4*5, backward ∂x and ∂W as much; each against the
    products its kernel runs (the profiler's shapes)."""
    model = TimeFirst(pad)
    a = analyse_module(model, "tbc", (7, 2, 4), torch.device("cpu"), torch.float32, backward=True)
    row = next(r for r in a.records if r.type == "conv_tbc")
    x = torch.randn(7, 2, 4, requires_grad=True)
    out = {}
    forward = _profiled_macs(lambda: out.setdefault("y", model(x)))
    backward = _profiled_macs(lambda: out["y"].sum().backward())
    assert (row.macs, row.backward.macs) == (sum(steps) * 2 * 4 * 5, 2 * sum(steps) * 2 * 4 * 5) == (forward, backward)
    assert row.elementwise == 2 * 5 * (7 + 2 * pad - 2)  # (the bias, 1 per output)


def test_covariance_distances_and_metric_losses():
    """cov of 6 variables over 16 observations: X·Xᵀ 6*6*16 = 576 MACs; element-wise the means 96 + 6, the
    centring 96, the division 36: 234; corrcoef + 6 roots + 3*36 = 348. trace of 6x6: 6; dist of two 4x6: 2*24;
    renorm of 4x6: 48; triplet margin loss of 4 triplets of 6: 2 distances 3*24 each + 4 a triplet = 160;
    cosine embedding of 4 pairs: 3*24 + 10 a pair = 112. The backward of cov: both factors of X·Xᵀ, 2*504 for
    6 x 14, as flop_counter counts the mm's."""
    got = rows(lambda x: torch.cov(x.flatten(0, 1).T), lambda x: torch.corrcoef(x.flatten(0, 1).T),
               lambda x: torch.trace(x[0, :6]), lambda x: torch.dist(x[0, :4], x[1, :4]),
               lambda x: torch.renorm(x[0, :4], 2, 0, 1.0),
               lambda x: F.triplet_margin_loss(x[0, :4], x[0, 4:8], x[1, :4]),
               lambda x: F.cosine_embedding_loss(x[0, :4], x[1, :4], torch.ones(4)), shape=(2, 8, 6))
    assert (got["cov"].macs, got["cov"].elementwise) == (576, 234)
    assert (got["corrcoef"].macs, got["corrcoef"].elementwise) == (576, 234 + 6 + 3 * 36)
    assert got["trace"].elementwise == 6 and got["dist"].elementwise == 2 * 24 and got["renorm"].elementwise == 48
    assert got["triplet_margin_loss"].elementwise == 2 * 3 * 24 + 4 * 4
    assert got["cosine_embedding_loss"].elementwise == 3 * 24 + 4 * 10
    w = nn.Parameter(torch.randn(6, 14))
    a = analyse_module(Calls(lambda x: torch.cov(w + x)), "cov", (6, 14), torch.device("cpu"), torch.float32,
                       backward=True)
    cov = next(r for r in a.records if r.type == "cov")
    with FlopCounterMode(display=False) as counter:
        torch.cov(w + torch.randn(6, 14)).sum().backward()
    assert 2 * (cov.macs + cov.backward.macs) == counter.get_total_flops() == 2 * 3 * 504


def test_special_functions():
    """Bessel functions and the other special functions of torch.special: 1 per element, as every function of one
    element; special.logsumexp a reduction; the orthogonal polynomials not counted, and said why."""
    model = Calls(lambda x: torch.special.bessel_j0(x), lambda x: torch.special.modified_bessel_k1(x.abs() + 1),
                  lambda x: torch.special.logsumexp(x, -1), lambda x: torch.special.chebyshev_polynomial_t(x, 3))
    a = analyse_module(model, "special", (2, 4, 8), torch.device("cpu"), torch.float32)
    got = {r.type: r for r in a.records}
    assert got["special_bessel_j0"].elementwise == got["special_modified_bessel_k1"].elementwise == 64
    assert got["special_logsumexp"].elementwise == 64
    assert got["special_chebyshev_polynomial_t"].macs is None
    assert got["special_chebyshev_polynomial_t"].note.startswith("an orthogonal polynomial: its kernel recurs")


def test_a_parametrized_layer_counts_the_work_that_makes_its_weight():
    """torch.nn.utils.parametrizations (spectral_norm, weight_norm, orthogonal) compute a layer's weight in its
    forward, so the layer is counted as the operations that run, not as a plain Linear: spectral_norm(Linear(16, 8))
    on 2 rows, in eval mode σ = uᵀ(W v): the product 2*16*8 = 256, W·v 8*16 = 128 and the dot 8 (392); in a training
    step's forward one power iteration before, Wᴴ·u and W·v (128 each): 648. weight_norm: w = g·v/‖v‖, 3 per element
    of v. Every parameter is owned by a row, and flop_counter, torchinfo and thop 0.1.1 (not Ultralytics' module of
    that name, which counts by rules of its own), run on them, equal archcalc's conventions of them."""
    from torch.nn.utils.parametrizations import spectral_norm, weight_norm

    torch.manual_seed(0)
    layer = spectral_norm(nn.Linear(16, 8))
    assert archcalc.analyze(layer.eval(), (2, 16), device="cpu").totals.macs == 256 + 128 + 8
    trained = archcalc.analyze(layer, (2, 16), device="cpu", backward=True)
    assert trained.totals.macs == 256 + 3 * 128 + 8
    assert sum(r.params for r in trained.layers) == 16 * 8 + 8
    normed = archcalc.analyze(weight_norm(nn.Conv1d(8, 8, 5, padding=2, groups=2), dim=2), (2, 8, 20), device="cpu")
    norm = next(r for r in normed.layers if r.type == "_weight_norm")
    assert norm.elementwise == 3 * 8 * 4 * 5 and normed.totals.macs == 2 * 8 * 20 * 4 * 5
    net = nn.Sequential(spectral_norm(nn.Conv2d(3, 16, 4, 2, 1)), nn.LeakyReLU(0.2), nn.Flatten(),
                        weight_norm(nn.Linear(16 * 16 * 16, 1)))
    a, tools = archcalc.reconcile(net, inputs=(torch.randn(1, 3, 32, 32),))
    for convention in ("flop_counter", "torchinfo", "thop"):
        if "ultralytics" not in tools[convention].version:
            assert tools[convention].total == a.convention_total(convention)
