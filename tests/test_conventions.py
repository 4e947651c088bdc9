"""Named conventions reproduce each tool's own total exactly, and reconcile explains every difference."""

from math import prod
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tests.networks as networks

from archcalc.analysis.engine import analyse
from archcalc.analysis.reconcile import UNEXPLAINED, WHY, differences, run_tools
from archcalc.analysis.tools import NAMES
from archcalc.cli.app import CONVENTIONS
from archcalc.models.catalog import REGISTRY
from archcalc.models.registry import ModelEntry
from tests.networks import BEYOND_FLOP_COUNTER, NETWORKS

MODELS = ["lenet5", "cnnet", "vgg_base", "vgg_skip", "vgg_dense", "vgg_ca", "vgg_skip_dense_ca",
          "resnet50", "densenet121"]


@pytest.mark.parametrize("name", MODELS)
def test_conventions_reproduce_the_tools_exactly(name):
    entry = REGISTRY.get(name)
    a = analyse(entry, batch=2)
    tools = run_tools(entry, None, 2)
    for convention in ("fvcore", "torchinfo", "thop", "ptflops", "flop_counter"):
        assert tools[convention].total == a.convention_total(convention), (convention, tools[convention])
    assert a.convention_total("paper") == a.totals.macs
    assert a.convention_total("flops") == 2 * a.totals.macs + a.totals.elementwise


def _network(name):
    """A network of tests/networks.py as a user's model, at its batch."""
    make, shape, _ = {**NETWORKS, **BEYOND_FLOP_COUNTER}[name]
    spec, kwargs = SPECS.get(name, (make.__name__, {}))
    return ModelEntry(name, "user", f"{Path(networks.__file__)}:{spec}", shape[1:], "", "", kwargs), shape[0]


SPECS = {"causal_attention": ("SDPAttention", {"causal": True}), "mha_weights": ("MHABlock", {}),
         "mha_no_weights": ("MHABlock", {"need_weights": False}),
         "mha_masked_weights": ("MHABlock", {"masked": "causal"}),
         "mha_padded_weights": ("MHABlock", {"masked": "padding"}), "mha_both_masks": ("MHABlock", {"masked": "both"})}
BEYOND_CNNS = ["tiny_vit", "sdpa_attention", "einsum_attention", "swin_stage", "convnext_block", "unet_block",
               "row_gru", "lstm_stack", "mha_weights", "mha_no_weights", "mha_masked_weights",
               "mha_padded_weights", "mha_both_masks", "custom_functions", "matrix_products",
               "factorisations", "fairseq_conv", "library_idioms", "pooling_indices",
               "direct_forward", "functional_mha", "attention_pool", "added_products",
               "interpolated_positions"]


@pytest.mark.parametrize("name", BEYOND_CNNS + ["vit_b_32"])
def test_conventions_reproduce_the_tools_on_attention_recurrence_and_norms(name):
    entry, batch = _network(name) if name in NETWORKS or name in BEYOND_FLOP_COUNTER else (REGISTRY.get(name), 1)
    a = analyse(entry, batch=batch)
    tools = run_tools(entry, None, batch)
    for convention in ("fvcore", "torchinfo", "thop", "ptflops", "flop_counter"):
        assert tools[convention].total == a.convention_total(convention), (convention, tools[convention])
    for convention in ("fvcore", "torchinfo", "thop", "ptflops", "flop_counter"):
        assert not any(why.endswith(UNEXPLAINED) for why, _ in differences(a, convention)), convention
    for convention in ("fvcore", "torchinfo", "thop", "ptflops", "flop_counter", "flops"):
        explained = sum(amount for _, amount in differences(a, convention))
        assert explained == a.convention_total(convention) - a.totals.macs, convention


