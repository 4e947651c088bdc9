"""The CUDA peak of a training step, simulated on the meta device (training/peak.py): by hand on a small
network, against PyTorch's own memory tracker (torch.distributed._tools.mem_tracker) on whole networks, the
allocator's block and segment arithmetic, and, on a GPU, against torch.cuda.max_memory_allocated."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archcalc.errors import InputError
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


def test_sgd_has_no_state_so_both_steps_peak_alike():
    p = simulate(HAND, None, 64, "sgd")
    assert p.steps == (1_803_264, 1_803_264) and p.at_step == 1


def test_momentum_peaks_in_the_second_step_with_its_buffers_alive_through_the_backward():
    """Step 1 peaks as the momentum buffers are made (clones of the gradients, in flight); from step 2 on the
    buffers live through the forward and the backward, which then peaks as SGD's does, plus the buffers."""
    momentum = simulate(HAND, None, 64, "momentum")
    assert momentum.steps == (3 * (W1 + W2) + X + Y + LOSS, 1_803_264 + W1 + W2) == (2_458_112, 2_589_696)
    assert momentum.at_step == 2 and momentum.phase == "backward" and momentum.op == "mm"
    assert _terms(momentum) == {"parameters": W1 + W2, "input": X, "gradients": W2, "optimizer state": W1 + W2,
                                "in flight": W1 + H + Y + LOSS + LOSS}
    assert momentum.allocated == 2_589_696


def test_adam_peaks_in_its_first_step_as_its_moments_are_made():
    """exp_avg, exp_avg_sq, and foreach's sqrt(exp_avg_sq) of every tensor: 4,030,976 bytes in the optimizer
    step, the same in step 2; step 2's backward, with the moments alive, stays below (3,376,128)."""
    adam = simulate(HAND, None, 64, "adam")
    assert adam.phase == "optimizer step" and adam.op == "_foreach_sqrt" and adam.at_step == 1
    assert _terms(adam) == {"parameters": W1 + W2, "input": X, "gradients": W1 + W2,
                            "optimizer state": 2 * (W1 + W2), "in flight": W1 + W2 + Y + LOSS}
    assert adam.allocated == 4_030_976 == adam.steps[1] > 1_803_264 + 2 * (W1 + W2)  # step counters: on the CPU


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
        for _ in range(2):
            opt.zero_grad(set_to_none=True)
            out = model(x)
            out.float().sum().backward()
            opt.step()
            del out
            mt.reset_mod_stats()  # (its per-module records take one call each; the peak is kept)
    theirs = mt.get_tracker_snapshot("peak")[torch.device("meta")]["Total"] + block(x.numel() * 4)
    assert ours.allocated == pytest.approx(theirs, rel=2e-3)  # (ours rounds each storage to 512 bytes)


def test_memory_on_cuda_says_the_simulated_peak_term_by_term(cli):
    run = cli("memory", "resnet18", "--batch", "8", "--device", "cuda", "-f", "json")
    assert run.code == 0
    data = json.loads(run.out)["peak"]
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
    measured = measure_peak(entry, None, batch, optimizer, "float32", "cuda")
    simulated = simulate(entry, None, batch, optimizer)
    assert 0.9 <= measured["peak_bytes"] / simulated.step <= 1.1
    assert 0.9 <= measured["tensors"]["peak_bytes"] / simulated.allocated <= 1.1  # the real tensors, followed


def real_cpu_peak(entry, shape, optimizer, amp=None, channels_last=False, dtype=torch.float32, hooks=True):
    """Two real training steps on the CPU, the forward and the loss under torch.autocast("cpu", amp) when
    given, followed by the simulation's own tracker: the tensors the CPU's kernels make. ``shape``: one
    input's size with the batch, or the Inputs to give (token ids, several inputs); ``dtype``: the model's
    and its floating-point input's; ``hooks``: whether saved-tensor hooks tell the saved activations apart (not
    through torch.func, which refuses them)."""
    from archcalc.analysis.engine import build
    from archcalc.analysis.inputs import Inputs
    from archcalc.training.batch import made
    from archcalc.training.peak import _optimizer, follow, tracker

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    model = build(entry, cpu, dtype).train()
    x = made(shape if isinstance(shape, Inputs) else Inputs.of_shape(shape), cpu, dtype, channels_last)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = _optimizer(list(model.parameters()), optimizer, "cpu")
    live = tracker(model, x, opt, "cpu", frozenset({"cpu"}))
    follow(model, x, opt, live, lambda: torch.autocast("cpu", dtype=getattr(torch, amp or "bfloat16"),
                                                      enabled=amp is not None), hooks=hooks)
    return live.peak


