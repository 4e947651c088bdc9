"""torch.autograd.grad (or backward) inside a forward: its row counts the gradients autograd's engine computes on the
paths to the tensors asked for, by each row's backward formula (archcalc/analysis/differentiated.py), against hand
arithmetic and flop_counter's formulas on every aten operation that runs (tests/aten_flops.py: FlopCounterMode
itself fails on such a forward)."""

import json

import pytest
import torch

import archcalc
from tests.aten_flops import AtenMacs, step_macs
from tests.networks import (PINN, WGANGP, AttentionPINN, AutogradFunctional, BackwardInside, BilinearPINN,
                            ConvolutionHessian, EnergyForces, FunctionalAttentionGradient, HiddenGradient, InnerStep,
                            InPlaceResidual, KdV, PermutedNormPenalty, SecondDerivative,
                            StridedPenalty)
from tests.test_peak import real_cpu_peak


def _row(a, kind="autograd.grad"):
    return next(r for r in a.records if r.type == kind)


def _aten_forward(model, shape) -> int:
    torch.manual_seed(0)
    with AtenMacs() as counter:
        model(torch.randn(shape))
    return counter.macs


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_physics_informed_networks_derivative_is_the_input_gradient_of_each_layer(device):
    """∂u/∂x of a 2-32-32-1 MLP over 100 points: ∂x of each linear layer (its forward's products again), no ∂W
    (the weights are not asked for): 100*(2*32 + 32*32 + 32*1) = 112,000, as many as the forward's own."""
    a = archcalc.analyze(PINN(), [(100, 2)], device=device)
    row = _row(a)
    assert row.macs == 112_000 == sum(r.macs for r in a.records if r.type == "Linear")
    assert row.formulas["macs"] == ("autograd.grad: the gradients on the paths to 1 input asked for, each by its "
                                    "backward formula: ∂net.0 6,400 + ∂net.2 102,400 + ∂net.4 3,200 = 112,000")
    assert a.totals.macs == 224_000 == _aten_forward(PINN(), (100, 2))
    assert row.output_shapes == ((100, 2),) and row.input_shapes == ((), (100, 2))


@pytest.mark.parametrize("model,shape", [(EnergyForces(), (4, 1, 6, 6)), (InnerStep(), (10, 6)),
                                         (HiddenGradient(), (2, 3, 12, 12)), (BackwardInside(), (4, 5))])
def test_what_autograd_computes_in_a_forward_is_what_flop_counters_formulas_count(model, shape):
    """The input's gradient only through convolutions (a grouped one too); a weight's through the layers after it
    (∂x there) and its own ∂W; a hidden feature's, the layers before it not run; backward(), every parameter's."""
    a = archcalc.analyze(model, [shape], device="meta")
    assert a.totals.macs == _aten_forward(model, shape)
    assert not a.not_counted


def test_only_the_gradients_on_the_paths_are_counted():
    """MAML's inner step asks for first.weight: second gets ∂x (16*4 per sample), first gets ∂W (6*16) and no ∂x
    (x needs none): 10*(64 + 96) = 1,600; a feature's gradient stops at the feature: the head's ∂x only."""
    step = _row(archcalc.analyze(InnerStep(), [(10, 6)], device="meta"))
    assert step.macs == 10 * (16 * 4 + 6 * 16)
    hidden = _row(archcalc.analyze(HiddenGradient(), [(2, 3, 12, 12)], device="meta"))
    assert hidden.macs == 2 * 8 * 5 and "∂head 80" in hidden.formulas["macs"]


@pytest.mark.parametrize("model,shape", [(KdV(), (30, 2)), (KdV(torch.nn.GELU), (30, 2)),
                                         (KdV(torch.nn.Softplus), (30, 2)), (AttentionPINN(), (12, 2)),
                                         (ConvolutionHessian(), (2, 1, 5, 5))])
def test_derivatives_of_derivatives_count_the_gradients_products_differentiated_again(model, shape):
    """u_xx differentiates the operations that made u_x (create_graph=True): each matrix product or convolution among
    them gets its gradients' products, each element-wise one none."""
    a = archcalc.analyze(model, [shape], device="meta")
    assert a.totals.macs == _aten_forward(model, shape) and not a.not_counted