@pytest.mark.skipif(not hasattr(F, "linear_cross_entropy"), reason="F.linear_cross_entropy: PyTorch 2.13 on")
@pytest.mark.parametrize("chunk", [None, 4])
def test_conventions_on_a_fused_language_head(chunk):
    """F.linear_cross_entropy (PyTorch 2.13): its reference path runs F.linear inside, which flop_counter and
    fvcore count (the logits) and ptflops does not; its chunked path is a custom operator flop_counter cannot see
    inside (0), fvcore's trace takes the reference path, and ptflops counts the torch.mm and torch.mul calls it
    patches inside it, which archcalc does not reproduce (README)."""
    entry = ModelEntry("head", "user", f"{Path(networks.__file__)}:LanguageHead", (16,), "", "",
                       {"chunk": chunk} if chunk else {})
    a = analyse(entry, batch=8)
    tools = run_tools(entry, None, 8)
    for convention in ("fvcore", "torchinfo", "thop", "ptflops", "flop_counter"):
        if not (chunk and convention == "ptflops"):
            assert tools[convention].total == a.convention_total(convention), (convention, tools[convention])
        assert not any(why.endswith(UNEXPLAINED) for why, _ in differences(a, convention)), convention
    assert a.convention_total("flop_counter") == 2 * 8 * 16 * 16 + (0 if chunk else 2 * 8 * 16 * 100)


def test_vit_reconciled():
    """The complaint that fills the other counters' trackers: attention counted as nothing."""
    a = analyse(REGISTRY.get("vit_b_16"))
    assert a.totals.macs == 17_563_828_224
    attention = 12 * 2 * 197 * 197 * 768  # QKᵀ and AV of 12 layers, 197 tokens, width 768
    fvcore = dict(differences(a, "fvcore"))
    assert fvcore["MultiheadAttention: " + WHY["fvcore"]["MultiheadAttention"]] == -attention
    thop = dict(differences(a, "thop"))
    assert thop["MultiheadAttention: counted as 0: thop has no rule for it"] == -(attention + 12 * 4 * 197 * 768 * 768)


@pytest.mark.parametrize("name", ["resnet50", "vgg_ca", "lenet5"])
def test_explanations_add_up_to_the_difference(name):
    a = analyse(REGISTRY.get(name))
    for convention in ("fvcore", "torchinfo", "thop", "ptflops", "flop_counter", "flops"):
        explained = sum(amount for _, amount in differences(a, convention))
        assert explained == a.convention_total(convention) - a.totals.macs, convention


def test_a_recurrent_cells_differences_say_its_tools_arithmetic():
    """lstm_stack's GRUCell(16, 24), stepped 10 times over batch 2: 2 x (72*16 + 72*24) = 5,760 MACs a step.
    torchinfo multiplies its 3,024 weights and biases by the output's first two sizes, N x H = 2 x 24, as it would
    a sequence's N x T; thop and ptflops count (I + H)H + H per gate, 6 biases and 7 H of gate arithmetic, x N."""
    entry, batch = _network("lstm_stack")
    a = analyse(entry, batch=batch)
    weights = 72 * 16 + 72 * 24
    torchinfo, thop, ptflops = (dict(differences(a, tool)) for tool in ("torchinfo", "thop", "ptflops"))
    assert torchinfo["GRUCell: its weights and biases x N x H (the output's first two sizes, as for a sequence)"] \
        == 10 * ((weights + 144) * 2 * 24 - 2 * weights)
    gates = 10 * 2 * (144 + 7 * 24)
    assert thop["GRUCell: thop's cell formula: (I + H)H + H per gate, biases and gate arithmetic, x N"] == gates
    assert ptflops["GRUCell: ptflops's formula: W_ih and W_hh elements, biases and gate arithmetic, x N"] == gates


def test_fvcore_difference_on_resnet50_is_batchnorm_and_pooling():
    a = analyse(REGISTRY.get("resnet50"))
    reasons = dict(differences(a, "fvcore"))
    bn = sum(r.activation_elements for r in a.records if r.type == "BatchNorm2d") * 2
    assert reasons["BatchNorm2d: " + WHY["fvcore"]["BatchNorm2d"]] == bn
    assert reasons["AdaptiveAvgPool2d: adaptive average pooling 1 per input element"] == 2048 * 7 * 7


