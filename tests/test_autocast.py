"""Mixed precision in the simulated training step (training/autocast.py): against PyTorch's real autocast on
real CPU tensors, byte for byte; the CUDA policy against the installed PyTorch's own header; by hand on a
small network; and the refusals where autocast is not simulated."""

import re
from functools import partial
from pathlib import Path

import pytest
import torch

from archcalc.analysis.engine import build
from archcalc.errors import ArchcalcError
from archcalc.models.catalog import REGISTRY
from archcalc.models.registry import ModelEntry
from archcalc.training.autocast import CUDA
from archcalc.training.peak import simulate
from tests.networks import NETWORKS
from tests.test_peak import HAND, LOSS, W1, W2, X, real_cpu_peak


SMALL = {"tiny_vit": "TinyViT", "sdpa_attention": "SDPAttention", "einsum_attention": "EinsumAttention",
         "swin_stage": "SwinStage", "convnext_block": "ConvNeXtBlock", "unet_block": "UNetBlock",
         "mha_weights": "MHABlock", "functional_mha": "FunctionalMHA"}


@pytest.mark.parametrize("amp", [None, "bfloat16"])
@pytest.mark.parametrize("name", SMALL)
def test_the_simulation_holds_what_real_cpu_autocast_holds(name, amp):
    """Attention (SDPA, multi-head, einsum), windows, LayerNorm, GroupNorm, depthwise convs: the same peak to
    the byte as PyTorch's real autocast, whose casts, cached weight copies and float32 operations the
    simulation makes itself on the meta device."""
    shape = NETWORKS[name][1]
    entry = ModelEntry(name, "test", f"tests.networks:{SMALL[name]}", shape[1:], "", "")
    assert simulate(entry, None, shape[0], "adam", device="cpu", amp=amp).allocated == \
        real_cpu_peak(entry, shape, "adam", amp)


@pytest.mark.parametrize("name,batch,optimizer", [("cnnet", 8, "adam"), ("resnet18", 1, "momentum")])
def test_whole_networks_under_real_cpu_autocast(name, batch, optimizer):
    entry = REGISTRY.get(name)
    shape = (batch, *entry.default_input)
    simulated = simulate(entry, None, batch, optimizer, device="cpu", amp="bfloat16")
    assert simulated.allocated == real_cpu_peak(entry, shape, optimizer, "bfloat16")
    assert simulated.allocated < simulate(entry, None, batch, optimizer, device="cpu").allocated