@pytest.mark.parametrize("name,batch,optimizer,channels_last", [
    ("lenet5", 2, "momentum", False),  # (C3's connection table indexes with Python lists: 16 index tensors)
    ("vgg_base", 8, "adam", False), ("resnet18", 2, "momentum", False), ("vit_b_16", 1, "sgd", False),
    ("vgg_base", 8, "sgd", True), ("densenet121", 2, "adam", True)])
def test_the_meta_simulation_peaks_where_real_cpu_tensors_do(name, batch, optimizer, channels_last):
    """The same peak to the byte, so what the meta device's kernels return (sizes, views, in-place results,
    and in channels-last the layout of each output) is what runs."""
    entry = REGISTRY.get(name)
    assert real_cpu_peak(entry, (batch, *entry.default_input), optimizer, channels_last=channels_last) == \
        simulate(entry, None, batch, optimizer, device="cpu", channels_last=channels_last).allocated


def test_channels_last_needs_an_image_and_says_so(cli):
    with pytest.raises(InputError, match="needs a 4-d input"):
        simulate(HAND, None, 2, "sgd", channels_last=True)
    data = cli("memory", "resnet18", "--batch", "2", "--channels-last", "-f", "json").json()["peak"]
    assert data["channels_last"] and data["allocated_bytes"] == simulate(
        REGISTRY.get("resnet18"), None, 2, "sgd", device="cpu", channels_last=True).allocated


def _attention_kernels(device, dtype, d=64, mask=None, dropout=0.0):
    from torch.utils._python_dispatch import TorchDispatchMode

    from archcalc.training.fused import fused_attention

    class Ops(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            ops.append(func.__name__.split(".")[0])
            return func(*args, **(kwargs or {}))

    ops = []
    q = torch.empty(2, 12, 197, d, device="meta", dtype=dtype, requires_grad=True)
    with fused_attention(device), Ops():
        torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=mask, dropout_p=dropout).sum().backward()
    return [op for op in ops if "attention" in op or op in ("bmm", "_softmax", "_safe_softmax")]


def test_attention_runs_the_kernel_the_device_would():
    """On the meta device F.scaled_dot_product_attention takes the math path (bmm, softmax, bmm: the 197 x 197
    matrix saved); the simulation calls the fused kernel the device picks, whose backward is fused too."""
    assert _attention_kernels("cpu", torch.float32) == ["_scaled_dot_product_flash_attention_for_cpu",
                                                        "_scaled_dot_product_flash_attention_for_cpu_backward"]
    mask = torch.zeros(197, 197, device="meta")
    assert "bmm" in _attention_kernels("cpu", torch.float32, mask=mask, dropout=0.1)  # PyTorch's CPU choice: math
    assert _attention_kernels("cuda", torch.float32)[0] == "_scaled_dot_product_efficient_attention"
    assert _attention_kernels("cuda", torch.float16)[0] == "_scaled_dot_product_flash_attention"
    assert _attention_kernels("cuda", torch.float16, mask=mask.half())[0] == "_scaled_dot_product_efficient_attention"
    # a head size of 60: flash attention on Q, K and V padded to 64 (attention.cpp's pad_last_dim<8>); in float32,
    # the memory-efficient kernel (60 = 4 x 15); 62: no fused kernel's alignment, the math path
    assert _attention_kernels("cuda", torch.float16, d=60)[0] == "_scaled_dot_product_flash_attention"
    assert _attention_kernels("cuda", torch.float32, d=60)[0] == "_scaled_dot_product_efficient_attention"
    assert "bmm" in _attention_kernels("cuda", torch.float32, d=62)
    from archcalc.training.fused import _Chooser

    q = torch.empty(2, 12, 197, 60, device="meta", dtype=torch.float16)
    out = _Chooser._cuda(q, q, q, None, 0.0, False, None)
    assert out.shape == q.shape and out.stride()[-2] == 64  # (a slice of the padded output: its storage)
    assert torch.nn.functional.scaled_dot_product_attention.__name__ == "scaled_dot_product_attention"  # restored