def test_reconcile_and_convention_commands(cli):
    data = cli("reconcile", "cnnet", "-f", "json").json()
    rows = {r["convention"]: r for r in data["rows"]}
    # torchinfo adds each conv's and linear's bias: 32*30*30 + 64*12*12 + 10
    assert rows["torchinfo"]["tool_total"] == rows["torchinfo"]["total"] == 5_519_232 + 32 * 30 * 30 + 64 * 12 * 12 + 10
    assert rows["fvcore"]["tool_total"] == rows["fvcore"]["total"] == 5_519_232
    summary = cli("summary", "vgg_ca", "--convention", "fvcore", "-f", "json").json()
    assert summary["convention"]["total"] == sum(layer["convention_count"] for layer in summary["layers"])
    bad = cli("flops", "cnnet", "--convention", "calflops")
    assert bad.code == 1 and "unknown convention 'calflops'" in bad.err


LANGUAGE_MODEL = """
from torch import nn


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1000, 32)
        self.layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
        self.head = nn.Linear(32, 1000)

    def forward(self, ids):
        return self.head(self.layer(self.embed(ids)))
"""


def test_reconcile_and_compare_take_token_ids(cli, tmp_path):
    """--input-dtype on reconcile and compare, as on the views: a language model of token ids, each tool run on ids
    below its vocabulary and reproduced."""
    path = tmp_path / "lm.py"
    path.write_text(LANGUAGE_MODEL)
    data = cli("reconcile", f"{path}:LM", "--input", "16", "--input-dtype", "int64:1000", "-f", "json").json()
    rows = {r["convention"]: r for r in data["rows"]}
    for tool in ("fvcore", "torchinfo", "thop", "ptflops", "flop_counter"):
        assert rows[tool]["tool_total"] == rows[tool]["total"], tool
    # paper: the attention's Q, K, V and output projections (4*16*32*32), QKᵀ and PV (2*16*16*32), the feed-forward
    # (2*16*32*64) and the head (16*32*1000)
    assert rows["paper"]["total"] == 4 * 16 * 32 * 32 + 2 * 16 * 16 * 32 + 2 * 16 * 32 * 64 + 16 * 32 * 1000
    compared = cli("compare", f"{path}:LM", "lenet5", "--input-dtype", "int64", "--input", "16")
    assert compared.code == 1 and "lenet5" in compared.err  # (lenet5 takes images: one line, no traceback)
    alone = cli("compare", f"{path}:LM", f"{path}:LM", "--input", "16", "--input-dtype", "int64", "-f", "json").json()
    assert {row["macs"] for row in alone["rows"]} == {rows["paper"]["total"]}


def test_the_cli_knows_every_convention():
    assert CONVENTIONS == NAMES


def test_count_multiplications_as_the_lecture_does(cli, tmp_path):
    # The lecture's bottleneck: a 5x5 conv from 14x14x480 to 48 maps is (14*14*48)*(5*5*480) multiplications.
    net = tmp_path / "bottleneck.py"
    net.write_text(
        "from torch import nn\n"
        "def direct(bias=True):\n"
        "    return nn.Conv2d(480, 48, 5, padding=2, bias=bias)\n")
    with_bias = cli("flops", f"{net}:direct", "--input", "480x14x14", "--count", "both", "-f", "json").json()
    assert with_bias["totals"]["mults"] == 112_896_000
    assert with_bias["totals"]["adds"] == 112_896_000  # 5*5*480 - 1 additions per output, + 1 for the bias
    no_bias = cli("flops", f"{net}:direct", "--input", "480x14x14", "--arg", "bias=False", "--count", "adds",
                  "-f", "json").json()
    assert no_bias["totals"]["adds"] == 112_896_000 - 14 * 14 * 48
    assert cli("flops", "cnnet", "--count", "divs").code == 1


