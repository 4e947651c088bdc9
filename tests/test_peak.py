"""The CUDA peak of a training step, simulated on the meta device (training/peak.py): by hand on a small
network, against PyTorch's own memory tracker (torch.distributed._tools.mem_tracker) on whole networks, the
allocator's block and segment arithmetic, and, on a GPU, against torch.cuda.max_memory_allocated."""

import json

import pytest
import torch
from torch import nn

from archcalc.models.catalog import REGISTRY
from archcalc.models.registry import ModelEntry
from archcalc.training.peak import block, reserved_at_least, simulate


def two_layers():
    return nn.Sequential(nn.Linear(256, 512, bias=False), nn.ReLU(), nn.Linear(512, 128, bias=False))


HAND = ModelEntry("two_layers", "test", "tests.test_peak:two_layers", (256,), "", "")
W1, W2, X = 512 * 256 * 4, 128 * 512 * 4, 64 * 256 * 4  # 524,288, 262,144 and 65,536 bytes
Y, LOSS = 64 * 128 * 4, 512  # the output, kept by the caller, and the loss: a 4-byte scalar in a 512-byte block
H = 64 * 512 * 4  # the hidden map (before and after ReLU) and its gradient


def _terms(peak) -> dict:
    return {t.name: t.bytes for t in peak.terms if t.bytes}


def test_sgd_peaks_in_the_first_layers_backward_by_hand():
    """Linear 1's backward: ∂W1 = ∂h^T x has just been made (in flight, not yet in .grad), beside ∂W2 (in .grad),
    ∂h, the output, the loss and the loss's gradient; ReLU's saved output is already released."""
    p = simulate(HAND, None, 64, "sgd")
    assert p.phase == "backward" and p.op == "mm"
    assert _terms(p) == {"parameters": W1 + W2, "input": X, "gradients": W2, "in flight": W1 + H + Y + LOSS + LOSS}
    assert p.allocated == 1_803_264 and p.step == p.allocated - W1 - W2 - X


def test_momentum_and_adam_peak_in_the_first_step_when_their_state_is_made():
    momentum = simulate(HAND, None, 64, "momentum")  # the momentum buffers, clones of the gradients, being made
    assert momentum.phase == "optimizer step" and momentum.op == "clone"
    assert _terms(momentum) == {"parameters": W1 + W2, "input": X, "gradients": W1 + W2,
                                "in flight": W1 + W2 + Y + LOSS}
    adam = simulate(HAND, None, 64, "adam")  # exp_avg, exp_avg_sq, and foreach's sqrt(exp_avg_sq) of every tensor
    assert adam.phase == "optimizer step" and adam.op == "_foreach_sqrt"
    assert _terms(adam) == {"parameters": W1 + W2, "input": X, "gradients": W1 + W2,
                            "optimizer state": 2 * (W1 + W2), "in flight": W1 + W2 + Y + LOSS}
    assert adam.allocated == 4_030_976  # Adam's step counters are CPU tensors: no GPU memory


def test_the_allocators_blocks_and_segments():
    assert [block(n) for n in (1, 4, 512, 513, 1024, 65_537)] == [512, 512, 512, 1024, 1024, 66_048]
    assert reserved_at_least([512] * 10) == 2 * 2**20  # small blocks share one 2 MiB segment
    assert reserved_at_least([2**20 + 512] * 3) == 20 * 2**20  # 1-10 MiB blocks: 20 MiB segments
    assert reserved_at_least([11 * 2**20]) == 12 * 2**20  # a large block: its own segment, rounded to 2 MiB


@pytest.mark.parametrize("name,batch,optimizer", [("cnnet", 64, "adam"), ("vgg_base", 32, "momentum"),
                                                  ("resnet18", 4, "sgd"), ("densenet121", 2, "sgd")])
def test_the_peak_agrees_with_pytorchs_memory_tracker(name, batch, optimizer):
    tracker = pytest.importorskip("torch.distributed._tools.mem_tracker")
    from archcalc.analysis.engine import build, entry_shape
    from archcalc.training.peak import _optimizer

    entry = REGISTRY.get(name)
    ours = simulate(entry, None, batch, optimizer)
    model = build(entry, torch.device("meta"), torch.float32).train()
    opt = _optimizer(list(model.parameters()), optimizer)
    x = torch.empty(entry_shape(entry, None, batch), device="meta")
    mt = tracker.MemTracker()
    mt.track_external(model, opt)
    with mt:
        out = model(x)
        out.float().sum().backward()
        opt.step()
    theirs = mt.get_tracker_snapshot("peak")[torch.device("meta")]["Total"] + block(x.numel() * 4)
    assert ours.allocated == pytest.approx(theirs, rel=2e-3)  # (ours rounds each storage to 512 bytes)


def test_memory_on_cuda_says_the_simulated_peak_term_by_term(cli):
    run = cli("memory", "resnet18", "--batch", "8", "--device", "cuda", "-f", "json")
    assert run.code == 0
    data = json.loads(run.out)["cuda_peak"]
    assert sum(t["bytes"] for t in data["terms"].values()) == data["allocated_bytes"]
    assert data["allocated_bytes"] == simulate(REGISTRY.get("resnet18"), None, 8, "sgd").allocated
    assert data["reserved_at_least_bytes"] >= data["allocated_bytes"]
    text = cli("memory", "resnet18", "--batch", "8", "--device", "cuda").out
    assert "CUDA peak, simulated on the meta device" in text and "not modelled: cuDNN" in text


def test_fit_on_cuda_uses_the_simulated_peak(cli):
    run = cli("memory", "cnnet", "--fit", "64MiB", "--device", "cuda", "-f", "json")
    assert run.code == 0
    data = json.loads(run.out)
    batch = data["batch"]
    assert data["device"] == "cuda" and batch > 1
    entry = REGISTRY.get("cnnet")
    fits, above = (simulate(entry, None, b, "sgd").allocated for b in (batch, batch + 1))
    assert fits <= 64 * 2**20 < above


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("name,batch,optimizer", [("resnet18", 16, "adam"), ("densenet121", 8, "sgd")])
def test_the_simulated_peak_against_a_real_gpu(name, batch, optimizer):
    from archcalc.training.memory import measure_peak

    entry = REGISTRY.get(name)
    measured = measure_peak(entry, None, batch, optimizer, "float32", "cuda")["peak_bytes"]
    assert 0.9 <= measured / simulate(entry, None, batch, optimizer).step <= 1.1