class PatchHead(torch.nn.Module):
    """ConvNeXt's (Hugging Face's) ends: a patchifying convolution with a bias, its output cast up, pooled, a
    LayerNorm and the classifier."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 768, 32, stride=32)
        self.norm, self.classifier = torch.nn.LayerNorm(768), torch.nn.Linear(768, 1000)

    def forward(self, x):
        return self.classifier(self.norm(self.conv(x).float().mean([-2, -1])))


def test_a_kernels_arguments_are_cast_last_first_as_pytorch_does():
    """PyTorch casts a convolution's bias before its weight (GCC evaluates the C++ argument list right to left),
    so the weight's gradient is cast up first in backward while the bias's waits in bfloat16: at the peak, one
    768-float gradient in bfloat16 (1,536 bytes), not in float32 (the simulation was 1,536 bytes high; all of
    Hugging Face's ConvNeXt, 299,520 bytes low)."""
    from archcalc.models.user import module_entry

    entry = module_entry(PatchHead(), (3, 224, 224))
    assert simulate(entry, None, 2, "sgd", device="cpu", amp="bfloat16").allocated == \
        real_cpu_peak(entry, (2, 3, 224, 224), "sgd", "bfloat16")


def test_cuda_float16_by_hand():
    """Two bias-free linear layers, batch 64, SGD. The peak is in the backward, where autocast's cast of W1
    (ToCopyBackward) turns W1's float16 gradient into float32: both are alive, beside W2's float32 gradient,
    the float16 output (64*128*2) and the loss with its gradient. Higher than float32's 1,803,264: in so small
    a network the weights' copies outweigh the halved activations."""
    p = simulate(HAND, None, 64, "sgd", amp="float16")
    assert (p.phase, p.op) == ("backward", "_to_copy")
    terms = {t.name: t.bytes for t in p.terms if t.bytes}
    assert terms == {"parameters": W1 + W2, "input": X, "gradients": W2,
                     "in flight": W1 + W1 // 2 + 64 * 128 * 2 + LOSS + LOSS}
    assert p.allocated == 1_917_952


def test_autocast_keeps_the_float16_copies_of_the_weights_it_saves_for_backward():
    """VGG-16, batch 1: the peak is in the classifier's backward (fc1's float16 gradient made float32), when
    the float16 copies of the 13 convolutions' weights, saved for their input gradients, are still alive: a
    term of their own, 2 bytes a weight. (Their biases' copies, not saved, went with the autocast region.)"""
    from archcalc.training.peak import block

    p = simulate(REGISTRY.get("vgg16"), None, 1, "sgd", amp="float16")
    model = build(REGISTRY.get("vgg16"), torch.device("meta"), torch.float32)
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    copies = next(t for t in p.terms if t.name == "autocast copies")
    assert (p.phase, p.op) == ("backward", "_to_copy")
    assert copies.tensors == len(convs) == 13 and sum(w.numel() for w in convs) == 14_710_464
    assert copies.bytes == sum(block(w.numel() * 2) for w in convs) == 29_421_056


def test_the_cuda_policy_is_the_installed_pytorchs():
    header = Path(torch.__file__).parent / "include" / "ATen" / "autocast_mode.h"
    if not header.exists():
        pytest.skip("this PyTorch ships no C++ headers")
    text = header.read_text()

    def names(macro):
        body = re.search(r"#define " + macro + r"\(_\)(.*?)\n\n", text, re.S).group(1)
        return set(re.findall(r"_\((\w+)", body))

    assert names("AT_FORALL_LOWER_PRECISION_FP") | {"cudnn_convolution", "cudnn_convolution_transpose"} == \
        CUDA["lower"]
    assert names("AT_FORALL_FP32") == CUDA["fp32"]
    assert names("AT_FORALL_FP32_SET_OPT_DTYPE") == CUDA["set dtype"]
    assert names("AT_FORALL_PROMOTE") == CUDA["promote"]


def test_where_autocast_is_not_simulated_it_says_so():
    lstm = ModelEntry("lstm_stack", "test", "tests.networks:LSTMStack", (10, 32), "", "")
    with pytest.raises(ArchcalcError, match=r"not simulated for recurrent layers on cuda \(GRUCell, LSTM\)"):
        simulate(lstm, None, 2, "sgd", device="cuda", amp="bfloat16")
    assert simulate(lstm, None, 2, "sgd", device="cpu", amp="bfloat16").allocated == \
        real_cpu_peak(lstm, (2, 10, 32), "sgd", "bfloat16")  # (the CPU's native LSTM and cell: native_rnn.py)
    chain = ModelEntry("einsum_chain", "test", "tests.networks:EinsumChain", (10, 32), "", "")
    assert simulate(chain, None, 2, "sgd", device="cpu", amp="bfloat16").allocated == \
        real_cpu_peak(chain, (2, 10, 32), "sgd", "bfloat16")  # (CPU autocast casts the bmm inside einsum)
    assert simulate(chain, None, 2, "sgd", device="cuda", amp="bfloat16").allocated > 0  # CUDA's casts einsum
    assert torch.Tensor.sum is torch._C.TensorBase.sum and torch.nn.functional.linear is torch._C._nn.linear


def test_memory_amp_on_the_command_line(cli):
    data = cli("memory", "resnet18", "--batch", "4", "--amp", "float16", "--device", "cuda", "-f", "json").json()
    assert data["peak"]["amp"] == "float16"
    assert data["peak"]["allocated_bytes"] == simulate(REGISTRY.get("resnet18"), None, 4, "sgd",
                                                       amp="float16").allocated
    for args, message in ((("--amp", "fp8"), "unknown --amp 'fp8'"),
                          (("--amp", "float16", "--dtype", "float64"), "drop --dtype float64")):
        run = cli("memory", "cnnet", *args)
        assert run.code == 1 and message in run.err and "Traceback" not in run.err


class MixedEinsum(torch.nn.Module):
    """torchvision's MaxViT: attention weights made float32 by a float32 position bias, then an einsum with
    bfloat16 values. CPU autocast does not cast einsum itself, only the bmm it decomposes into (``direct``: a
    bmm called as torch.ops.aten.bmm, which nothing above the dispatcher sees)."""

    def __init__(self, direct: bool = False):
        super().__init__()
        self.qkv, self.bias = torch.nn.Linear(8, 24), torch.nn.Parameter(torch.zeros(5, 5))
        self.direct = direct

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        weights = torch.softmax(torch.einsum("bid,bjd->bij", q, k) + self.bias, dim=-1)
        if self.direct:
            return torch.ops.aten.bmm(weights, v.float())
        return torch.einsum("bij,bjd->bid", weights, v)


def test_a_composite_is_replayed_with_its_parts_cast():
    """CPU einsum decomposes into permutes, reshapes and bmm, which CPU autocast casts: the simulation records
    the decomposition and replays it with bmm cast, so that autograd keeps the low-precision copies as PyTorch
    does (torchvision's MaxViT and timm's MViTv2 under bfloat16 are exact so)."""
    from archcalc.models.user import module_entry

    entry = module_entry(MixedEinsum(), (5, 8))
    for optimizer in ("sgd", "adam"):
        assert simulate(entry, None, 2, optimizer, device="cpu", amp="bfloat16").allocated == \
            real_cpu_peak(entry, (2, 5, 8), optimizer, "bfloat16")
    products = module_entry(Products(), (5, 8))  # tensordot (mm inside) and linalg.multi_dot
    assert simulate(products, None, 2, "adam", device="cpu", amp="bfloat16").allocated == \
        real_cpu_peak(products, (2, 5, 8), "adam", "bfloat16")


class Products(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w, self.v = torch.nn.Parameter(torch.randn(8, 16)), torch.nn.Parameter(torch.randn(16, 4))

    def forward(self, x):
        y = torch.tensordot(x, self.w, dims=([2], [0]))
        return y.sum() + torch.stack([torch.linalg.multi_dot([xi, self.w, self.v]) for xi in x]).sum()


def test_what_autocast_casts_below_the_simulation_is_refused_in_one_line():
    """Refused (ForwardError: no number), not a crash inside a meta kernel and never a wrong number."""
    from archcalc.errors import ForwardError
    from archcalc.models.user import module_entry

    entry = module_entry(MixedEinsum(direct=True), (5, 8))
    with pytest.raises(ForwardError, match="autocast is not simulated for this network: bmm ran in float32"):
        simulate(entry, None, 2, "sgd", device="cpu", amp="bfloat16")
    assert simulate(entry, None, 2, "sgd", device="cpu").allocated == real_cpu_peak(entry, (2, 5, 8), "sgd")


class Float32Island(torch.nn.Module):
    """A model that opens torch.autocast itself, on the device its tensors are on (``x.device.type``: "meta"
    in a simulation, which PyTorch's autocast refuses): to keep a product in float32 (rotary embeddings,
    EfficientViT's linear attention), to run it in float16, or as a decorator on a method; or torch.amp.custom_fwd
    made for that device, casting the inputs to float32 (speechbrain's fwd_default_precision: its Fbank, MFCC),
    which asks torch.get_autocast_dtype and torch.is_autocast_enabled of it."""

    def __init__(self, how: str):
        super().__init__()
        self.a, self.b, self.how = torch.nn.Linear(64, 64), torch.nn.Linear(64, 64), how

    def forward(self, x):
        h = self.a(x)
        if self.how == "off":
            with torch.autocast(device_type=x.device.type, enabled=False):
                h = h.float() @ h.float().transpose(-1, -2)
        elif self.how == "float16":
            with torch.autocast(device_type=x.device.type, dtype=torch.float16):
                h = h @ h.transpose(-1, -2)
        elif self.how == "decorated":
            h = self.in_float32(h)
        elif self.how == "custom_fwd":
            h = torch.amp.custom_fwd(type(self).product, device_type=x.device.type, cast_inputs=torch.float32)(self, h)
        else:
            h = h @ h.transpose(-1, -2)
        return self.b(h.softmax(-1) @ x)

    @torch.autocast("cpu", enabled=False)
    def in_float32(self, h):
        return h.float() @ h.float().transpose(-1, -2)

    def product(self, h):
        return h @ h.transpose(-1, -2)


@pytest.mark.parametrize("how", ["off", "float16", "decorated", "custom_fwd"])
def test_a_models_own_autocast_regions_are_followed(how):
    """Inside the simulated autocast the model's own region turns it off, or changes its dtype, until it
    exits, as PyTorch's does: the same peak as real CPU autocast (the float32 product's 16 KiB a sample more
    than without the region)."""
    from archcalc.models.user import module_entry

    entry = module_entry(Float32Island(how), (32, 64))
    simulated = simulate(entry, None, 4, "adam", device="cpu", amp="bfloat16").allocated
    assert simulated == real_cpu_peak(entry, (4, 32, 64), "adam", "bfloat16")
    plain = simulate(module_entry(Float32Island("none"), (32, 64)), None, 4, "adam", device="cpu", amp="bfloat16")
    assert simulated != plain.allocated
    assert torch.amp.autocast_mode.autocast.__init__.__module__ == "torch.amp.autocast_mode"  # (put back)


def test_torch_autocast_on_the_meta_device_is_analysed_not_refused():
    """torch.autocast("meta", enabled=False), which PyTorch refuses ("unsupported scalarType"), is a region
    that changes nothing in an analysis on the meta device: the counts are the CPU's."""
    import archcalc

    for how in ("off", "custom_fwd"):
        on_meta = archcalc.analyze(Float32Island(how), (2, 32, 64), device="meta")
        on_cpu = archcalc.analyze(Float32Island(how), (2, 32, 64), device="cpu")
        assert on_meta.totals.macs == on_cpu.totals.macs == 2 * (32 * 64 * 64 * 2 + 32 * 32 * 64 * 2)
    with pytest.raises(RuntimeError):
        torch.get_autocast_dtype("meta")  # (outside an analysis: PyTorch's own, as the next)
    with pytest.raises(RuntimeError):
        torch.autocast("meta", enabled=False)  # (outside an analysis: PyTorch's own)


class Blur(torch.nn.Module):
    """timm's BlurPool2d (TResNet's anti-aliased downsampling): F.pad in reflect mode, which runs
    reflection_pad2d, of CPU autocast's float32 list, then a depthwise convolution by a fixed filter (a buffer,
    cast again at every call); ``how`` also pads by constant and replicate, or calls the kernel directly."""

    def __init__(self, how: str = "reflect"):
        super().__init__()
        self.conv, self.how = torch.nn.Conv2d(3, 8, 3, padding=1), how
        self.register_buffer("filt", torch.full((8, 1, 3, 3), 1 / 9))

    def forward(self, x):
        h = self.conv(x)
        if self.how == "aten":  # (the kernel itself, from nowhere the simulation catches)
            h = torch.ops.aten.reflection_pad2d(h, [1, 1, 1, 1])
        else:
            h = torch.nn.functional.pad(h, [1, 1, 1, 1], mode=self.how)
        return torch.nn.functional.conv2d(h, self.filt, stride=2, groups=8)


@pytest.mark.parametrize("how", ["reflect", "replicate", "constant"])
def test_padding_is_cast_as_its_kernel_is(how):
    """F.pad is no autocast entry, but the reflection and replication kernels it runs are of CPU autocast's
    float32 list: a bfloat16 input is padded in float32 (and cast back down for the convolution). Constant
    padding is not cast."""
    from archcalc.models.user import module_entry

    entry = module_entry(Blur(how), (3, 16, 16))
    assert simulate(entry, None, 2, "adam", device="cpu", amp="bfloat16").allocated == \
        real_cpu_peak(entry, (2, 3, 16, 16), "adam", "bfloat16")


def test_a_float32_kernel_reached_in_low_precision_is_refused():
    from archcalc.errors import ForwardError
    from archcalc.models.user import module_entry

    with pytest.raises(ForwardError, match="reflection_pad2d ran in torch.bfloat16 where autocast would run it in "
                                           "float32"):
        simulate(module_entry(Blur("aten"), (3, 16, 16)), None, 2, "adam", device="cpu", amp="bfloat16")


def test_a_group_norm_of_a_bfloat16_map_keeps_the_cpus_dtypes():
    """CPU autocast leaves group_norm alone, so a convolution's bfloat16 map meets a float32 GroupNorm: the
    CPU's kernels keep its mean and 1/σ in float32 and give ∂x in bfloat16, where the meta kernels gave the
    mean in bfloat16 and ∂x in float32, which autograd copied down (the simulation 24% high)."""
    from archcalc.models.user import module_entry

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.GroupNorm(32, 64),
                              torch.nn.Conv2d(64, 8, 1))
    entry = module_entry(net, (3, 32, 32))
    assert simulate(entry, None, 2, "adam", device="cpu", amp="bfloat16").allocated == \
        real_cpu_peak(entry, (2, 3, 32, 32), "adam", "bfloat16")


class Fourier(torch.nn.Module):
    """FNet's token mixing: torch.fft.fftn, of CPU autocast's float32 list (its FFTs take no bfloat16)."""

    def __init__(self):
        super().__init__()
        self.mix = torch.nn.Linear(16, 16)

    def forward(self, x):
        return torch.fft.fftn(self.mix(x), dim=(1, 2)).real


class HeldFourier(torch.nn.Module):
    """The same through references taken at construction, before autocast's region replaces the functions:
    FNet's partial(torch.fft.fftn, dim=(1, 2)), and a product kept as self.mm = torch.matmul."""

    def __init__(self):
        super().__init__()
        self.mix, self.w = torch.nn.Linear(16, 16), torch.nn.Parameter(torch.randn(16, 16))
        self.fft, self.mm = partial(torch.fft.fftn, dim=(1, 2)), torch.matmul

    def forward(self, x):
        return self.mm(self.fft(self.mix(x)).real, self.w)


@pytest.mark.parametrize("model", [Fourier, HeldFourier])
def test_fourier_transforms_run_in_float32_under_cpu_autocast(model):
    from archcalc.models.user import module_entry

    entry = module_entry(model(), (8, 16))
    assert simulate(entry, None, 2, "adam", device="cpu", amp="bfloat16").allocated == \
        real_cpu_peak(entry, (2, 8, 16), "adam", "bfloat16")


@pytest.mark.parametrize("amp", [None, "bfloat16"])
@pytest.mark.parametrize("name,shape", [("Factorisations", (2, 4, 5, 6)), ("FairseqConv", (2, 7, 8)),
                                        ("LinalgMatmul", (2, 5, 8))])
def test_linear_algebra_and_time_first_convolution_under_real_cpu_autocast(name, shape, amp):
    """CPU autocast runs the factorisations in float32 (slogdet's and inv's weight, cholesky_solve's right-hand side
    from a bfloat16 Linear: cast up), conv_tbc in bfloat16 and trace in float32: the simulated peak equals the
    real one to the byte (before, the simulation passed cholesky_solve a bfloat16 side and failed)."""
    entry = ModelEntry(name, "test", f"tests.networks:{name}", shape[1:], "", "")
    assert simulate(entry, None, shape[0], "adam", device="cpu", amp=amp).allocated == \
        real_cpu_peak(entry, shape, "adam", amp)


@pytest.mark.skipif(not hasattr(torch.nn.functional, "linear_cross_entropy"), reason="PyTorch 2.13 on")
@pytest.mark.parametrize("amp", [None, "bfloat16"])
@pytest.mark.parametrize("chunk", [None, 4])
def test_a_fused_language_head_step_under_real_cpu_autocast(chunk, amp):
    """F.linear_cross_entropy: the reference path (its logits held for the backward) and the chunked one (the
    gradients made in the forward, no logits kept), a training step's peak as the real one's, to the byte."""
    entry = ModelEntry("LanguageHead", "test", "tests.networks:LanguageHead", (16,), "", "",
                       {"chunk": chunk} if chunk else {})
    assert simulate(entry, None, 32, "adam", device="cpu", amp=amp).allocated == \
        real_cpu_peak(entry, (32, 16), "adam", amp)
