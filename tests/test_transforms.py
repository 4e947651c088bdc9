"""torch.func's transforms in a forward (archcalc/analysis/transforms.py): a row made under torch.vmap counts every
sample's work, one under forward-mode AD adds its tangent's products, against flop_counter's formulas over every aten
kernel that runs (tests/aten_flops.py) and hand arithmetic."""

import re

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import archcalc
from tests.aten_flops import AtenMacs, step_macs
from tests.networks import (AttentionTangents, ChainTangents, Ensemble, SubsetTangents, ForwardModeAttention, ForwardModeCNN,
                            ForwardModeRecurrent, ForwardOverReverse, FunctionalMAML, FunctionalPINN, NestedPINN,
                            PerSampleGradients)

SHAPE = (10, 2)


def _aten(model) -> int:
    torch.manual_seed(0)
    with AtenMacs() as counter:
        model(torch.randn(SHAPE))
    return counter.macs


@pytest.mark.parametrize("how", ["grad", "jacrev", "jacfwd", "jvp", "dual", "jvp of grad", "hessian", "dual of grad",
                                 "grad of jvp", "grad of dual", "jacrev of jacfwd"])
def test_a_transformed_forward_counts_what_runs(how):
    model = FunctionalPINN(how)
    a = archcalc.analyze(model, [SHAPE], device="meta")
    assert a.totals.macs == _aten(model) and not a.not_counted


def test_a_vmapped_row_shows_one_sample_and_counts_them_all():
    """vmap(grad(u)) over 10 points: net.0 sees one point (2 -> 16), 2*16 MACs, x 10; the gradient's ∂x likewise."""
    a = archcalc.analyze(FunctionalPINN("grad"), [SHAPE], device="meta")
    inner = [r for r in a.records if r.name == "net.0"][1]
    assert inner.input_shapes == ((2,),) and inner.macs == 10 * 2 * 16
    assert inner.formulas["macs"] == "1*2*16 = 32 per sample, x 10 (torch.vmap over 10) = 320"
    assert "run under torch.vmap over 10" in inner.note
    grad = next(r for r in a.records if r.type == "autograd.grad")
    assert grad.macs == 10 * (16 * 1 + 2 * 16)


def test_forward_mode_adds_every_operands_tangent_term():
    """jvp of a linear layer: x·Wᵀ, then x'·Wᵀ + x·W'ᵀ (PyTorch computes the weight's term with a zero tangent):
    3 products of 10*2*16; jacfwd's basis batches x' (2 directions) but not W's zero tangent: 1 + 2 + 1 per point."""
    jvp = archcalc.analyze(FunctionalPINN("jvp"), [SHAPE], device="meta")
    assert next(r for r in jvp.records if r.name == "net.0").macs == 3 * 10 * 2 * 16
    jacfwd = archcalc.analyze(FunctionalPINN("jacfwd"), [SHAPE], device="meta")
    assert [r for r in jacfwd.records if r.name == "net.0"][1].macs == 10 * (1 + 2 + 1) * 2 * 16


def test_an_ensemble_vmapped_over_its_members_counts_each():
    model = Ensemble()
    a = archcalc.analyze(model, [SHAPE], device="meta")
    assert a.totals.macs == 4 * 10 * (2 * 16 + 16 * 1) == _aten(model)
    assert a.totals.params == 4 * (2 * 16 + 16 + 16 + 1)


@pytest.mark.parametrize("how", ["jvp of vmap", "vmap of jvp"])
def test_forward_mode_and_vmap_in_either_order_count_what_runs(how):
    model = FunctionalPINN(how)
    a = archcalc.analyze(model, [SHAPE], device="meta")
    assert a.totals.macs == _aten(model) and not a.not_counted


@pytest.mark.parametrize("how,why", [("jvp of jvp", "nested in forward-mode AD"),
                                     ("grad of jvp of jvp", "reverse over forward where the tangents are nested")])
def test_forward_mode_nested_or_differentiated_is_not_counted_never_short(how, why):
    """Tangents of tangents, and a gradient of them: no formula (jvp of jvp read 1,440 of 3,680, silently, once; the
    gradient of jvp of jvp 640, its nested rows' tangents taken for seen: a Count is a tuple too); the rows with work
    that meet them are "not counted"."""
    model = FunctionalPINN(how)
    a = archcalc.analyze(model, [SHAPE], device="meta")
    assert a.not_counted and a.totals.macs < _aten(model)
    assert any(why in r.note for r in a.not_counted)


@pytest.mark.parametrize("how", ["jvp of grad", "hessian", "hessian of the sum", "jacfwd of jacrev", "parameters",
                                 "dual", "convolutional", "einsum", "attention", "recurrent"])
