"""Whole models against independent counters: fvcore (real CPU tensors), torch.utils.flop_counter
(meta device) and torchinfo; parameters against sum(p.numel())."""

import logging

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch.utils.flop_counter import FlopCounterMode
from torchinfo import summary

from archcalc.analysis.engine import analyse, build
from archcalc.analysis.views import by_type, rows
from archcalc.models.catalog import REGISTRY

NAMES = REGISTRY.names()
# The CPU oracles build real weights and run them on this machine's two cores: the large ViTs (over 300 M
# parameters, up to 167 G MACs) are checked on the meta device by flop_counter and by torchvision's metadata
# (test_conventions) instead.
ON_CPU = [n for n in NAMES if n not in ("vit_l_16", "vit_l_32", "vit_h_14")]
# fvcore 0.1.5 does not support aten::scaled_dot_product_attention, which the ViTs' attention runs as: its MAC
# operators leave the attention out, as the fvcore convention says (test_conventions checks it on vit_b_32).
CNNS = [n for n in ON_CPU if REGISTRY.get(n).family != "vit"]
MAC_OPERATORS = ("conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum")


def _input(entry, batch, device):
    return torch.randn(batch, *entry.default_input, device=device) if device != "meta" else torch.empty(
        batch, *entry.default_input, device="meta")


@pytest.mark.parametrize("name", CNNS)
def test_macs_equal_fvcore_on_cpu(name):
    entry = REGISTRY.get(name)
    model = build(entry, torch.device("cpu"), torch.float32)
    logging.disable(logging.WARNING)
    try:
        counter = FlopCountAnalysis(model, _input(entry, 2, "cpu"))
        counter.unsupported_ops_warnings(False)
        counter.uncalled_modules_warnings(False)
        fvcore_macs = sum(v for k, v in counter.by_operator().items() if k in MAC_OPERATORS)
    finally:
        logging.disable(logging.NOTSET)
    assert analyse(entry, batch=2).totals.macs == fvcore_macs


@pytest.mark.parametrize("name", NAMES)
def test_flops_equal_torch_flop_counter_on_meta(name):
    entry = REGISTRY.get(name)
    model = build(entry, torch.device("meta"), torch.float32)
    with FlopCounterMode(display=False) as counter:
        model(_input(entry, 3, "meta"))
    assert analyse(entry, batch=3).totals.flops == counter.get_total_flops()


@pytest.mark.parametrize("name", ON_CPU)
def test_params_equal_sum_of_numel_and_torchinfo(name):
    entry = REGISTRY.get(name)
    model = build(entry, torch.device("cpu"), torch.float32)
    a = analyse(entry)
    assert a.totals.params == sum(p.numel() for p in model.parameters())
    info = summary(model, input_size=(1, *entry.default_input), device="cpu", verbose=0)
    assert a.totals.params == info.total_params
    assert a.totals.trainable_params == info.trainable_params


@pytest.mark.parametrize("name", NAMES)
def test_rows_add_up_to_the_totals_at_every_depth(name):
    a = analyse(REGISTRY.get(name), batch=2)
    ran = sum(r.params for r in a.records)
    assert ran == a.totals.params or any("did not run" in n for n in a.notes)
    for depth in (None, 1, 2):
        shown = rows(a, depth)
        assert sum(r.params for r in shown) == ran
        assert sum(r.macs or 0 for r in shown) == a.totals.macs
        assert sum(r.activation_bytes for r in shown) == a.totals.activation_bytes
    types = by_type(a)  # (archcalc flops --by type: every row in one group, so the groups add up too)
    assert sum(t.params for t in types) == ran and sum(t.macs for t in types) == a.totals.macs
    assert sum(t.elementwise for t in types) == a.totals.elementwise
    assert sorted(i for t in types for i in t.indices) == [r.index for r in rows(a)]


@pytest.mark.parametrize("name,kind", [("resnet50", "Conv2d"), ("vit_b_16", "MultiheadAttention")])
def test_a_types_share_equals_flop_counters_count_inside_its_modules(name, kind):
    """flop_counter's own count per module (get_flop_counts, by module path): ResNet-50's convolutions'
    (conv1, conv2, conv3, downsample.0; the stem's conv1), ViT-B/16's twelve attentions, projections included."""
    entry = REGISTRY.get(name)
    model = build(entry, torch.device("meta"), torch.float32)
    with FlopCounterMode(display=False) as counter:
        model(_input(entry, 2, "meta"))
    paths = {n for n, m in model.named_modules() if type(m).__name__ == kind}
    theirs = sum(sum(ops.values()) for path, ops in counter.get_flop_counts().items()
                 if path.partition(".")[2] in paths)
    group = next(t for t in by_type(analyse(entry, batch=2)) if t.type == kind)
    assert 2 * group.macs == theirs and group.calls == len(paths)


@pytest.mark.parametrize("name", ["cnnet", "vgg_skip_dense_ca", "lenet5"])
def test_real_cpu_run_gives_the_meta_numbers(name):
    entry = REGISTRY.get(name)
    meta, cpu = analyse(entry, batch=2), analyse(entry, batch=2, device="cpu")
    assert meta.totals == cpu.totals
    assert [r.output_shapes for r in meta.records] == [r.output_shapes for r in cpu.records]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("name", ["cnnet", "vgg_dense", "lenet5"])
def test_cuda_run_gives_the_meta_numbers(name):
    entry = REGISTRY.get(name)
    meta, gpu = analyse(entry, batch=4), analyse(entry, batch=4, device="cuda")
    assert gpu.device.startswith("cuda")
    assert meta.totals == gpu.totals