def test_thop_and_ptflops_differences_on_resnet50_are_named():
    a = analyse(REGISTRY.get("resnet50"))
    bn_elements = sum(r.activation_elements for r in a.records if r.type == "BatchNorm2d")
    thop = dict(differences(a, "thop"))
    assert thop["BatchNorm2d: BatchNorm counted as 4 per element (2, doubled for the affine)"] == 4 * bn_elements
    assert thop["AdaptiveAvgPool2d: adaptive average pooling (window + 1) per output element"] == (49 + 1) * 2048
    ptflops = dict(differences(a, "ptflops"))
    assert ptflops["BatchNorm2d: BatchNorm counted as 2 per element (affine)"] == 2 * bn_elements
    relu_elements = sum(r.activation_elements or prod(r.output_shapes[0]) for r in a.records if r.type == "ReLU")
    assert ptflops["ReLU: counted twice, 2 per element: the module hook and the F.* call inside it"] == 2 * relu_elements
    assert ptflops["Linear: bias counted: N x out"] == 1000


def test_a_custom_layer_is_zero_for_thop_and_its_patched_calls_count_for_ptflops():
    a = analyse(REGISTRY.get("lenet5"))
    thop = dict(differences(a, "thop"))
    c3 = "ConnectionTableConv2d: counted as 0: thop counts only the torch.nn types it lists (exact type)"
    assert thop[c3 + " and no functional operation"] == -sum(r.macs for r in a.records if r.type == "ConnectionTableConv2d")
    ptflops = dict(differences(a, "ptflops"))
    # S2 and S4 call F.avg_pool2d, which ptflops patches: 1 per input element, 6x28x28 + 16x10x10
    assert ptflops["Subsampling: the patched calls inside it are counted: F.avg_pool2d"] == 6 * 28 * 28 + 16 * 10 * 10


# torchvision's own metadata, recorded from its source (torchvision.models.*_Weights.IMAGENET1K_V1.meta,
# torchvision 0.13 to 0.2x: unchanged): "num_params" and "_ops" (GMACs at 224x224, 3 decimals).
# There is no CPU build of torchvision here to run; archcalc's models of the same networks must
# reproduce both numbers.
TORCHVISION_META = {
    "alexnet_tv": (61_100_840, 0.714), "vgg11": (132_863_336, 7.609), "vgg11_bn": (132_868_840, 7.609),
    "vgg13": (133_047_848, 11.308), "vgg13_bn": (133_053_736, 11.308), "vgg16": (138_357_544, 15.47),
    "vgg16_bn": (138_365_992, 15.47), "vgg19": (143_667_240, 19.632), "vgg19_bn": (143_678_248, 19.632),
    "resnet18": (11_689_512, 1.814), "resnet34": (21_797_672, 3.664), "resnet50_tv": (25_557_032, 4.089),
    "resnet101_tv": (44_549_160, 7.801), "resnet152_tv": (60_192_808, 11.514),
    "resnext50_32x4d": (25_028_904, 4.23), "densenet121": (7_978_856, 2.834), "densenet169": (14_149_480, 3.36),
    "densenet201": (20_013_928, 4.291),
    # ViT_*_Weights.IMAGENET1K_V1 (ViT-H/14: IMAGENET1K_SWAG_LINEAR_V1, at 224x224)
    "vit_b_16": (86_567_656, 17.564), "vit_b_32": (88_224_232, 4.409), "vit_l_16": (304_326_632, 61.555),
    "vit_l_32": (306_535_400, 15.378), "vit_h_14": (632_045_800, 167.295),
}


@pytest.mark.parametrize("name", TORCHVISION_META)
def test_torchvision_convention_reproduces_its_ops_metadata(name):
    params, gmacs = TORCHVISION_META[name]
    a = analyse(REGISTRY.get(name))
    assert a.totals.params == params
    assert round(a.convention_total("torchvision") / 1e9, 3) == gmacs