def test_forward_over_reverse_counts_the_gradients_tangents(how):
    """Forward-mode AD over a gradient (forward_over_reverse.py): a Hessian-vector product jvp(grad(f)), a PINN's
    vmap(hessian(u)), the Hessian of a sum over 10 points (jacfwd's basis of 20), jacfwd(jacrev(.)) of a 16-vector
    (jacrev's vmap over 16 cotangents, jacfwd's over 2), a Hessian-vector product in parameter space (the weights
    carry the tangents, every gradient's), forward_ad's dual tensors given to torch.autograd.grad, and jvp(grad(f))
    through convolutions and a two-operand einsum: equal to flop_counter's formulas over every aten kernel that runs
    ("not counted" before: the tangents beneath grad were out of the trace's sight); and through attention and a GRU,
    whose gradients are no pairs of their own: the matrix products inside them, node by node (a ViT's Hessian-vector
    product was "not counted")."""
    model = ForwardOverReverse(how)
    shape = (2, 1, 8, 8) if how == "convolutional" else SHAPE
    a = archcalc.analyze(model, [shape], device="meta")
    torch.manual_seed(0)
    with AtenMacs() as counter:
        model(torch.randn(shape))
    assert a.totals.macs == counter.macs and not a.not_counted


def test_forward_over_reverse_by_hand():
    """jvp(grad(f)) of a 2-16-1 tanh MLP over 10 points, by hand: each linear layer's forward and its tangent's two
    terms (x'·Wᵀ, x·W'ᵀ with W' zeros), 3 x (10*2*16 + 10*16*1) = 1,440; the gradient: net.2's ∂h = ∂y·W2, 160, has no
    tangent (∂y = 1 there, W2 constant), net.0's ∂x = ∂h'·W1 has, ∂h' (through tanh's derivative) carrying one:
    320 x (1 + 1) beside its own 320; 160 + 3 * 320 = 1,120."""
    a = archcalc.analyze(FunctionalPINN("jvp of grad"), [SHAPE], device="meta")
    grad = next(r for r in a.records if r.type == "autograd.grad")
    assert grad.macs == 160 + 3 * 320 and a.totals.macs == 1440 + 1120 == _aten(FunctionalPINN("jvp of grad"))
    assert grad.formulas["macs"].endswith("for ∂Y's term and for the other operand's, x as many times as each is "
                                          "batched: net.0's ∂x 320 x (1 + 1) = 640; in all 480 + 640 = 1,120")
    assert "forward over reverse" in grad.note


@pytest.mark.parametrize("how,why", [("bilinear", "those of ∂(bilinear) have no formula"),
                                     ("jvp of jvp of grad", "out of the trace's sight (nested forward mode"),
                                     ("legacy vmap", "_add_batch_dim")])
def test_forward_over_reverse_without_a_formula_is_not_counted_never_short(how, why):
    """A bilinear layer's gradients under forward-mode AD (a _trilinear inside: no pair of ∂Y and one operand),
    forward mode nested over a gradient (tangents of tangents), and torch.autograd.functional's forward-mode hessian,
    whose vmap is PyTorch's legacy one (_add_batch_dim): "not counted", never short."""
    model = ForwardOverReverse(how)
    a = archcalc.analyze(model, [SHAPE], device="meta")
    assert a.not_counted and (how == "bilinear" or a.totals.macs < _aten(model))  # (flop_counter: no _trilinear)
    assert any(why in f"{r.name}: {r.note}" for r in a.not_counted)


@pytest.mark.parametrize("how", ["grad of grad", "third", "unbatched", "jacrev of jacrev", "laplacian"])
def test_nested_reverse_mode_counts_each_levels_gradients(how):
    """Each torch.func.grad level keeps its own autograd graph: the inner gradient's operations ran at the outer
    level too, as nodes of its graph (and the rows' operations made nodes at every level below theirs), so the
    outer gradient differentiates them again as a PINN's u_xx does (they were "not counted" before): grad(grad(u)),
    a third derivative, grad of a summed gradient without vmap, jacrev(jacrev(u)) and a Laplacian by
    jacrev(grad(u))'s trace equal the aten count."""
    model = NestedPINN(how)
    a = archcalc.analyze(model, [SHAPE], device="meta")
    assert a.totals.macs == _aten(model) and not a.not_counted