@pytest.mark.parametrize("body", ["gru", "lstm", "norms", "attention", "volume", "activations"])
def test_a_second_derivative_reaching_inside_a_row_counts_what_runs_there(body):
    """The first gradient keeps a row's inner tensors (a GRU's gates, attention's probabilities, a norm's statistics),
    so the second reaches the row from within, not through its output: the row's inner products that run are
    counted, node by node (they were left out, silently, before), and its element-wise, norm and pooling nodes
    have none."""
    shape = (8, 8) if body == "volume" else (8, 3)
    a = archcalc.analyze(SecondDerivative(body), [shape], device="meta")
    with torch.backends.mkldnn.flags(enabled=False):  # (the LSTM by PyTorch's own cells, as on meta and CUDA)
        assert a.totals.macs == _aten_forward(SecondDerivative(body), shape) and not a.not_counted
    if body == "lstm" and torch.backends.mkldnn.is_available():
        # oneDNN's LSTM, differentiated with create_graph=True, runs its differentiable backward: its forward again,
        # step by step (2,816, as many as flop_counter leaves out of oneDNN's own forward), and every gradient, W's
        # and h_0's too (3,072 more than the 2,560 needed): the kernel's extra work, not counted
        assert _aten_forward(SecondDerivative(body), shape) == a.totals.macs + 3_072


def test_attention_differentiated_twice_counts_the_math_kernel_and_says_where_a_fused_one_fails():
    """nn.MultiheadAttention gives scaled_dot_product_attention 4-d q, k and v: the CPU picks its flash kernel, whose
    backward cannot be differentiated again, and the real call fails; the math kernel's count is the one given, equal
    to the real one under sdpa_kernel(MATH), with a note saying so."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = SecondDerivative("heads")
    a = archcalc.analyze(model, [(8, 3)], device="meta")
    with pytest.raises(RuntimeError, match="not implemented"):
        _aten_forward(model, (8, 3))
    with sdpa_kernel(SDPBackend.MATH):
        assert a.totals.macs == _aten_forward(model, (8, 3)) and not a.not_counted
    assert all("sdpa_kernel(SDPBackend.MATH)" in r.note for r in a.records if r.type == "autograd.grad")


def test_a_recurrent_layers_second_derivative_by_hand():
    """u_xx through a GRU (3 -> 8, 8 steps): the first gradient's ∂x is each step's ∂ through W_hh (7 steps: h_0
    needs none, 7*24*8) and W_ih (8*24*3); the second runs those again, from within the GRU (its gates), and the
    first gradient's own products, each once: 2 * (1,344 + 576)."""
    a = archcalc.analyze(SecondDerivative("gru"), [(8, 3)], device="meta")
    first, second = [r for r in a.records if r.type == "autograd.grad"]
    assert first.macs == 7 * 24 * 8 + 8 * 24 * 3 + 8 * 8
    assert second.macs == 2 * (7 * 24 * 8 + 8 * 24 * 3)
    assert "∂layer from within 1,920" in second.formulas["macs"]


def test_functional_attention_gets_only_the_gradients_asked_for():
    """F.multi_head_attention_forward's backward took ∂W wherever its weights required a gradient: a gradient asked
    for x alone read 22,464 MACs of 16,320. Now what the engine computes, equal to the aten count (math kernel)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = FunctionalAttentionGradient()
    a = archcalc.analyze(model, [(6, 3)], device="meta")
    with sdpa_kernel(SDPBackend.MATH):
        assert a.totals.macs == _aten_forward(model, (6, 3)) and not a.not_counted


def test_a_bilinear_layers_gradients_by_hand():
    """∂u/∂x through nn.Bilinear(h, h): ∂h1 and ∂h2, each a _trilinear over 8 x 1 x 8 x 8 = 512 (not its weight's,
    which is not asked for: it was counted, 1,536 for 1,024), then the linear layer's ∂x (8*3*8 = 192); u_xx runs
    the first gradient's two _trilinears again for their ∂(∂y) (the TrilinearBackward0 nodes: 2 * 512), its mm's
    (192) and the linear layer's ∂x (192). PyTorch runs exactly these (counted by their index spaces: flop_counter
    has no _trilinear formula)."""
    a = archcalc.analyze(BilinearPINN(), [(8, 3)], device="meta")
    first, second = [r for r in a.records if r.type == "autograd.grad"]
    assert (first.macs, second.macs) == (2 * 512 + 192, 2 * 512 + 192 + 192) and not a.not_counted
    assert "2 × ∂(the gradient's _trilinear over 8x1x8x8, 1 of 3) 1,024" in second.formulas["macs"]


def test_a_matrix_vector_products_gradients_differentiated_again():
    """u = tanh(Wx + b) · w by torch.mv, over 8 points: the second derivative runs the gradient's mm (8*16)x(16*3)
    for ∂ of its ∂x (384) and the linear layer's ∂x again (384); mv's ∂ (8*16) and w's outer product are the first
    gradient's (flop_counter has no mv: its count is 2 * 128 lower)."""
    model = SecondDerivative("vector")
    a = archcalc.analyze(model, [(8, 3)], device="meta")
    first, second = [r for r in a.records if r.type == "autograd.grad"]
    assert (first.macs, second.macs) == (8 * 3 * 16 + 8 * 16, 2 * 8 * 3 * 16)
    assert a.totals.macs == _aten_forward(model, (8, 3)) + 2 * 8 * 16