def test_a_tool_that_is_missing_or_fails_is_reported_not_raised():
    from archcalc.analysis.reconcile import _attempt

    missing = _attempt("nothing", "archcalc-no-such-tool", lambda: 1)
    assert missing.total is None and missing.error == "pip install archcalc-no-such-tool to compare"
    failing = _attempt("torch", "torch", lambda: 1 / 0)
    assert failing.total is None and failing.error == "ZeroDivisionError: division by zero"


class Cached:
    """An object a forward returns beside its tensor (Hugging Face's DynamicCache, a decoder's keys and values)."""

    def __init__(self, keys):
        self.keys = keys


class ReturnsACache(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        y = self.fc(x)
        return y, Cached(y)


def test_a_forward_that_returns_an_object_fvcore_cannot_trace_is_said_with_what_to_do():
    import archcalc

    a, tools = archcalc.reconcile(ReturnsACache(), (2, 8))
    assert a.totals.macs == 2 * 8 * 8
    assert tools["fvcore"].total is None and tools["fvcore"].error.startswith("RuntimeError: Only tuples, lists")
    assert tools["fvcore"].error.endswith("unsupported type: Cached: fvcore's TorchScript trace takes a forward whose "
                                          "inputs and outputs are tensors, tuples, lists and dicts; a Hugging Face "
                                          "model returns its cache (DynamicCache) unless its config says "
                                          "use_cache=False")
    for convention in ("torchinfo", "flop_counter"):
        assert tools[convention].total == a.convention_total(convention), (convention, tools[convention])


def test_ultralytics_thop_is_named_for_what_it_is(monkeypatch):
    """Ultralytics' YOLO installs ultralytics-thop, whose module of the same name replaces thop's files and
    counts by other rules: reconcile names it, so that its difference is not read as thop 0.1.1's."""
    import archcalc.analysis.reconcile as reconcile

    versions = {"ultralytics-thop": "2.2.3", "thop": "0.1.1.post2209072238"}

    def version(package):
        if package not in versions:
            raise reconcile.PackageNotFoundError(package)
        return versions[package]

    monkeypatch.setattr(reconcile, "version", version)
    assert reconcile._version("thop") == "2.2.3 of ultralytics-thop (archcalc's thop rules are thop 0.1.1's)"
    del versions["ultralytics-thop"]
    assert reconcile._version("thop") == "0.1.1.post2209072238"


def _random_einsums(count, seed=0):
    """Equations of 2 to 4 operands over random indices, some of size 1 (broadcast)."""
    import random

    rng = random.Random(seed)
    while count:
        letters = rng.sample("abcdefg", rng.randint(2, 5))
        size = {x: rng.choice([1, 1, 2, 3, 4]) for x in letters}
        terms = [rng.sample(letters, rng.randint(1, len(letters))) for _ in range(rng.choice([2, 2, 3, 4]))]
        used = {x for term in terms for x in term}
        output = "".join(x for x in letters if x in used and rng.random() < 0.4)
        shapes = [tuple(size[x] if rng.random() > 0.15 else 1 for x in term) for term in terms]
        equation = ",".join("".join(term) for term in terms) + "->" + output
        count -= 1
        yield equation, shapes


def test_flop_counters_convention_counts_an_einsum_as_it_does():
    """flop_counter counts an einsum's batched matrix products only: ATen multiplies element-wise a pair whose
    contracted indices have size 1 on a side (Longformer's sliding-window einsum), and contracts an index early
    where later operands have it only as 1. Against flop_counter itself on 300 random equations."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from archcalc.analysis.counters.linear import bmm_macs

    checked = 0
    for equation, shapes in _random_einsums(300):
        operands = [torch.randn(*s) for s in shapes]
        try:
            torch.einsum(equation, *operands)
        except RuntimeError:  # (a random equation PyTorch refuses)
            continue
        with FlopCounterMode(display=False) as counter:
            torch.einsum(equation, *operands)
        assert 2 * bmm_macs(equation, tuple(shapes)) == counter.get_total_flops(), (equation, shapes)
        checked += 1
    assert checked > 250
    assert bmm_macs("bcxd,bcyd->bcxy", ((2, 3, 4, 1), (2, 3, 5, 1))) == 0  # (archcalc's own count: 120 products)


def test_a_sliding_window_einsum_is_reconciled_with_flop_counter():
    """Longformer's einsum over a width-1 index (its attention mask through the same code): archcalc counts
    the products, flop_counter nothing; the convention reproduces flop_counter and reconcile says why."""
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from archcalc.analysis.engine import analyse_module

    class SlidingWindow(nn.Module):
        def forward(self, x):  # x: (b, c, 4, 8)
            scores = torch.einsum("bcxd,bcyd->bcxy", x, x)
            mask = torch.einsum("bcxd,bcyd->bcxy", x[..., :1], x[..., :1])
            return scores + mask

    a = analyse_module(SlidingWindow(), "window", (2, 3, 4, 8), torch.device("cpu"), torch.float32)
    with FlopCounterMode(display=False) as counter:
        SlidingWindow()(torch.randn(2, 3, 4, 8))
    assert a.convention_total("flop_counter") == counter.get_total_flops() == 2 * (2 * 3 * 4 * 4 * 8)
    assert a.totals.macs == 2 * 3 * 4 * 4 * (8 + 1)
    reasons = dict(differences(a, "flop_counter"))
    assert reasons["einsum: an einsum's pair whose contracted index has size 1 on a side runs as an element-wise "
                   "mul, which flop_counter does not count"] == -2 * (2 * 3 * 4 * 4)


def test_fvcores_convention_counts_an_einsum_as_it_does():
    """fvcore counts an einsum by numpy's einsum_path (the flop count of its optimal path, halved), but for two
    equations it takes as bmm: not archcalc's MACs where a pair multiplies element-wise or contracts an index of
    size 1. Against fvcore itself on 60 random equations (its trace of each)."""
    import logging

    import torch
    from fvcore.nn import FlopCountAnalysis
    from torch import nn

    from archcalc.analysis.engine import analyse_module

    class Einsum(nn.Module):
        def __init__(self, equation, shapes):
            super().__init__()
            self.equation = equation
            self.rest = nn.ParameterList(nn.Parameter(torch.randn(*s)) for s in shapes[1:])

        def forward(self, x):
            return torch.einsum(self.equation, x, *self.rest)

    logging.disable(logging.WARNING)
    try:
        checked = 0
        for equation, shapes in _random_einsums(60, seed=1):
            try:
                torch.einsum(equation, *(torch.randn(*s) for s in shapes))
            except RuntimeError:
                continue
            model = Einsum(equation, shapes)
            counted = FlopCountAnalysis(model, (torch.randn(*shapes[0]),))
            counted.unsupported_ops_warnings(False)
            a = analyse_module(model, "einsum", shapes[0], torch.device("cpu"), torch.float32)
            assert a.convention_total("fvcore") == counted.total(), (equation, shapes)
            checked += 1
    finally:
        logging.disable(logging.NOTSET)
    assert checked > 50


def test_ptflops_hooks_timms_attention_in_place_of_its_layers(monkeypatch):
    """With timm installed ptflops hooks timm's Attention (the ViT block's) and its total takes the hook's count
    in place of the qkv and proj layers inside: 10 tokens, 4 heads of 16, 10*16*4 + 4*(2*10*10*16 + 10*10) =
    13,840, beside a Linear 10*(32*64 + 64) = 21,120 and a LayerNorm 640 (no .affine). Here ptflops's own hook on
    a stand-in of timm's class, registered as ptflops registers it: archcalc's convention equals ptflops (on a
    real timm ViT-Ti: 912,887,404 both, where the layers counted too gave 1,082,606,056)."""
    import sys
    import types

    import torch
    import torch.nn.functional as F
    from torch import nn

    pytorch_ops = pytest.importorskip("ptflops.pytorch_ops")
    from ptflops import get_model_complexity_info

    from archcalc.analysis.engine import analyse_module

    class Attention(nn.Module):  # timm.models.vision_transformer.Attention's layers and attributes
        def __init__(self, dim=64, num_heads=4):
            super().__init__()
            self.num_heads, self.head_dim = num_heads, dim // num_heads
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

        def forward(self, x):
            n, t, c = x.shape
            q, k, v = self.qkv(x).reshape(n, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, c))

    timm_module = types.ModuleType("timm.models.vision_transformer")
    timm_module.Attention = Attention
    monkeypatch.setitem(sys.modules, "timm.models.vision_transformer", timm_module)
    monkeypatch.setitem(pytorch_ops.MODULES_MAPPING, Attention, pytorch_ops.timm_attention_counter_hook)
    block = nn.Sequential(nn.Linear(32, 64), Attention(), nn.LayerNorm(64)).eval()
    real, _ = get_model_complexity_info(block, (10, 32), as_strings=False, print_per_layer_stat=False,
                                        verbose=False)
    assert real == 13_840 + 21_120 + 640
    a = analyse_module(block, "block", (1, 10, 32), torch.device("cpu"), torch.float32)
    assert a.convention_total("ptflops") == real
    why = dict(differences(a, "ptflops"))
    assert why["Attention: " + WHY["ptflops"]["Attention"]] == 13_840
    assert why["Linear in Attention: left out: ptflops hooks the Attention around it and counts that instead"] == \
        -10 * (64 * 192 + 64 * 64)
    assert sum(why.values()) == real - a.totals.macs


class ListOfImages(nn.Module):
    """A detector's input: a list of images of different sizes, each through the same layers."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 8, 3), nn.Linear(8, 4)

    def forward(self, images):
        return torch.stack([self.head(self.conv(image[None]).relu().mean((2, 3)))[0] for image in images])