def test_grad_of_grad_by_hand():
    """u = W2 tanh(W1 p + b1) + b2 for each of 10 points (2 -> 16 -> 1): u_p = ∂net.2 (1*16) + ∂net.0 (16*2) = 48;
    its derivative runs the first gradient's mm (1*16)x(16*2) again for its left factor (32) and net.0's ∂x (32)."""
    a = archcalc.analyze(FunctionalPINN("grad of grad"), [SHAPE], device="meta")
    first, second = [r for r in a.records if r.type == "autograd.grad"]
    assert (first.macs, second.macs) == (10 * 48, 10 * 64)
    assert "∂net.0 32 + ∂(the gradient's mm (1*16)x(16*2), 1 of 2) 32 = 64 per sample, x 10" in \
        second.formulas["macs"]


@pytest.mark.parametrize("model", [FunctionalPINN("grad"), FunctionalPINN("jacrev"), NestedPINN("grad of grad"),
                                   NestedPINN("unbatched"), NestedPINN("laplacian")], ids=lambda m: m.how)
def test_a_training_step_through_torch_func_counts_regular_autograds_backward(model):
    """The step's backward is regular autograd's (the plain tensors under the transforms' wrappers): a row whose input
    is wrapped at a grad level but plain below (the points) gets no ∂x there (net.0's was counted, 320 MACs too many
    over 10 points), and the gradients' operations, which ran at every level, are differentiated again: equal to the
    aten kernels of the real step (the loss the sum of every output that needs a gradient)."""
    a = archcalc.analyze(model, [SHAPE], device="meta", backward=True)
    assert (a.totals.macs, a.totals.backward_macs) == step_macs(model, SHAPE)
    assert not any("not counted" in n for n in a.notes)


@pytest.mark.parametrize("how", ["grad", "ntk", "jvp"])
def test_parameters_swapped_in_by_functional_call_are_the_layers(how):
    """functional_call swaps the given tensors into the modules for the call and back after it; a layer's record
    was made after the pass (deferred), from the parameters swapped back, so the gradients asked for were never
    the layers' own: per-sample gradients counted no layer's ∂W (their row read 76,288 for 194,048, silently). Now
    equal to the aten count (flop_counter's grouped ∂W corrected: vmap's per-sample ∂W is a grouped convolution)."""
    model = PerSampleGradients(how)
    shape = (4, 1, 14, 14)
    a = archcalc.analyze(model, [shape], device="meta")
    torch.manual_seed(0)
    with AtenMacs() as counter:
        model(torch.randn(shape))
    assert a.totals.macs == counter.macs and not a.not_counted
    assert a.totals.params == sum(p.numel() for p in model.parameters())  # (the copies swapped in are not its own)


def test_per_sample_gradients_by_hand():
    """Each of 4 images: conv1's ∂W (8*12*12*9 = 10,368; its ∂x unneeded), conv2's ∂x and ∂W (2 * 18,432), fc's
    ∂x and ∂W (2 * 640)."""
    a = archcalc.analyze(PerSampleGradients("grad"), [(4, 1, 14, 14)], device="meta")
    row = next(r for r in a.records if r.type == "autograd.grad")
    assert row.macs == 4 * (10_368 + 2 * 18_432 + 2 * 640)


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_with_functional_call_forward_and_step(first_order):
    model = FunctionalMAML(first_order)
    a = archcalc.analyze(model, [(10, 6)], device="meta", backward=True)
    assert (a.totals.macs, a.totals.backward_macs) == step_macs(model, (10, 6))
    assert not any("not counted" in n for n in a.notes)
    assert a.totals.params == 6 * 16 + 16 + 16 + 1  # (the fast weights are not parameters)



@pytest.mark.parametrize("model,shape", [
    (lambda: FunctionalPINN("jvp"), SHAPE), (lambda: FunctionalPINN("jacfwd"), SHAPE),
    (lambda: FunctionalPINN("dual"), SHAPE), (lambda: FunctionalPINN("jvp of vmap"), SHAPE),
    (lambda: FunctionalPINN("vmap of jvp"), SHAPE), (lambda: ForwardModeCNN("jvp"), (2, 1, 8, 8)),
    (lambda: ForwardModeCNN("jacfwd"), (2, 1, 8, 8)), (lambda: ForwardModeCNN("parameters"), (2, 1, 8, 8))],
    ids=["jvp", "jacfwd", "dual", "jvp of vmap", "vmap of jvp", "cnn jvp", "cnn jacfwd", "cnn parameters"])
def test_a_training_step_through_tangents_counts_their_backward(model, shape):
    """A training step whose loss takes tangents (a PINN's u_x by jvp or jacfwd, trained; reverse over forward):
    its backward runs each row's own gradients and those of the operations that computed its tangents (x'·Wᵀ and
    x·W'ᵀ, the zeros W' too), counted node by node; equal to the aten count (every row's backward was "not counted"
    before). In parameter space the weights are functional_call's, wrapped by jvp: their gradients are the plain
    parameters' (∂W read as not needed, silently, at first)."""
    m = model()
    a = archcalc.analyze(m, [shape], device="meta", backward=True)
    assert (a.totals.macs, a.totals.backward_macs) == step_macs(m, shape)
    assert not [r for r in a.records if r.backward is not None and r.backward.macs is None]