def test_the_second_derivative_of_a_pinn_by_hand():
    """u_xx of a 2-16-16-1 tanh MLP over 30 points: the rows net.0 and net.2 again (∂x: 30*2*16 + 30*16*16) and the
    two products of u_x's that lead to x, each once (its ∂ by the gradient of ∂y, not by the weight's)."""
    a = archcalc.analyze(KdV(), [(30, 2)], device="meta")
    second = [r for r in a.records if r.type == "autograd.grad"][1]
    assert second.macs == 2 * (30 * 2 * 16 + 30 * 16 * 16)
    assert "∂(the gradient's mm (30*16)x(16*16), 1 of 2) 7,680" in second.formulas["macs"]
    assert "second derivatives" in second.note


def test_a_gradients_operation_without_a_formula_is_not_counted_never_short(monkeypatch):
    """Were tanh's backward differentiated again a node without a formula, u_xx would be "not counted", in the
    forward and in a training step, and the notes would say which."""
    from archcalc.analysis import differentiated

    monkeypatch.setattr(differentiated, "ZERO_PRODUCTS", differentiated.ZERO_PRODUCTS - {"TanhBackwardBackward0"})
    a = archcalc.analyze(KdV(), [(30, 2)], device="meta", backward=True)
    first, second, third = [r for r in a.records if r.type == "autograd.grad"]
    assert first.macs == 30 * (2 * 16 + 16 * 16 + 16) and second.macs is None is third.macs
    assert "TanhBackwardBackward0 (a gradient's operation, differentiated again)" in second.note
    assert any(n.startswith("backward not counted: autograd.grad (it differentiates TanhBackwardBackward0 again")
               for n in a.notes)


def test_backward_in_the_forward_computes_every_parameters_gradient():
    """fc2: ∂W 4*7*3 and ∂x 4*7*3; fc1: ∂W 4*5*7, and no ∂x (the input needs none)."""
    row = _row(archcalc.analyze(BackwardInside(), [(4, 5)], device="meta"), "backward")
    assert row.macs == 2 * 4 * 7 * 3 + 4 * 5 * 7


@pytest.mark.parametrize("model,shape", [(PINN(), (100, 2)), (KdV(), (30, 2)), (AttentionPINN(), (12, 2)),
                                         (EnergyForces(), (4, 1, 6, 6)), (InnerStep(), (10, 6)),
                                         (ConvolutionHessian(), (2, 1, 5, 5)), (SecondDerivative("gru"), (8, 3)),
                                         (SecondDerivative("norms"), (8, 3)),
                                         (SecondDerivative("attention"), (8, 3)), (WGANGP(), (8, 3, 16, 16))])
def test_a_training_step_differentiates_the_gradients_made_differentiable_again(model, shape):
    """Its backward runs each operation that made a create_graph=True gradient once more (a gradient's products
    again), the rows as any step's: equal to flop_counter's formulas over the step's aten kernels (the loss the sum of
    every output that needs a gradient; EnergyForces's needs none)."""
    a = archcalc.analyze(model, [shape], device="meta", backward=True)
    assert (a.totals.macs, a.totals.backward_macs) == step_macs(model, shape)
    assert not any("backward not counted" in n for n in a.notes)


def test_a_gradient_taken_without_create_graph_is_named_where_there_is_nothing_to_train():
    from archcalc.errors import InputError
    from archcalc.models.registry import ModelEntry
    from archcalc.training.peak import simulate

    a = archcalc.analyze(EnergyForces(), [(4, 1, 6, 6)], device="meta", backward=True)
    assert any("or is it a gradient the forward took without create_graph=True?" in n for n in a.notes)
    with pytest.raises(InputError, match="without create_graph=True"):
        simulate(ModelEntry("forces", "test", "tests.networks:EnergyForces", (1, 6, 6), "", ""), None, 4, "sgd")


def test_the_memory_of_a_training_step_through_a_forward_that_differentiates():
    from archcalc.models.registry import ModelEntry
    from archcalc.training.peak import simulate

    entry = ModelEntry("pinn", "test", "tests.networks:PINN", (2,), "", "")
    assert simulate(entry, None, 256, "adam", device="cpu").allocated == real_cpu_peak(entry, (256, 2), "adam")


def test_the_roofline_leaves_a_differentiating_row_out():
    """Its work spans the rows it differentiates: no one input and output to read its bytes off."""
    from archcalc.analysis.differentiated import CALLS
    from archcalc.analysis.roofline import DIFFERENTIATING, points

    assert DIFFERENTIATING == set(CALLS.values())
    a = archcalc.analyze(KdV(), [(30, 2)], device="meta")
    shown = {p.type for p in points(a)}
    assert "Linear" in shown and not shown & DIFFERENTIATING