def test_the_probe_follows_the_real_tensors_of_its_measured_steps():
    """--tensors (always on CUDA): the measured steps are followed by the simulation's tracker too, so the
    real tensors' peak, term by term, stands beside the allocator's; on the CPU it is the simulated peak."""
    import subprocess
    import sys

    from archcalc.output.memory_report import _tensor_line

    done = subprocess.run([sys.executable, "-m", "archcalc.training.probe", "cnnet", "16", "adam", "float32", "cpu",
                           "--tensors"], capture_output=True, text=True, check=True)
    measured = json.loads(done.stdout)
    simulated = simulate(REGISTRY.get("cnnet"), None, 16, "adam", device="cpu")
    assert measured["tensors"]["peak_bytes"] == simulated.allocated
    assert sum(measured["tensors"]["terms"].values()) == simulated.allocated
    assert "tensors measured/simulated 1.000" in _tensor_line(measured, simulated)


class LearnedBiasAttention(torch.nn.Module):
    """Attention with a learned position bias given as attn_mask (Swin's relative position bias, as Hugging
    Face's Swin passes it to scaled_dot_product_attention): a mask that needs a gradient, which the CPU's
    flash kernel cannot differentiate, so PyTorch takes the math path."""

    def __init__(self, width=32, heads=4, tokens=10):
        super().__init__()
        self.heads = heads
        self.qkv, self.out = torch.nn.Linear(width, 3 * width), torch.nn.Linear(width, width)
        self.bias = torch.nn.Parameter(torch.zeros(1, heads, tokens, tokens))

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=self.bias)
        return self.out(y.transpose(1, 2).reshape(n, t, c))


def test_a_mask_that_needs_a_gradient_takes_the_math_path_as_on_the_cpu():
    from archcalc.models.user import module_entry

    entry = module_entry(LearnedBiasAttention(), (10, 32))
    assert simulate(entry, None, 4, "adam", device="cpu").allocated == real_cpu_peak(entry, (4, 10, 32), "adam")


class ChunkedAttention(torch.nn.Module):
    """Q, K and V cut from one 1x1 convolution by a reshape, a permute and a chunk (timm's LowFormer): each has
    stride L along the head dimension, which no fused kernel takes (check_last_dim_stride_equals_1_dense), so
    the CPU and a GPU take the math path, which keeps the L x L attention matrix."""

    def __init__(self, heads=2, head=16):
        super().__init__()
        self.heads, self.head = heads, head
        self.project = torch.nn.Conv2d(3, 3 * heads * head, 1)

    def forward(self, x):
        y = self.project(x)
        n, _, h, w = y.shape
        q, k, v = y.reshape(n, self.heads, 3 * self.head, h * w).permute(0, 1, 3, 2).chunk(3, dim=3)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def test_q_k_and_v_without_stride_1_take_the_math_path_as_on_the_cpu():
    from archcalc.models.user import module_entry

    entry = module_entry(ChunkedAttention(), (3, 14, 14))
    simulated = simulate(entry, None, 2, "adam", device="cpu").allocated
    assert simulated == real_cpu_peak(entry, (2, 3, 14, 14), "adam")
    contiguous = torch.empty(2, 2, 196, 16, device="meta")
    cut = torch.empty(2, 2, 48, 196, device="meta").permute(0, 1, 3, 2)[..., :16]
    from archcalc.training.fused import _Chooser

    assert _Chooser._cpu(contiguous, contiguous, contiguous, None, 0.0, False, None) is not None
    assert _Chooser._cpu(cut, cut, cut, None, 0.0, False, None) is None  # (the math path)
    assert _Chooser._cuda(contiguous.half(), contiguous.half(), contiguous.half(), None, 0.0, False, None) is not None
    assert _Chooser._cuda(cut.half(), cut.half(), cut.half(), None, 0.0, False, None) is None
    assert _Chooser._cuda(cut, cut, cut, None, 0.0, False, None) is None  # (float32: nor the efficient kernel)