def test_a_training_step_through_tangents_by_hand():
    """jvp of a 2-16-1 tanh MLP over 10 points, trained on out.sum() + tangent.sum(): net.2's own ∂W and ∂h (160
    each) and its tangent's products' (x'·W2ᵀ: ∂x' and ∂W2; x·W2'ᵀ with zeros W2': ∂x), 3 x 160; net.0's own ∂W
    (320; x needs none) and its tangent's x'·W1ᵀ's ∂W1 (320; x' is the constant direction, x·W1'ᵀ's ∂x not
    needed): 640 + 800 = 1,440."""
    a = archcalc.analyze(FunctionalPINN("jvp"), [SHAPE], device="meta", backward=True)
    backward = {r.name: r.backward.macs for r in a.records if r.backward is not None and r.backward.macs}
    assert backward == {"net.2": 2 * 160 + 3 * 160, "net.0": 320 + 320}
    row = next(r for r in a.records if r.name == "net.2" and r.backward.macs)
    assert "reverse over forward" in row.backward.note


@pytest.mark.parametrize("model,shape", [
    (lambda: FunctionalPINN("hessian"), SHAPE), (lambda: FunctionalPINN("jvp of grad"), SHAPE),
    (lambda: FunctionalPINN("grad of jvp"), SHAPE), (lambda: FunctionalPINN("dual of grad"), SHAPE),
    (lambda: FunctionalPINN("grad of dual"), SHAPE), (lambda: FunctionalPINN("vmap of grad of jvp"), SHAPE),
    (lambda: FunctionalPINN("jacrev of jacfwd"), SHAPE), (lambda: ForwardOverReverse("hessian"), SHAPE),
    (lambda: ForwardOverReverse("hessian of the sum"), SHAPE), (lambda: ForwardOverReverse("jacfwd of jacrev"), SHAPE),
    (lambda: ForwardOverReverse("parameters"), SHAPE), (lambda: ForwardOverReverse("dual"), SHAPE),
    (lambda: ForwardOverReverse("convolutional"), (2, 1, 8, 8)), (lambda: ForwardOverReverse("einsum"), SHAPE),
    (lambda: ForwardOverReverse("attention"), SHAPE), (lambda: ForwardModeCNN("grad of jvp"), (2, 1, 8, 8)),
    (lambda: ForwardModeCNN("grad of jvp in parameter space"), (2, 1, 8, 8)),
    (lambda: ForwardModeCNN("jacrev of jacfwd"), (2, 1, 8, 8))],
    ids=["hessian", "jvp of grad", "grad of jvp", "dual of grad", "grad of dual", "vmap of grad of jvp",
         "jacrev of jacfwd", "mlp hessian", "hessian of the sum", "jacfwd of jacrev", "parameters", "dual", "cnn",
         "einsum", "attention", "cnn grad of jvp", "cnn grad of jvp in parameter space", "cnn jacrev of jacfwd"])
def test_a_training_step_where_tangents_and_gradients_meet_counts_what_runs(model, shape):
    """A PINN trained through torch.func.hessian, a Hessian-vector product trained, a gradient of tangents trained:
    the step's backward runs the rows' own gradients, those of the operations that computed the rows' tangents, of
    the operations the gradient's engine ran and of those that computed the gradients' tangents (forward over
    reverse), each node once; equal to the aten count (every such row's backward was "not counted" before), through
    convolutions, an einsum and attention, vmapped, in parameter space, where the forward itself is not counted
    (jacrev of jacfwd's, attention's: the step is)."""
    m = model()
    a = archcalc.analyze(m, [shape], device="meta", backward=True)
    assert a.totals.backward_macs == step_macs(m, shape)[1]
    assert not [r.name for r in a.records if r.backward is not None and r.backward.macs is None]