class KeywordInputs(nn.Module):
    """A Hugging Face-style forward: token ids and a mask by keyword, attention, and a test of the mask's values
    (as HF's mask preparation makes), which sends the meta device's tools to the CPU."""

    def __init__(self):
        super().__init__()
        self.embed, self.project = nn.Embedding(50, 16), nn.Linear(16, 16)

    def forward(self, input_ids, attention_mask=None):
        h = self.project(self.embed(input_ids))[:, None]  # (N, 1 head, L, 16)
        if bool((attention_mask > 0).all()):
            h = F.scaled_dot_product_attention(h, h, h)
        return h[:, 0] * attention_mask[..., None]


def test_reconcile_with_example_inputs():
    """archcalc.reconcile(module, inputs=...): each tool given the inputs as it takes them. Two images of
    different sizes (a detector's list): fvcore, torchinfo, thop and flop_counter equal to archcalc's
    conventions, ptflops refused (it divides its module counts by the batch); one image: ptflops too. Keyword
    inputs: torchinfo, ptflops and flop_counter (on the CPU, the mask's value read; with the math attention kernel,
    whose attention it counts as on meta); fvcore and thop take positional inputs only, and say so."""
    import archcalc

    images = ([torch.randn(3, 20, 24), torch.randn(3, 16, 16)],)
    a, tools = archcalc.reconcile(ListOfImages(), inputs=images)
    assert a.totals.macs == 8 * 27 * (18 * 22 + 14 * 14) + 2 * 8 * 4
    for convention in ("fvcore", "torchinfo", "thop", "flop_counter"):
        assert tools[convention].total == a.convention_total(convention), (convention, tools[convention])
    assert tools["ptflops"].total is None and "give one positional input of a batch of one" in tools["ptflops"].error
    a, tools = archcalc.reconcile(ListOfImages(), inputs=(images[0][:1],))
    assert all(t.total == a.convention_total(c) for c, t in tools.items()), tools
    ids = {"input_ids": torch.randint(0, 50, (2, 7)), "attention_mask": torch.ones(2, 7)}
    a, tools = archcalc.reconcile(KeywordInputs(), inputs=ids)
    for convention in ("torchinfo", "ptflops", "flop_counter"):
        assert tools[convention].total == a.convention_total(convention), (convention, tools[convention])
    assert tools["fvcore"].error == ("ValueError: fvcore takes positional inputs only: the keyword inputs "
                                     "(input_ids, attention_mask) cannot be given to it")
    assert tools["thop"].total is None
    from archcalc.analysis.engine import is_sizes

    assert not is_sizes((torch.zeros(2, 3),)) and is_sizes([(3, 8), ()])  # (a tensor example: not sizes)