def test_on_the_command_line(cli):
    run = cli("flops", "tests/networks.py:PINN", "--input", "100x2", "--device", "meta", "--format", "json")
    assert run.code == 0, run.err
    rows = {r["name"]: r for r in run.json()["layers"]}
    assert rows["autograd.grad"]["macs"] == 112_000 and rows["autograd.grad"]["type"] == "autograd.grad"


@pytest.mark.parametrize("how", ["jacobian", "jacobian vectorized", "hessian", "hessian vectorized", "hvp", "vjp",
                                 "jvp", "langevin", "score matching"])
def test_torch_autograd_functional_forward_and_step(how):
    """torch.autograd.functional's calls (by rows of vector-Jacobian products, or vectorized: one torch.autograd.grad
    with is_grads_batched, whose engine runs under vmap over the grad_outputs' rows: its count x 10 for a 5 x 2
    output, read once before), Langevin steps and sliced score matching: the forward and a training step equal the
    aten count."""
    model = AutogradFunctional(how)
    a = archcalc.analyze(model, [(5, 3)], device="meta", backward=True)
    assert (a.totals.macs, a.totals.backward_macs) == step_macs(model, (5, 3))
    assert not any("not counted" in n for n in a.notes)


def test_is_grads_batched_counts_each_vector_jacobian_product():
    """jacobian(vectorize=True) of a 3-16-2 MLP over 5 points: one vector-Jacobian product (∂x of both layers, 5*16*2
    + 5*3*16 = 400) for each of the output's 10 elements."""
    a = archcalc.analyze(AutogradFunctional("jacobian vectorized"), [(5, 3)], device="meta")
    row = _row(a)
    assert row.macs == 10 * (5 * 16 * 2 + 5 * 3 * 16)
    assert row.formulas["macs"].endswith("= 400 per vector-Jacobian product, x 10 (is_grads_batched over 10 "
                                         "grad_outputs) = 4,000")


@pytest.mark.parametrize("how", ["saliency", "hvp"])
def test_a_gradient_through_in_place_layers_counts_what_runs(how):
    """A saliency map and a Hessian-vector product through a block written as torchvision's ResNets write it
    (ReLU(inplace=True), out += identity): an in-place row's input holds the row's own node once it ran, which had
    read as "run out of the trace's sight" (every torchvision ResNet's input gradient "not counted"); equal to the aten
    count, forward and training step (the saliency's gradient differentiated again)."""
    model, shape = InPlaceResidual(how), (2, 3, 8, 8)
    model.eval()
    a = archcalc.analyze(model, [shape], device="meta", backward=how == "saliency")
    assert not a.not_counted
    macs = step_macs(model, shape)
    assert a.totals.macs == macs[0] and (how != "saliency" or a.totals.backward_macs == macs[1])


@pytest.mark.parametrize("frozen", [False, True], ids=["strided", "frozen batch norm"])
def test_a_gradient_penalty_through_a_strided_convolution_counts_what_runs(frozen):
    """A gradient penalty trained through a 7x7 stride-2 convolution that leaves input rows over: PyTorch's double
    backward computes ∂W's convolution of ggI by gO at its full extent, 8x8, then narrows it to 7x7 (393,216 MACs
    where the forward's size is 301,056; every torchvision ResNet's stem, whose penalty's step read 2% short); and
    through a batch norm in eval mode, whose backward differentiated again sends nothing to its input, so the
    convolution before it is not differentiated again (it read 602,112 MACs more): equal to the aten count."""
    model, shape = StridedPenalty(frozen), (2, 3, 32, 32)
    a = archcalc.analyze(model, [shape], device="meta", backward=True)
    assert (a.totals.macs, a.totals.backward_macs) == step_macs(model, shape)
    if not frozen:
        again = _row(a).backward
        assert again.macs == 301_056 + 393_216 + 2 * 1024
        assert "∂W's at its full extent 8*8 (narrowed to 7*7)" in again.text()["macs"]


def test_a_gradient_penalty_through_an_in_place_restride_counts_what_runs():
    """A gradient penalty trained through ConvNeXt's head (a LayerNorm on permuted channels, then AdaptiveAvgPool2d(1),
    which restrides its channels-last mean in place): the step differentiates the gradient's copy into an as_strided
    view (CopySlices: torchvision's ConvNeXt-T penalty step was "not counted"), which has no products; equal to the
    aten count, forward and step."""
    model, shape = PermutedNormPenalty(), (2, 3, 8, 8)
    a = archcalc.analyze(model, [shape], device="meta", backward=True)
    assert not a.not_counted
    assert (a.totals.macs, a.totals.backward_macs) == step_macs(model, shape)