def test_a_hessian_vector_product_trained_by_hand():
    """jvp(grad(sum of u)) of a 2-16-1 tanh MLP over 10 points, trained on the product's sum: net.0's own ∂W1 (320; x
    needs none) and its tangent x'·W1ᵀ's ∂W1 (320); of the gradient's operations, ∂h = ∂y·W2's ∂W2 (160: ∂y is the
    constant 1) and of those that computed the gradients' tangents ∂x' = ∂z'·W1 + ∂z·W1'ᵀ (W1' zeros): ∂(∂z') and
    ∂W1 (2 x 320) and ∂(∂z) (320): 640 + 1,120 = 1,760."""
    a = archcalc.analyze(FunctionalPINN("jvp of grad"), [SHAPE], device="meta", backward=True)
    backward = {r.name: r.backward.macs for r in a.records if r.backward is not None and r.backward.macs}
    assert backward == {"net.0": 320 + 320, "autograd.grad": 160 + 2 * 320 + 320}
    grad = next(r for r in a.records if r.name == "autograd.grad").backward.text()["macs"]
    assert "∂(a tangent's mm (10*16)x(16*2), 2 of 2) 640" in grad and "∂(the gradient's mm (10*1)x(1*16)" in grad


@pytest.mark.parametrize("model", [lambda: ForwardOverReverse("jvp of jvp of grad"),
                                   lambda: FunctionalPINN("jvp of jvp")], ids=["jvp of jvp of grad", "jvp of jvp"])
def test_a_training_step_through_tangents_of_tangents_is_not_counted_never_short(model):
    """Nested forward mode trained: the tangents of tangents are out of the trace's sight, and so are the operations
    that computed them, which the step differentiates: every row that ran under them, and the gradient whose tangents
    they were, "not counted" in the backward (jvp of jvp of grad's gradient read 12,960 of the step's 69,280 and jvp
    of jvp's last layer 0, silently, while this was built; PyTorch's own step under a dispatch mode crashes there)."""
    a = archcalc.analyze(model(), [SHAPE], device="meta", backward=True)
    assert not [r.name for r in a.records if r.type in ("Linear", "autograd.grad") and r.backward.macs is not None]


def test_reverse_over_forward_in_a_forward_by_hand():
    """grad(sum of jvp(u)) of a 2-16-1 tanh MLP over 10 points (reverse over forward; "not counted" before, and 1,440
    of 2,400 silently before that): the forward's rows with their tangents, 3 x (320 + 160); the gradient: net.0's ∂x
    (320: tanh's tangent takes its output), and the products of the operations that computed the tangents, node by
    node: x·W1'ᵀ's ∂x (320, W1' zeros), h'·W2ᵀ's ∂h' and h·W2'ᵀ's ∂h (160 each)."""
    a = archcalc.analyze(FunctionalPINN("grad of jvp"), [SHAPE], device="meta")
    grad = next(r for r in a.records if r.type == "autograd.grad")
    assert grad.macs == 320 + 320 + 2 * 160 and a.totals.macs == 3 * 480 + 960
    assert "2 × ∂(a tangent's mm (10*16)x(16*1), 1 of 2) 320" in grad.formulas["macs"]


@pytest.mark.parametrize("model,shape", [
    (lambda: FunctionalPINN("vmap of grad of jvp"), SHAPE), (lambda: ForwardModeCNN("grad of jvp"), (2, 1, 8, 8)),
    (lambda: ForwardModeCNN("grad of jvp in parameter space"), (2, 1, 8, 8)),
    (lambda: ForwardModeCNN("jacrev of jacfwd"), (2, 1, 8, 8))],
    ids=["vmap of grad of jvp", "cnn", "cnn parameters", "cnn jacrev of jacfwd"])
def test_reverse_over_forward_in_a_forward_counts_the_tangents_operations(model, shape):
    """A gradient of tangents taken in the forward: per point under vmap, through convolutions, GELU and LayerNorm,
    and in parameter space, where the weights swapped in are jvp's wrappers inside grad's (their ∂W was read as not
    needed at the wrapper's level: 12,096 of 13,824 on an MLP, silently, while this was built), and jacrev of jacfwd,
    whose tangents jacfwd's basis batches inside jacrev's gradient (the nodes' sizes show the basis; "not counted"
    before): equal to the aten count."""
    m = model()
    a = archcalc.analyze(m, [shape], device="meta")
    torch.manual_seed(0)
    with AtenMacs() as counter:
        m(torch.randn(shape))
    assert a.totals.macs == counter.macs and not a.not_counted


@pytest.mark.parametrize("model,shape", [
    (lambda: FunctionalPINN("jacfwd"), SHAPE), (lambda: FunctionalPINN("jvp"), SHAPE),
    (lambda: FunctionalPINN("hessian"), SHAPE), (lambda: ForwardOverReverse("jvp of grad"), SHAPE),
    (lambda: ForwardModeCNN("jacfwd"), (2, 1, 8, 8)), (lambda: ForwardModeCNN("parameters"), (2, 1, 8, 8))],
    ids=["jacfwd", "jvp", "hessian", "jvp of grad", "cnn jacfwd", "cnn parameters"])