class GroupedQueryAttention(torch.nn.Module):
    """Keys and values of 2 heads for queries of 4 (grouped-query attention, as Hugging Face's Llama, Qwen and
    Gemma pass them to SDPA with enable_gqa=True), head size 64 > the width: the CPU's flash kernel takes them
    as they are, where the math path would repeat K and V to 4 heads and keep the attention matrix."""

    def __init__(self, width=32, head=64):
        super().__init__()
        self.q, self.kv, self.out = (torch.nn.Linear(width, 4 * head), torch.nn.Linear(width, 4 * head),
                                     torch.nn.Linear(4 * head, width))

    def forward(self, x):
        n, t, _ = x.shape
        q = self.q(x).view(n, t, 4, -1).transpose(1, 2)
        k, v = self.kv(x).view(n, t, 2, 2, -1).permute(2, 0, 3, 1, 4)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.out(y.transpose(1, 2).reshape(n, t, -1))


def test_grouped_query_attention_runs_the_cpus_flash_kernel():
    from archcalc.models.user import module_entry

    entry = module_entry(GroupedQueryAttention(), (48, 32))
    assert simulate(entry, None, 2, "adam", device="cpu").allocated == real_cpu_peak(entry, (2, 48, 32), "adam")


class TokensBackToImage(torch.nn.Module):
    """A feature map read as tokens and written back (diffusers' attention blocks): the map comes back
    channels-last, which the CPU's GroupNorm and convolutions keep and the meta device's do not; then a
    ``.contiguous()``, which copies on the CPU. And a timestep, one number a sample."""

    def __init__(self):
        super().__init__()
        self.conv0, self.proj = torch.nn.Conv2d(4, 16, 3, padding=1), torch.nn.Linear(16, 16)
        self.norm, self.conv1 = torch.nn.GroupNorm(4, 16), torch.nn.Conv2d(16, 16, 3, padding=1)
        self.time, self.shortcut = torch.nn.Embedding(10, 16), torch.nn.Conv2d(16, 8, 1)

    def forward(self, x, t):
        h = self.conv0(x)
        n, c, height, width = h.shape
        tokens = self.proj(h.view(n, c, height * width).transpose(1, 2))
        h = tokens.transpose(1, 2).reshape(n, c, height, width) + self.time(t)[:, :, None, None]
        return self.shortcut(self.conv1(self.norm(h)).contiguous())


def test_the_cpus_layouts_are_the_simulations():
    from archcalc.analysis.engine import entry_inputs
    from archcalc.models.user import module_entry

    entry = module_entry(TokensBackToImage(), [(4, 16, 16), ()])
    inputs = entry_inputs(entry, None, 2, ["float32", "int64:10"])
    assert inputs.shapes == ((2, 4, 16, 16), (2,))
    assert simulate(entry, None, 2, "adam", device="cpu", input_dtypes=["float32", "int64:10"]).allocated == \
        real_cpu_peak(entry, inputs, "adam")


def test_the_suggested_memory_format_is_pytorchs():
    import random

    prims = pytest.importorskip("torch._prims_common")
    from archcalc.training.layout import suggested_format

    rng = random.Random(0)
    for _ in range(500):
        shape = [rng.choice([1, 2, 3, 5]) for _ in range(rng.choice([3, 4, 5]))]
        t = torch.empty(shape).permute(rng.sample(range(len(shape)), len(shape)))
        assert suggested_format(t) == prims.suggest_memory_format(t), (shape, t.stride())


