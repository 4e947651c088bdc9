"""torch.func's transforms in a forward (archcalc/analysis/transforms.py): a row made under torch.vmap counts every
sample's work, one under forward-mode AD adds its tangent's products, against flop_counter's formulas over every aten
kernel that runs (tests/aten_flops.py) and hand arithmetic."""

import pytest
import torch

import archcalc
from tests.aten_flops import AtenMacs
from tests.networks import Ensemble, FunctionalPINN

SHAPE = (10, 2)


def _aten(model) -> int:
    torch.manual_seed(0)
    with AtenMacs() as counter:
        model(torch.randn(SHAPE))
    return counter.macs


@pytest.mark.parametrize("how", ["grad", "jacrev", "jacfwd", "jvp", "dual"])
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


@pytest.mark.parametrize("how,why", [
    ("hessian", "torch.func.hessian's forward over reverse"),
    ("grad of grad", "another level of torch.func.grad")])
def test_what_has_no_formula_is_not_counted_never_short(how, why):
    a = archcalc.analyze(FunctionalPINN(how), [SHAPE], device="meta")
    assert a.not_counted and why in a.not_counted[0].note
    assert any(n.startswith("not counted:") for n in a.notes)