def test_each_rows_arithmetic_ends_in_its_figure(model, shape):
    """A row with tangents shows its own figure, its tangents' and their sum, which vmap's scaling reads off the end:
    jacfwd's net.0 read "... = 96 per sample, x 10 = 960" for its 1,280 MACs (32 + 96 = 128 per point), the tangents'
    figure taken for the row's."""
    for backward in (False, True):
        a = archcalc.analyze(model(), [shape], device="meta", backward=backward)
        for r in a.records:
            counts = [(r.formulas, r.macs, r.elementwise)]
            if r.backward is not None:
                counts.append((r.backward.text(), r.backward.macs, r.backward.elementwise))
            for formulas, macs, elementwise in counts:
                for key, value in (("macs", macs), ("elementwise", elementwise)):
                    text = formulas[key] if value is not None and key in formulas else ""
                    end = re.search(r"= ([\d,]+)$", text)
                    assert end is None or int(end.group(1).replace(",", "")) == value, (r.name, key, text)


@pytest.mark.parametrize("how", ["gru", "rnn", "bidirectional", "lstm", "initial state with a tangent",
                                 "constant initial state", "parameters", "gru cell", "lstm cell",
                                 "lstm cell given its state", "projected lstm",
                                 "projected lstm along its initial state"])
def test_forward_mode_through_recurrent_layers_counts_what_runs(how):
    """jvp through recurrent layers, and a training step of it: each product's tangent where one of its operands
    carries one (the first step's hidden product has none where h_0 and W_hh carry none; PyTorch computes every later
    one's two terms) and the step's gradients of the operations that computed them, not of the layer's own steps again
    (they are its backward formula's): equal to the aten count, forward and step (a GRU read 16,896 of 16,512 and its
    step 23,040 of 15,744, silently, before; in parameter space 16,896 of 17,280)."""
    model, shape = ForwardModeRecurrent(how), (2, 5, 16)
    a = archcalc.analyze(model, [shape], device="meta", backward=True)
    with torch.backends.mkldnn.flags(enabled=False):  # (the CPU's oneDNN LSTM has no forward-mode AD)
        assert (a.totals.macs, a.totals.backward_macs) == step_macs(model, shape)
    assert not a.not_counted


def test_forward_mode_through_a_gru_by_hand():
    """jvp of a GRU (16 -> 8) along its input, 2 sequences of 5 steps: its own 10 rows*(24*16 + 24*8) = 5,760; the
    tangents: x'·W_ihᵀ and x·W_ih'ᵀ (zeros) over 10 rows, 2 x 3,840; h'·W_hhᵀ and h·W_hh'ᵀ over the 8 rows after the
    first step (h_0 zeros, W_hh constant: no tangent there), 2 x 1,536; 5,760 + 10,752 = 16,512."""
    a = archcalc.analyze(ForwardModeRecurrent("gru"), [(2, 5, 16)], device="meta")
    gru = next(r for r in a.records if r.type == "GRU")
    assert gru.macs == 5760 + 2 * 3840 + 2 * 1536
    assert "weight_ih_l0 10*384*(1 + 1) + weight_hh_l0 8*192*(1 + 1) = 10,752" in gru.formulas["macs"]


def test_forward_mode_through_a_fused_attention_kernel_says_what_to_do():
    """On the CPU PyTorch runs 4-d attention with its flash kernel, which has no forward-mode AD: the run fails, as
    the real one does, and says how to run it (the math kernel), under which it is counted as the aten count."""
    with pytest.raises(archcalc.ForwardError, match=r"sdpa_kernel\(SDPBackend.MATH\)"):
        archcalc.analyze(ForwardModeAttention(), [(2, 5, 16)], device="cpu")
    model = ForwardModeAttention(math=True)
    a = archcalc.analyze(model, [(2, 5, 16)], device="cpu")
    assert a.totals.macs == step_macs(model, (2, 5, 16))[0] and not a.not_counted


def test_forward_mode_through_the_cpus_onednn_lstm_says_what_to_do():
    """The CPU runs an LSTM through oneDNN, which has no forward-mode AD: the run fails as the real one does and says
    how to run it; with oneDNN off it is counted as the aten count."""
    model, shape = ForwardModeRecurrent("lstm"), (2, 5, 16)
    with pytest.raises(archcalc.ForwardError, match=r"mkldnn.flags\(enabled=False\)"):
        archcalc.analyze(model, [shape], device="cpu")
    with torch.backends.mkldnn.flags(enabled=False):
        assert archcalc.analyze(model, [shape], device="cpu").totals.macs == step_macs(model, shape)[0]