class CpuScalarFill(nn.Module):
    """SEW-D's idiom: masked_fill with a 0-dim CPU tensor, which the meta device refuses without naming itself
    ("Expected `value` to be on same device as `a`")."""

    def __init__(self):
        super().__init__()
        self.project = nn.Linear(8, 8)

    def forward(self, x):
        return self.project(x).masked_fill(x > 0, torch.tensor(-1e4))


def test_tools_run_on_the_cpu_where_the_meta_device_fails_them():
    """torchinfo and flop_counter run on the meta device, and on the CPU where it fails, however it says so."""
    import archcalc

    a, tools = archcalc.reconcile(CpuScalarFill(), (2, 5, 8))
    for convention, tool in tools.items():
        assert tool.total == a.convention_total(convention), (convention, tool)


def test_reconcile_command_on_a_model_file_with_example_inputs(cli, tmp_path):
    """A model file whose archcalc_input is a list of images: `archcalc reconcile` gives each tool that list (ptflops
    refuses two images, and says why), and its footer names every input."""
    net = tmp_path / "detector.py"
    net.write_text("import torch\nfrom torch import nn\n\n"
                   "class ListNet(nn.Module):\n"
                   "    archcalc_input = ([torch.rand(3, 20, 24), torch.rand(3, 16, 16)],)\n\n"
                   "    def __init__(self):\n"
                   "        super().__init__()\n"
                   "        self.conv, self.head = nn.Conv2d(3, 8, 3), nn.Linear(8, 4)\n\n"
                   "    def forward(self, images):\n"
                   "        return torch.stack([self.head(self.conv(i[None]).relu().mean((2, 3)))[0] for i in images])\n")
    data = cli("reconcile", f"{net}:ListNet", "-f", "json").json()
    rows = {r["convention"]: r for r in data["rows"]}
    for convention in ("fvcore", "torchinfo", "thop", "flop_counter"):
        assert rows[convention]["tool_total"] == rows[convention]["total"], convention
    assert rows["ptflops"]["tool_total"] is None
    shown = cli("reconcile", f"{net}:ListNet")
    assert "input 3x20x24, 3x16x16;" in shown.out


def test_a_tool_that_aborts_the_process_is_reported_and_the_others_reproduced():
    """speechbrain's Xvector idiom (a call retried without the keyword it does not take): TorchScript's trace,
    fvcore's, fails an internal assert, which aborts the process it runs in: fvcore runs in a child process
    (analysis/isolated.py), so the table says so and the other tools are reproduced."""
    entry, batch = _network("retried_call")
    a = analyse(entry, batch=batch)
    tools = run_tools(entry, None, batch)
    for convention in ("torchinfo", "thop", "ptflops", "flop_counter"):
        assert tools[convention].total == a.convention_total(convention), (convention, tools[convention])
    fvcore = tools["fvcore"]
    assert fvcore.total == a.convention_total("fvcore") or \
        fvcore.error.startswith("its process was killed by SIGABRT: ") and "INTERNAL ASSERT FAILED" in fvcore.error