def test_layer_norms_gradient_is_contiguous_as_on_the_cpu():
    """LayerNorm over tokens read off a map (flatten(2).transpose(1, 2)), as PVT's patch embeddings do: the
    CPU's backward gives ∂x contiguous, the meta kernel in the input's transposed layout, which a later view
    copies (timm's PVT-v2-b0 was 250,880 bytes high); under layouts() the meta device gives the CPU's."""
    from archcalc.training.layout import layouts

    def dx(device):
        x = torch.empty(2, 32, 49, device=device).transpose(1, 2)
        weight, bias = torch.ones(32, device=device), torch.zeros(32, device=device)
        _, mean, rstd = torch.native_layer_norm(x, [32], weight, bias, 1e-5)
        return torch.ops.aten.native_layer_norm_backward(x, x, [32], mean, rstd, weight, bias,
                                                         [True, True, True])[0]

    with layouts("cpu"):
        simulated = dx("meta")
    assert simulated.stride() == dx("cpu").stride() == (49 * 32, 32, 1)


def _layout(t: torch.Tensor) -> tuple:
    """The strides of the sizes above 1: a size-1 dimension's stride places nothing (a 1x1 kernel's ∂W is (8, 1,
    8, 8) or (8, 1, 1, 1), by the CPU's thread count, the same bytes)."""
    return tuple(stride for stride, size in zip(t.stride(), t.shape) if size != 1)