@pytest.mark.parametrize("how", ["jvp", "jacfwd", "hessian", "parameters"])
@pytest.mark.parametrize("what", ["cross", "memory", "kdim", "functional", "mask", "value", "sdpa mask"])
def test_forward_mode_through_attention_whose_operands_do_not_all_carry_tangents(what, how):
    """Attention under forward-mode AD where some operands carry no tangent (a cross-attention's memory, a frozen
    query, SDPA's value alone, a learned float mask): a projection whose input and weights carry none computes none,
    a product one of whose operands does multiplies the other's zeros too, and each product runs as many times as the
    most batched tangent it reads (jacfwd's basis); a training step differentiates the tangents' products and the
    row's inside they read. Equal to the aten count, forward and step (a cross-attention's jvp read 11,904 of 7,808,
    silently, and its jacfwd "not counted"; SDPA's gradient through a float mask left ∂P = ∂O·Vᵀ out)."""
    model, shape = AttentionTangents(what, how), (1, 3, 16)
    a = archcalc.analyze(model, [shape], device="meta", backward=True)
    assert (a.totals.macs, a.totals.backward_macs) == step_macs(model, shape)
    assert not a.not_counted and not any("not counted" in n for n in a.notes)


def test_forward_mode_through_cross_attention_by_hand():
    """jvp of MultiheadAttention(16, 2 heads) along a query of 3 tokens over a learned memory of 4 (which carries no
    tangent): its own Q 768 + K 1,024 + V 1,024 + QKᵀ,AV 1*2*3*4*(8 + 8) 384 + out 768 = 3,968; the tangent: the
    query's projection, x'·Wᵀ and x·W'ᵀ (zeros) 2 x 768, none for the memory's; the scores' Q̇·Kᵀ and Q·K̇ᵀ (K̇ zeros)
    2 x 192; Ṗ·V and P·V̇ (V̇ zeros) 2 x 192; the out-projection's 2 x 768: 3,840; in all 7,808."""
    a = archcalc.analyze(AttentionTangents("cross", "jvp"), [(1, 3, 16)], device="meta")
    mha = next(r for r in a.records if r.type == "MultiheadAttention")
    assert mha.macs == 3968 + 2 * 768 + 4 * 192 + 2 * 768 == 7808
    assert mha.formulas["macs"].endswith("query'·Wᵀ 1*3*16*16 + query·W'ᵀ 1*3*16*16 + Q̇·Kᵀ (1*2*3*4)*8 + Q·K̇ᵀ "
                                         "(1*2*3*4)*8 + Ṗ·V (1*2*3*4)*8 + P·V̇ (1*2*3*4)*8 + out'·W_outᵀ 1*3*16*16 + "
                                         "out·W_out'ᵀ 1*3*16*16 = 3,840; in all 3,968 + 3,840 = 7,808")
    batched = archcalc.analyze(AttentionTangents("cross", "jacfwd"), [(1, 3, 16)], device="meta")
    assert "Q̇·Kᵀ (1*2*3*4)*8 x 48 + Q·K̇ᵀ (1*2*3*4)*8 + " in next(
        r for r in batched.records if r.type == "MultiheadAttention").formulas["macs"]


@pytest.mark.parametrize("how", ["jvp", "jacfwd", "hessian"])
@pytest.mark.parametrize("what", ["first", "last", "einsum", "einsum of four"])
def test_forward_mode_through_a_chain_of_products_counts_the_products_with_tangents(what, how):
    """multi_dot and einsums of three or four operands under forward-mode AD: a product of learned matrices without
    tangents computes none (x·B·C·D's B·C·D, multiplied first), one a side of which carries one computes both terms,
    each as many times as its side's tangent runs: equal to the aten count, forward and step (x·B·C·D's jvp read
    612 of 300, silently)."""
    model, shape = ChainTangents(what, how), (3, 8)
    a = archcalc.analyze(model, [shape], device="meta", backward=True)
    assert (a.totals.macs, a.totals.backward_macs) == step_macs(model, shape)
    assert not a.not_counted


def test_forward_mode_through_multi_dot_by_hand():
    """jvp of x·B·C·D (3x8, 8x6, 6x5, 5x2) along x: PyTorch's order is x·(B·(C·D)): C·D 6*5*2 = 60, B·(CD) 8*6*2 = 96,
    x·(BCD) 3*8*2 = 48, 204 in all; the tangent only of the last, x'·(BCD) and x·(BCD)' (zeros), 2 x 48: 300."""
    a = archcalc.analyze(ChainTangents("first", "jvp"), [(3, 8)], device="meta")
    row = next(r for r in a.records if r.type == "linalg_multi_dot")
    assert row.macs == 60 + 96 + 48 + 2 * 48 == 300
    assert row.formulas["macs"] == ("6*5*2 + 8*6*2 + 3*8*2 = 204 + tangents (forward-mode AD): (#1)' 3*8*2 + "
                                   "(#2#3#4)' 3*8*2 = 96; in all 204 + 96 = 300")