def test_the_gradients_of_convolution_and_batch_norm_take_the_cpus_layouts():
    """Every layout of input, weight and ∂y: under layouts() the meta device's ∂x and ∂W of a convolution (by
    the forward's rule; PyTorch 2.11's meta kernel followed ∂y's layout, timm's EfficientFormer-L1 read 3.6 MB
    high there) and ∂x of batch norm (the input's layout; the meta kernel follows ∂y's) are the CPU's kernels'."""
    import itertools

    from archcalc.training.layout import layouts

    def laid(t, last):
        return t.contiguous(memory_format=torch.channels_last if last else torch.contiguous_format)

    def strides(device, kernel, groups, x_last, w_last, g_last):
        x = laid(torch.empty(2, 8, 9, 9, device=device), x_last)
        w = laid(torch.empty(16, 8 // groups, kernel, kernel, device=device), w_last)
        y = torch.ops.aten.convolution(x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], groups)
        dx, dw, _ = torch.ops.aten.convolution_backward(laid(torch.ones_like(y), g_last), x, w, [16], [1, 1], [1, 1],
                                                        [1, 1], False, [0, 0], groups, [True, True, True])
        ones, zeros = torch.ones(16, device=device), torch.zeros(16, device=device)
        _, mean, invstd = torch.ops.aten.native_batch_norm(y, ones, zeros, zeros, ones, True, 0.1, 1e-5)
        dbn = torch.ops.aten.native_batch_norm_backward(laid(torch.ones_like(y), g_last), y, ones, zeros, ones,
                                                        mean, invstd, True, 1e-5, [True, True, True])[0]
        return tuple(_layout(t) for t in (dx, dw, dbn))

    for case in itertools.product((1, 3), (1, 4), (False, True), (False, True), (False, True)):
        with layouts("cpu"):
            simulated = strides("meta", *case)
        assert simulated == strides("cpu", *case), case


class TokensBatchNormed(torch.nn.Module):
    """PatchTST's BatchNorm over tokens: BatchNorm1d on a transpose, transposed back, then reshaped. The CPU's
    kernel gives the norm's output contiguous (the reshape then copies, and both are kept), the meta kernel in
    its input's strides (the reshape a view): the simulation was 6% low on PatchTST."""

    def __init__(self):
        super().__init__()
        self.proj, self.norm = torch.nn.Linear(8, 32), torch.nn.BatchNorm1d(32)
        self.head, self.skip = torch.nn.Linear(32, 4), torch.nn.Linear(32, 4)

    def forward(self, x):  # x: (B, L, 8)
        h = self.norm(self.proj(x).transpose(1, 2)).transpose(1, 2)
        return self.head(h.reshape(-1, 32)) + self.skip(h).reshape(-1, 4)  # (both keep h for their ∂W)


def test_batch_norms_output_takes_the_cpus_layout():
    from archcalc.analysis.engine import entry_inputs
    from archcalc.models.user import module_entry
    from archcalc.training.layout import layouts

    entry = module_entry(TokensBatchNormed(), (16, 8))
    inputs = entry_inputs(entry, None, 6, None)
    assert simulate(entry, None, 6, "adam", device="cpu").allocated == real_cpu_peak(entry, inputs, "adam")

    def strides(device, order, train):
        x = torch.empty(2, 5, 7, 3, device=device).permute(*order)
        ones, zeros = torch.ones(x.shape[1], device=device), torch.zeros(x.shape[1], device=device)
        return torch.ops.aten.native_batch_norm(x, ones, zeros, zeros, ones, train, 0.1, 1e-5)[0].stride()

    for order in ((0, 1, 2, 3), (0, 3, 1, 2), (0, 2, 1, 3), (1, 0, 3, 2)):
        for train in (True, False):
            with layouts("cpu"):
                simulated = strides("meta", order, train)
            assert simulated == strides("cpu", order, train), (order, train)
    assert strides("meta", (0, 2, 1, 3), True) != strides("cpu", (0, 2, 1, 3), True)  # (what layouts() mends)


def test_a_meta_kernel_that_refuses_float32_runs_the_steps_on_the_cpu():
    """torch._grouped_mm's meta kernel takes bfloat16 only (a mixture of experts in float32): the steps run on
    the CPU, as for a forward that reads values, and say why; CUDA's peak is refused with the reason."""
    from archcalc.models.user import module_entry
    from tests.test_engine import Experts

    entry = module_entry(nn.Sequential(Experts(), nn.Tanh()), (8,))  # (the CPU's backward takes no expanded ∂y)
    peak = simulate(entry, None, 12, "adam", device="cpu")
    assert peak.allocated == real_cpu_peak(entry, (12, 8), "adam") and peak.real
    assert "calls torch._grouped_mm in float32, which the meta device's kernel refuses" in peak.notes[0]
    with pytest.raises(InputError, match="so its CUDA peak cannot be simulated; its CPU peak can: device='cpu'"):
        simulate(entry, None, 12, "adam", device="cuda")


def test_a_cpu_scalar_value_in_masked_fill_takes_no_device_memory():
    """masked_fill with a CPU 0-dim value (refused by the meta kernel): the steps run on the meta device, the
    value as a number, and the peak is the CPU's own."""
    from archcalc.models.user import module_entry
    from tests.test_engine import ScalarMask

    entry = module_entry(ScalarMask(), (4, 8))
    peak = simulate(entry, None, 2, "adam", device="cpu")
    assert peak.allocated == real_cpu_peak(entry, (2, 4, 8), "adam") and not peak.notes


class Norms(nn.Module):
    """A convolution, a BatchNorm, a LayerNorm over its tokens and one without affine parameters (Data2Vec-
    Audio's positional convolution has that one)."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 16, 3, padding=1, groups=1), nn.BatchNorm2d(16)
        self.ln, self.bare = nn.LayerNorm(16), nn.LayerNorm(16, elementwise_affine=False)
        self.mix = nn.Conv1d(16, 16, 5, padding=2, groups=4)

    def forward(self, x):
        tokens = self.bn(self.conv(x)).flatten(2).transpose(1, 2)
        tokens = self.ln(tokens)
        return self.bare(self.mix(tokens.transpose(1, 2)).transpose(1, 2)).relu()


@pytest.mark.parametrize("dtype,amp", [("bfloat16", None), ("float16", None), ("float32", "bfloat16")])
def test_norm_statistics_in_the_dtype_the_cpu_keeps_them(dtype, amp):
    """The CPU's layer_norm and batch_norm keep their saved mean and 1/σ in a bfloat16 or float16 input's own
    dtype unless their parameters are float32; the meta kernels (and CUDA's) in float32: a bfloat16 model, or
    a LayerNorm without parameters under autocast, was high by the statistics' size."""
    from archcalc.models.user import module_entry

    entry = module_entry(Norms(), (3, 12, 12))
    peak = simulate(entry, None, 4, "adam", dtype=dtype, device="cpu", amp=amp)
    assert peak.allocated == real_cpu_peak(entry, (4, 3, 12, 12), "adam", amp, dtype=getattr(torch, dtype))


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_low_precision_step_is_refused_where_the_cpu_has_no_kernel(dtype):
    """cpu_kernels.lacks() says what the installed PyTorch's CPU refuses, checked here by other calls than its
    own (on 2.13 all four refuse both dtypes but polar float16, which 2.14 adds); and a step reaching one
    (LocalResponseNorm's avg_pool3d) is refused, as the real step fails, and simulated under autocast."""
    from archcalc.models.user import module_entry
    from archcalc.training.cpu_kernels import MISSING, lacks

    x = torch.rand(1, 2, 4, 4, 4, dtype=dtype)
    calls = {"avg_pool3d": lambda: F.avg_pool3d(x, 2), "_cdist_forward": lambda: torch.cdist(x[0, 0], x[0, 0]),
             "_ctc_loss": lambda: F.ctc_loss(torch.randn(5, 1, 4, dtype=dtype).log_softmax(2), torch.tensor([[1, 2]]),
                                             [5], [2]),
             "polar": lambda: torch.polar(x, x)}
    assert sorted(calls) == sorted(op.__name__ for op in MISSING)
    for packet in MISSING:
        try:
            calls[packet.__name__]()
            refused = False
        except (RuntimeError, NotImplementedError):
            refused = True
        assert lacks(packet, dtype) == refused, packet
    assert lacks(torch.ops.aten.avg_pool3d, dtype)  # (on every PyTorch archcalc supports)
    entry = module_entry(nn.Sequential(nn.Conv2d(3, 8, 3), nn.LocalResponseNorm(2)), (3, 8, 8))
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(InputError, match=f"the CPU has no {name} kernel for avg_pool3d"):
        simulate(entry, None, 2, "sgd", dtype=name, device="cpu")
    with pytest.raises(RuntimeError, match="not implemented"):
        real_cpu_peak(entry, (2, 3, 8, 8), "sgd", dtype=dtype)
    assert simulate(entry, None, 2, "sgd", dtype=name, device="cuda").allocated > 0  # (CUDA has them)
    assert simulate(entry, None, 2, "sgd", device="cpu", amp="bfloat16").allocated == \
        real_cpu_peak(entry, (2, 3, 8, 8), "sgd", "bfloat16")


class LayerDrop(nn.Module):
    """Hugging Face's LayerDrop (wav2vec 2.0, HuBERT): in train mode each layer skipped when a draw falls below
    ``p``; and torchaudio's, kept when torch.rand(1) exceeds it."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.layers = nn.ModuleList(nn.Sequential(nn.Linear(32, 32), nn.GELU()) for _ in range(6))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            if i % 2 and self.training and torch.rand([]) < self.p:
                continue
            if not i % 2 and self.training and not torch.rand(1).item() > self.p:
                continue
            x = layer(x)
        return x


def test_a_step_with_layerdrop_peaks_as_the_step_that_keeps_every_layer():
    """Two steps drawn at random gave a peak that changed from run to run (down to half of it with 6 layers):
    the draws are 1.0 while the steps are simulated, every layer runs, and the answer is the same each time."""
    from archcalc.models.user import module_entry

    dropping, keeping = module_entry(LayerDrop(0.7), (16, 32)), module_entry(LayerDrop(0.0), (16, 32))
    runs = [simulate(dropping, None, 4, "adam", device="cpu") for _ in range(3)]
    full = real_cpu_peak(keeping, (4, 16, 32), "adam")
    assert [r.allocated for r in runs] == [full] * 3
    assert "6 single-number random draws a step (torch.rand, as LayerDrop draws whether to skip a layer) taken " \
           "as 1.0, which keeps every layer" in runs[0].notes[0]
    before = torch.random.get_rng_state()
    simulate(dropping, None, 4, "adam", device="cpu")
    assert torch.equal(before, torch.random.get_rng_state())  # (the caller's generator left as it was)


class Checkpointed(nn.Module):
    """Blocks under torch.utils.checkpoint (timm's set_grad_checkpointing, Hugging Face's
    gradient_checkpointing_enable): their activations are not kept but made again in the backward."""

    def __init__(self, reentrant: bool | None):
        super().__init__()
        self.reentrant = reentrant
        self.embed = nn.Linear(64, 64)  # (the reentrant form passes no gradient to an input that needs none)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 64)) for _ in range(4))

    def forward(self, x):
        x = self.embed(x)
        for block in self.blocks:
            x = x + (block(x) if self.reentrant is None else
                     torch.utils.checkpoint.checkpoint(block, x, use_reentrant=self.reentrant))
        return x


def test_gradient_checkpointing_peaks_where_the_real_tensors_do():
    """Both forms: the simulation runs autograd's own recomputation on the meta device, so its peak is the real
    one, and below the peak without checkpointing (timm's ViT-Tiny at batch 2: 130,939,584 -> 97,135,040 bytes, equal)."""
    import torch.utils.checkpoint  # noqa: F401  (torch.utils.checkpoint.checkpoint)
    from archcalc.models.user import module_entry

    plain = simulate(module_entry(Checkpointed(None), (32, 64)), None, 8, "adam", device="cpu").allocated
    for reentrant in (True, False):
        entry = module_entry(Checkpointed(reentrant), (32, 64))
        peak = simulate(entry, None, 8, "adam", device="cpu").allocated
        assert peak == real_cpu_peak(entry, (8, 32, 64), "adam") < plain


@pytest.mark.parametrize("net", ["vmap(grad(u))", "vmap(hessian(u))", "laplacian", "hessian-vector product"])
def test_a_step_through_torch_func_is_simulated_without_saved_tensor_hooks(net):
    """torch.func's grad refuses the saved-tensor hooks that tell the saved activations apart (the step was refused):
    followed without them, the simulated peak equals the real CPU tensors' to the byte, the saved activations read
    as what is alive when the forward ends, and the report says so."""
    from archcalc.models.user import module_entry
    from archcalc.training.memory import estimate
    from archcalc.training.peak import WITHOUT_HOOKS
    from tests.networks import ForwardOverReverse, FunctionalPINN, NestedPINN

    model = {"vmap(grad(u))": lambda: FunctionalPINN("grad"), "vmap(hessian(u))": lambda: FunctionalPINN("hessian"),
             "laplacian": lambda: NestedPINN("laplacian"),
             "hessian-vector product": lambda: ForwardOverReverse("parameters")}[net]
    torch.manual_seed(0)
    entry = module_entry(model(), (2,))
    for optimizer in ("sgd", "adam"):
        peak = simulate(entry, None, 10, optimizer, device="cpu")
        assert peak.allocated == real_cpu_peak(entry, (10, 2), optimizer, hooks=False)
        assert WITHOUT_HOOKS in peak.notes
        terms = {t.name: t.bytes for t in peak.terms}
        assert terms["saved activations"] > 0 and terms["in flight"] > 0
    e = estimate(entry, None, 10, "adam")
    assert [layer.name for layer in e.layers] == ["(the forward, through torch.func: by layer not told)"]
    assert e.activations_bytes > 0 and e.peak.allocated == peak.allocated


_PINN = '''import torch
from torch import func, nn


class PINN(nn.Module):
    archcalc_input = (2,)

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))

    def forward(self, x):
        u = lambda p: self.net(p).squeeze(-1)
        return u(x), func.vmap(lambda p: func.hessian(u)(p).diagonal().sum())(x)
'''


def test_the_probe_and_the_command_follow_a_step_through_torch_func(tmp_path, cli):
    """A PINN whose forward takes its Laplacian by torch.func.hessian: the probe finds, on its warm-up step, that
    the forward refuses saved-tensor hooks and follows its measured steps without them (their real tensors' peak is
    the simulated one); `archcalc memory` reports it, the saved activations on one row, saying why."""
    import subprocess
    import sys

    from archcalc.models.user import lookup

    path = tmp_path / "pinn.py"
    path.write_text(_PINN)
    done = subprocess.run([sys.executable, "-m", "archcalc.training.probe", f"{path}:PINN", "16", "adam", "float32",
                           "cpu", "--tensors"], capture_output=True, text=True, check=True)
    simulated = simulate(lookup(f"{path}:PINN"), None, 16, "adam", device="cpu")
    assert json.loads(done.stdout)["tensors"]["peak_bytes"] == simulated.allocated
    run = cli("memory", f"{path}:PINN", "--batch", "16", "--optimizer", "adam")
    assert run.code == 0 and "(the forward, through torch.func: by layer not told)" in run.out
    assert "refuses the saved-tensor hooks" in " ".join(run.out.split())