class EmptyCache(torch.nn.Module):
    """A decoder's cache as Hugging Face's DynamicCache starts it inside the forward, its keys an empty tensor made
    on the input's device, then the new keys appended, under jvp."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)

    def forward(self, x):
        def f(p):
            keys = torch.tensor([], dtype=p.dtype, device=p.device)
            return torch.cat([keys, self.fc(p).flatten()])

        return torch.func.jvp(f, (x,), (torch.ones_like(x),))[1]


def test_an_empty_tensor_made_on_the_meta_device_inside_a_transform():
    """torch.tensor([], device='meta') inside torch.func's jvp: PyTorch itself refuses it ("in-place operation
    (aten::detach_) that would mutate a captured Tensor"), where the CPU runs it; the analysis makes it on the CPU and
    moves it, and counts the linear layer and its tangent (2*8*8, x 2) as the CPU's run does."""
    with pytest.raises(RuntimeError, match="captured Tensor"):
        EmptyCache().to("meta")(torch.empty(2, 8, device="meta"))
    a = archcalc.analyze(EmptyCache(), [(2, 8)], device="meta")
    assert a.totals.macs == 3 * 2 * 8 * 8 == step_macs(EmptyCache(), (2, 8))[0]


@pytest.mark.parametrize("how", ["jvp", "jacfwd", "hvp"])
@pytest.mark.parametrize("which", ["bias", "0.bias", "2.weight", "0.weight"])
@pytest.mark.parametrize("conv", [False, True], ids=["mlp", "cnn"])
def test_forward_mode_over_some_parameters_batches_each_by_its_own_tangent(conv, which, how):
    """jvp, jacfwd and a Hessian-vector product in parameter space over some of the parameters (the biases, one
    layer's bias or weight), the rest held: a layer's weight whose tangent is zeros is multiplied once, though its
    bias carries jacfwd's basis (x·W'ᵀ was counted as many times as the bias's tangent is batched: an MLP's biases'
    jacfwd read 4,840 of 2,040, a CNN's 30,432 of 12,192, silently); a frozen weight's ∂W has no tangent (an MLP's
    biases' HVP was "not counted"). Equal to the aten count; but a convolution's ∂b alone under forward mode, for
    which PyTorch computes two ∂W-sized convolutions: "not counted" (it read 7,488 of 9,792, silently)."""
    model, shape = SubsetTangents(which, how, conv), (2, 1, 6, 6) if conv else (5, 4)
    a = archcalc.analyze(model, [shape], device="meta")
    if conv and how == "hvp" and which.endswith("bias"):
        assert any("∂(net.0)'s bias" in r.note for r in a.not_counted)
    else:
        assert a.totals.macs == step_macs(model, shape)[0] and not a.not_counted


@pytest.mark.parametrize("which", ["bias", "weight"])
@pytest.mark.parametrize("kind", ["gru", "attention"])
def test_forward_mode_over_a_recurrent_or_attention_layers_biases_alone_is_not_counted_never_short(kind, which):
    """A jvp in parameter space over a GRU's or a multi-head attention's weights is counted by its rule of its own
    (equal to the aten count); over its biases alone, the rest held, the rule (one figure for every weight) does not
    apply, and it is "not counted", where it read 3,240 MACs of 2,376 for the GRU, silently."""
    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.GRU(4, 6, batch_first=True) if kind == "gru" else \
                torch.nn.MultiheadAttention(4, 2, batch_first=True)

        def forward(self, x):
            params = {k: v.detach() for k, v in self.net.named_parameters()}
            chosen = {k: v for k, v in params.items() if which in k}
            held = {k: v for k, v in params.items() if k not in chosen}

            def loss(p):
                given = (x,) if kind == "gru" else (x, x, x)
                return torch.func.functional_call(self.net, {**held, **p}, given)[0].pow(2).sum()

            with torch.backends.mkldnn.flags(enabled=False), sdpa_kernel(SDPBackend.MATH):
                return torch.func.jvp(loss, (chosen,), ({k: torch.ones_like(v) for k, v in chosen.items()},))[1]

    model = Layer()
    a = archcalc.analyze(model, [(2, 3, 4)], device="meta")
    if which == "weight":
        assert a.totals.macs == step_macs(model, (2, 3, 4))[0] and not a.not_counted
    else:
        assert any("over some of its parameters only" in r.note for r in a.not_counted)
