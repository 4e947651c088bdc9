"""The tracer on tiny hand-made models: what becomes a row, and the arithmetic of each row."""

import time
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archcalc.analysis.counting import CounterRegistry, op_name
from archcalc.analysis.engine import analyse, analyse_module, input_shape
from archcalc.analysis.views import rows
from archcalc.errors import ForwardError, InputError
from archcalc.models.catalog import REGISTRY
from archcalc.models.registry import ModelEntry, Registry

META, F32 = torch.device("meta"), torch.float32


def run(model, shape, device=META, dtype=F32):
    with torch.device(device):
        model = model()
    return analyse_module(model.to(dtype).eval(), "test", shape, device, dtype)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return F.relu(torch.add(self.bn(self.conv(x)), x))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.blocks = nn.Sequential(Block(), Block())
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        x = self.act(self.stem(x))
        x = self.act(self.blocks(x))
        x = x.mean(dim=(2, 3))
        return self.head(x)


def test_rows_names_calls_and_arithmetic():
    a = run(Tiny, (2, 3, 9, 9))
    labels = [r.label for r in rows(a)]
    assert labels == ["stem", "act", "blocks.0.conv", "blocks.0.bn", "blocks.0.add", "blocks.0.relu",
                      "blocks.1.conv", "blocks.1.bn", "blocks.1.add", "blocks.1.relu", "act (2)", "mean", "head"]
    stem = next(r for r in a.records if r.name == "stem")
    assert stem.output_shape == (2, 4, 5, 5)
    assert stem.formulas["output"] == "(9 + 2*1 - 3)/2 + 1 = 5"
    assert stem.macs == 2 * 4 * 5 * 5 * (3 * 3 * 3)
    assert stem.formulas["macs"] == "(2*4*5*5)*(3*3*3) = 5,400"
    conv = next(r for r in a.records if r.name == "blocks.0.conv")
    assert conv.formulas["params"] == "(3*3*4)*4 = 144"
    bn = next(r for r in a.records if r.name == "blocks.0.bn")
    assert bn.params == 8 and bn.elementwise == 2 * 2 * 4 * 5 * 5
    head = next(r for r in a.records if r.name == "head")
    assert head.macs == 2 * 4 * 5


def test_depth_view_sums_blocks():
    a = run(Tiny, (1, 3, 8, 8))
    top = rows(a, 1)
    assert [r.label for r in top] == ["stem", "act", "blocks", "act (2)", "mean", "head"]
    blocks = next(r for r in top if r.name == "blocks")
    assert blocks.params == 2 * (144 + 8)
    assert blocks.macs == 2 * (4 * 4 * 4 * 3 * 3 * 4)
    assert [r.label for r in rows(a, 2)][2:4] == ["blocks.0", "blocks.1"]


def test_inplace_and_views_create_no_activation_memory():
    a = run(Tiny, (1, 3, 8, 8))
    act = next(r for r in a.records if r.name == "act")
    assert act.activation_bytes == 0
    stem = next(r for r in a.records if r.name == "stem")
    assert stem.activation_bytes == 4 * 4 * 4 * 4


def test_dtype_sets_the_bytes():
    a16 = run(Tiny, (1, 3, 8, 8), dtype=torch.float16)
    a32 = run(Tiny, (1, 3, 8, 8))
    assert a16.totals.param_bytes * 2 == a32.totals.param_bytes
    assert a16.totals.activation_bytes * 2 == a32.totals.activation_bytes
    assert a16.totals.macs == a32.totals.macs


def test_ops_inside_a_counted_layer_are_not_traced_again():
    a = analyse(REGISTRY.get("lenet5"))
    assert not any(r.name.startswith("c3.") for r in a.records)


def test_unknown_operation_is_listed_not_zero():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.frexp(x).mantissa.mT

    a = run(Odd, (1, 1, 4, 4))
    split = next(r for r in a.records if r.type == "frexp")
    assert split.macs is None and split.elementwise is None
    assert [r.type for r in a.not_counted] == ["frexp"]
    assert any("frexp" in n for n in a.notes)
    view = next(r for r in a.records if r.type == "mT")
    assert view.macs == 0 and view.activation_bytes == 0


def test_reused_module_counts_parameters_once():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)

        def forward(self, x):
            return self.conv(self.conv(x))

    a = run(Shared, (1, 2, 3, 3))
    calls = [r for r in a.records if r.name == "conv"]
    assert [(r.call, r.params) for r in calls] == [(1, 6), (2, 0)]
    assert calls[0].macs == calls[1].macs == 9 * 2 * 2


def test_functional_conv_in_a_custom_module_is_counted():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.empty(8, 3, 3, 3))

        def forward(self, x):
            return F.conv2d(x, self.w, padding=1)

    a = run(Custom, (1, 3, 6, 6))
    conv = next(r for r in a.records if r.type == "conv2d")
    assert conv.macs == 8 * 6 * 6 * 27
    assert conv.formulas["output"] == "(6 + 2*1 - 3)/1 + 1 = 6"
    assert a.totals.params == 8 * 27 and sum(r.params for r in rows(a)) == 8 * 27


def test_forward_failure_names_the_layer():
    with pytest.raises(ForwardError, match=r"for input 3x64x64 in fc1 \(Linear\) receiving 1x12544: expects 2304 "
                                           r"input features .* C\*H\*W = 64\*14\*14 = 12544"):
        analyse(REGISTRY.get("cnnet"), (3, 64, 64))
    with pytest.raises(ForwardError, match=r"in conv2 \(Conv2d\) receiving 1x32x3x3"):
        analyse(REGISTRY.get("cnnet"), (3, 8, 8))


class CaughtThenFails(nn.Module):
    """A layer's failure the model catches, then another failure it does not: the message names the second."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        try:
            self.fc(x.new_zeros(2, 5))
        except RuntimeError:
            pass
        return self.fc(x) + x.new_zeros(3, 3)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_an_error_the_model_caught_is_not_the_failure(device):
    with pytest.raises(ForwardError, match=r"in add \(add\) receiving 1x4, 3x3: 1x4 and 3x3 differ"):
        analyse_module(CaughtThenFails().to(device), "net", (1, 4), torch.device(device), torch.float32)


def test_an_input_given_without_its_batch_is_named_as_the_mistake():
    """input_size carries the batch first; (3, 32, 32) reaches the first Conv2d as one image without a batch
    (PyTorch takes a 3-d input so), which the Linear after the flatten then sees as 8 rows of 900: the error
    names the missing batch, not the Linear's size; a model that runs anyway gets a note; a batched input none."""
    import archcalc

    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    with pytest.raises(ForwardError, match=r"in 3 \(Linear\) receiving 8x900: Conv2d takes the input 3x32x32 as one "
                                           r"sample without a batch \(C x H x W\), but input sizes carry the batch "
                                           r"first: for one sample give 1x3x32x32"):
        archcalc.analyze(net, (3, 32, 32))
    with pytest.raises(ForwardError, match=r"in 0 \(BatchNorm2d\) receiving 3x32x32: BatchNorm2d takes the input"):
        archcalc.analyze(nn.Sequential(nn.BatchNorm2d(3)), (3, 32, 32))
    signal = archcalc.analyze(nn.Sequential(nn.Conv1d(16, 8, 3)), (16, 100))
    assert signal.notes[-1] == ("Conv1d takes the input 16x100 as one sample without a batch (C x L), but input sizes "
                                "carry the batch first: for one sample give 1x16x100")
    assert not [n for n in archcalc.analyze(net, (1, 3, 32, 32)).notes if "without a batch" in n]
    tabular = archcalc.analyze(nn.Sequential(nn.BatchNorm1d(54), nn.Linear(54, 7)), (64, 54))  # (TabNet's first
    assert not [n for n in tabular.notes if "without a batch" in n]  # layer: 64 rows of 54 features, a batch)
    # A training step's memory and a timing of "batch 16" that run one sample would be that sample's, read as the
    # batch's (images/s 16 times too high): refused with the same words, where the analysis only notes it.
    fcn, mistake = nn.Sequential(nn.Conv1d(16, 8, 3)), "Conv1d takes the input 16x100 as one sample without a batch"
    with pytest.raises(InputError, match=mistake):
        archcalc.memory(fcn, (16, 100))
    with pytest.raises(ForwardError, match="training forward pass of Sequential failed: Conv2d takes the input"):
        archcalc.memory(net, (3, 32, 32))  # (and where the step fails after it, that is what it names)
    assert archcalc.time(fcn, (16, 100), device="cpu", repeat=1, warmup=0)[0].error.startswith(mistake)
    assert archcalc.memory(fcn, (2, 16, 100)).batch == 2 and not archcalc.time(fcn, (2, 16, 100), device="cpu",
                                                                               repeat=1, warmup=0)[0].error


def test_huge_inputs_on_meta_take_no_memory_and_no_time():
    start = time.perf_counter()
    a = run(Tiny, (100000, 3, 4096, 4096))
    assert time.perf_counter() - start < 20
    stem = next(r for r in a.records if r.name == "stem")
    assert stem.output_shape == (100000, 4, 2048, 2048)
    assert stem.macs == 100000 * 4 * 2048 * 2048 * 27  # exact Python integers, no overflow
    assert stem.activation_bytes == 100000 * 4 * 2048 * 2048 * 4


def test_input_shape_rules():
    assert input_shape((3, 32, 32), None, 4) == (4, 3, 32, 32)
    assert input_shape((3, 32, 32), (64, 64), 1) == (1, 3, 64, 64)
    assert input_shape((3, 32, 32), (1, 28, 28), 2) == (2, 1, 28, 28)
    for bad in ((1, 2, 3, 4), (0, 5)):
        with pytest.raises(InputError):
            input_shape((3, 32, 32), bad, 1)
    with pytest.raises(InputError):
        input_shape((3, 32, 32), None, 0)


def test_registries_refuse_duplicates_and_suggest_names():
    registry = CounterRegistry("layer type")
    registry.register(nn.Conv2d)(lambda call: None)
    with pytest.raises(ValueError, match="already has a counter"):
        registry.register(nn.Conv2d)(lambda call: None)
    entry = REGISTRY.get("cnnet")
    with pytest.raises(ValueError, match="registered twice"):
        Registry([entry, entry])
    with pytest.raises(InputError, match="closest: vgg_dense"):
        REGISTRY.get("vgg_dens")
    assert isinstance(entry, ModelEntry)


def test_op_names_are_normalised():
    assert op_name(torch.Tensor.__iadd__) == "add"
    assert op_name(torch.Tensor.add_) == "add"
    assert op_name(torch.Tensor.__rmul__) == "mul"
    assert op_name(torch.Tensor.__getitem__) == "getitem"


def test_containers_do_not_count_their_childrens_activations_again():
    a = run(Tiny, (1, 3, 8, 8))
    blocks = next(r for r in a.records if r.name == "blocks")
    assert blocks.kind == "module" and blocks.activation_bytes == 0
    made = sum(r.activation_bytes for r in a.records if r.kind != "module")
    assert a.totals.activation_bytes == made
    assert sum(r.activation_bytes for r in rows(a, 1)) == made


def _same_records(a, b):
    assert len(a.records) == len(b.records)
    for x, y in zip(a.records, b.records):
        assert x._replace(formulas={}) == y._replace(formulas={}), x.label
        assert dict(x.formulas) == dict(y.formulas), x.label


@pytest.mark.parametrize("name", ["lenet5", "vgg_dense", "vgg_ca"])
def test_records_worked_out_after_the_forward_pass_equal_those_made_during_it(name):
    # on meta each record is worked out after the forward pass; on a real device, as each layer ends
    entry = REGISTRY.get(name)
    _same_records(analyse(entry), analyse(entry, device="cpu"))


def test_a_trace_leaves_the_model_and_torch_as_it_found_them():
    class OwnForward(nn.Module):  # an instance with a forward of its own, set after construction
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.forward = lambda x: self.conv(x).relu()

    model = OwnForward().to("meta").eval()
    own = model.forward
    a = analyse_module(model, "own", (1, 3, 8, 8), META, F32)
    assert [r.label for r in a.records] == ["conv", "relu"] and model.forward is own
    with pytest.raises(ForwardError):
        analyse(REGISTRY.get("cnnet"), (3, 64, 64))
    net = Tiny().to("meta").eval()
    with pytest.raises(ForwardError):
        analyse_module(net, "tiny", (1, 5, 8, 8), META, F32)  # fails inside the first counted layer
    assert all("forward" not in m.__dict__ for m in net.modules())
    assert torch._C._len_torch_function_stack() == 0 and torch._C._is_torch_function_enabled()
    assert analyse_module(net, "tiny", (1, 3, 8, 8), META, F32).totals.macs == run(Tiny, (1, 3, 8, 8)).totals.macs



@pytest.mark.parametrize("name", ["vgg_ca", "resnet50", "vit_b_32", "googlenet"])
def test_without_pytorchs_private_stack_functions_the_counts_are_the_same(name, monkeypatch):
    """A PyTorch without torch._C._push_on_torch_function_stack (and friends): the public path."""
    import itertools

    from archcalc.analysis import tracer

    fast = analyse(REGISTRY.get(name))
    monkeypatch.setattr(tracer, "_stack_depth", itertools.count().__next__)
    monkeypatch.setattr(tracer, "_pop_mode", None)
    monkeypatch.setattr(tracer, "_push_mode", None)
    slow = analyse(REGISTRY.get(name))
    assert [(r.name, r.macs, r.params, r.elementwise, r.output_shapes) for r in slow.records] == [
        (r.name, r.macs, r.params, r.elementwise, r.output_shapes) for r in fast.records]
    assert slow.totals == fast.totals


class TokenLinear(nn.Module):
    """A linear layer as Hugging Face's GPT-2 writes it (transformers' Conv1D): the tokens of every sample
    flattened into rows, addmm, the rows folded back; and a key cache that starts as a 1-d empty tensor,
    which torch.cat skips."""

    def __init__(self, width=8):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.randn(width, 2 * width)), nn.Parameter(torch.zeros(2 * width))

    def forward(self, x):
        rows = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        keys = torch.cat([x.new_empty(0), rows.view(*x.shape[:-1], -1)], dim=-2)
        position = torch.zeros(x.shape[1], x.shape[1], device=x.device).view(1, 1, x.shape[1], x.shape[1])  # (T5's)
        return keys + position.mean()


def test_tokens_flattened_into_rows_and_an_empty_cache_are_taken_as_they_are():
    """(N, T, C) -> (N*T, C) merges the batch with the tokens, and a position bias (T, T) -> (1, 1, T, T) has
    no batch: no note that the batch changed (there is one for vgg_base's fixed flatten at 64x64,
    test_seed_networks); cat's arithmetic leaves out the empty cache."""
    with torch.device("meta"):
        model = TokenLinear()
    a = analyse_module(model, "token_linear", (2, 5, 8), torch.device("meta"), torch.float32)
    assert a.totals.macs == 2 * 5 * 8 * 16 and a.output_shapes == ((2, 5, 16),)
    assert not [n for n in a.notes if "turned batch" in n]
    cat = next(r for r in a.records if r.type == "cat")
    assert cat.formulas["output"] == "dim 1: 5 = 5"


class AreaAttention(nn.Module):
    """YOLO12's area attention: the tokens of each sample cut into ``area`` runs, each run a sample of its own
    ((N, L, C) -> (N*a, L/a, C)), attended, and put back."""

    def forward(self, x):
        n, length, c = x.shape
        runs = x.reshape(n * 4, length // 4, c)
        return F.scaled_dot_product_attention(runs, runs, runs).reshape(n, length, c)


class Anchors(nn.Module):
    """A detector's anchors: made from constants (3 aspect ratios x 4 corners), viewed as (1, 3, 4) and added to
    positions; torchvision's detectors take a list of C x H x W images, whose first size (3) is not a batch."""

    def forward(self, x):
        ratios = torch.tensor([0.5, 1.0, 2.0], device=x.device)
        base = torch.stack([-ratios, -1 / ratios, ratios, 1 / ratios], dim=1)  # (3, 4)
        return x.flatten(1)[:, :4, None] + base.view(1, -1, 4).sum(1)


def test_a_tensor_made_from_constants_is_not_taken_for_the_batch():
    """Only a view of what the model's input became can turn the batch into something else: the anchors' view
    (3, 4) -> (1, 3, 4) at batch 3 says nothing (torchvision's Faster R-CNN printed five such notes), while the
    input's own flatten to a fixed size still does."""
    a = analyse_module(Anchors(), "anchors", (3, 8, 8), torch.device("meta"), torch.float32)
    assert not [n for n in a.notes if "turned batch" in n], a.notes

    class Fixed(nn.Module):
        def forward(self, x):
            return x.view(-1, 32)

    a = analyse_module(Fixed(), "fixed", (3, 8, 8), torch.device("meta"), torch.float32)
    assert [n for n in a.notes if "turned batch 3 into 6" in n]

    class Scalar(nn.Module):  # (kornia's PSNR: a mean viewed as a 0-dim tensor, whose size has no first entry)
        def forward(self, x):
            return (x ** 2).mean().view(())

    a = analyse_module(Scalar(), "scalar", (1, 8, 8), torch.device("meta"), torch.float32)
    assert not [n for n in a.notes if "turned batch" in n] and a.totals.elementwise == 2 * 64


def test_a_batch_split_into_areas_is_not_taken_for_a_fixed_flatten():
    a = analyse_module(AreaAttention(), "area", (2, 40, 8), torch.device("meta"), torch.float32)
    assert not [n for n in a.notes if "turned batch" in n]
    assert a.totals.macs == 2 * 4 * 10 * 10 * (8 + 8)  # (N*a)*L'*S'*(d_k + d_v)


class MaskPositions(nn.Embedding):
    """OPT's learned positions: an embedding whose own forward takes the attention mask (floating-point) and
    looks up the positions it counts."""

    def forward(self, mask):
        return super().forward((mask.long().cumsum(1) - 1).clamp(min=0))


class PositionedTokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(50, 8), MaskPositions(16, 8)

    def forward(self, ids, mask):
        return self.tokens(ids) + self.positions(mask)


def test_an_embedding_with_a_forward_of_its_own_takes_what_it_takes():
    """The refusal of floating-point ids is nn.Embedding's own forward's: a subclass's forward (OPT's, BART's
    positions) may take a float mask and look up integers it makes."""
    with torch.device("meta"):
        model = PositionedTokens()
    from archcalc.analysis.engine import sized_inputs

    a = analyse_module(model, "positioned", sized_inputs([(2, 5), (2, 5)], ["int64", "float32"]),
                       torch.device("meta"), torch.float32)
    assert a.output_shapes == ((2, 5, 8),) and a.totals.params == 50 * 8 + 16 * 8
    with pytest.raises(ForwardError, match="receives floating-point numbers"):
        analyse_module(model, "positioned", sized_inputs([(2, 5), (2, 5)], ["float32"]), torch.device("meta"),
                       torch.float32)


class SwitchesItsAttention(torch.nn.Module):
    """Hugging Face's BigBird on a short sequence: its forward builds a new attention layer (nn.Linear's
    reset_parameters runs kaiming_uniform_ and uniform_ on the new weights) and gives it the old projections."""

    def __init__(self):
        super().__init__()
        self.attention = torch.nn.Sequential(torch.nn.Linear(16, 16))

    def forward(self, x):
        fresh = torch.nn.Sequential(torch.nn.Linear(16, 16, device=x.device))
        fresh[0] = self.attention[0]
        self.attention = fresh
        return self.attention(x)


def test_a_layer_built_in_the_forward_adds_no_parameters():
    """The initialisers write the new weights in place: they use no parameter, so own none (BigBird counted
    17% more parameters than it has)."""
    import archcalc

    for device in ("meta", "cpu"):
        model = SwitchesItsAttention()
        a = archcalc.analyze(model, (2, 16), device=device)
        assert a.totals.params == sum(p.numel() for p in model.parameters()) == 16 * 16 + 16
        assert a.totals.macs == 2 * 16 * 16


class Experts(torch.nn.Module):
    """A mixture of experts' MLP as transformers 5 runs it: tokens sorted by expert, one torch._grouped_mm
    per projection (``offs``: where each expert's tokens end); ``how`` gives the other shapes it takes."""

    def __init__(self, how: str = "ragged rows"):
        super().__init__()
        self.how = how
        self.w = torch.nn.Parameter(torch.randn(2, 8, 16) if how != "ragged columns" else torch.randn(8, 16))

    def forward(self, x):
        if self.how == "batched":
            return torch._grouped_mm(x, self.w)
        if self.how == "ragged inner":
            return torch._grouped_mm(x, self.w.flatten(0, 1), offs=torch.tensor([8, 16], dtype=torch.int32))
        if self.how == "ragged columns":
            return torch._grouped_mm(x, self.w, offs=torch.tensor([4, 16], dtype=torch.int32))
        return torch._grouped_mm(x, self.w, offs=torch.tensor([5, x.shape[0]], dtype=torch.int32))


@pytest.mark.parametrize("how,size,per_group", [
    ("ragged rows", (12, 8), lambda x, w: [x[:5] @ w[0], x[5:] @ w[1]]),
    ("batched", (2, 8, 8), lambda x, w: [x[0] @ w[0], x[1] @ w[1]]),
    ("ragged inner", (8, 16), lambda x, w: [x[:, :8] @ w.flatten(0, 1)[:8], x[:, 8:] @ w.flatten(0, 1)[8:]]),
    ("ragged columns", (2, 8, 8), lambda x, w: [x[0] @ w[:, :4], x[1] @ w[:, 4:]])])
def test_grouped_products_are_the_sum_of_their_groups(how, size, per_group):
    """torch._grouped_mm, which flop_counter has no formula for (a mixture of experts' MLPs were 0 MACs): its
    MACs are those of the groups' products one by one, as flop_counter counts them, and so are its gradients'."""
    import archcalc
    from torch.utils.flop_counter import FlopCounterMode

    model = Experts(how)
    x = torch.randn(size)
    a = archcalc.analyze(model, size, device="cpu", backward=True)
    with FlopCounterMode(display=False) as counter:
        torch.stack([p.sum() for p in per_group(x, model.w)]).sum().backward()
    assert 2 * a.totals.macs * 2 == counter.get_total_flops()  # (forward + ∂W, each the products' MACs)
    assert a.totals.backward_macs == a.totals.macs
    on_meta = archcalc.analyze(model, size, device="meta", backward=True)  # (its meta kernel refuses float32:
    assert (on_meta.totals.macs, on_meta.totals.backward_macs) == (a.totals.macs, a.totals.backward_macs)  # stand_ins)
    assert [r.output_shapes for r in on_meta.layers] == [r.output_shapes for r in a.layers]
    assert torch.allclose(torch.cat([p.flatten() for p in per_group(x, model.w)]).sort().values,
                          model(x).flatten().sort().values, atol=1e-4)  # (the groups are the operation's)


class ScalarMask(torch.nn.Module):
    """Scores masked with a CPU 0-dim tensor as the value (Hugging Face's SEW-D and DeBERTa-style XSoftmax:
    ``masked_fill(mask, torch.tensor(torch.finfo(dtype).min))``), which the meta kernel refuses; and a
    position table handed to a LayerNorm as its input (SEW-D's rel_embeddings.weight)."""

    def __init__(self):
        super().__init__()
        self.q = torch.nn.Linear(8, 8)
        self.table = torch.nn.Parameter(torch.randn(6, 8))
        self.norm = torch.nn.LayerNorm(8)

    def forward(self, x):
        scores = self.q(x) @ self.norm(self.table).t()
        return scores.masked_fill(scores > 0, torch.tensor(torch.finfo(scores.dtype).min)).softmax(-1)


def test_a_cpu_scalar_value_and_a_parameter_given_to_a_layer():
    import archcalc

    model = ScalarMask()
    a, cpu = (archcalc.analyze(model, (2, 4, 8), device=d, backward=True) for d in ("meta", "cpu"))
    assert [(r.name, r.output_shapes, r.macs, r.params) for r in a.records] == \
        [(r.name, r.output_shapes, r.macs, r.params) for r in cpu.records]
    assert a.totals.macs == 2 * 4 * 8 * 8 + 2 * 4 * 8 * 6
    norm = next(r for r in a.records if r.name == "norm")
    assert norm.params == 8 + 8 + 6 * 8 and norm.formulas["params"] == "weight 8 + bias 8 + table 6*8 = 64"
    assert not any("did not run" in n for n in a.notes) and a.totals.params == sum(p.numel() for p in model.parameters())
    x = torch.randn(2, 4, 8)
    with torch.device("meta"):
        refused = torch.empty(2, 4, 6)
    with pytest.raises(RuntimeError, match="same device"):  # (what the stand-in is for)
        refused.masked_fill(refused > 0, torch.tensor(-1.0))
    assert model(x).shape == (2, 4, 6)


class TypedLike(nn.Module):
    """Position embeddings cast to the input's type by its name, ``pos.type(x.type())``, as lucidrains's
    linear-attention transformer writes it: on the meta device x.type() is 'torch.meta.FloatTensor'."""

    def __init__(self):
        super().__init__()
        self.positions, self.out = nn.Embedding(16, 8), nn.Linear(8, 8)

    def forward(self, x):
        pos = self.positions(torch.arange(x.shape[1], device=x.device)).type(x.type())
        return self.out(x + pos)


def test_a_cast_by_the_meta_devices_type_name_runs_as_the_cpus_does():
    import archcalc
    from archcalc.analysis.inputs import Inputs
    from archcalc.models.user import module_entry
    from tests.test_peak import real_cpu_peak

    with torch.device("meta"):
        with pytest.raises(ValueError, match="invalid type"):  # (what the stand-in is for)
            torch.empty(2).type(torch.empty(2).type())
    model = TypedLike()
    meta, cpu = (archcalc.analyze(model, (2, 16, 8), device=d, backward=True) for d in ("meta", "cpu"))
    assert meta.device == "meta" and meta.totals == cpu.totals and meta.totals.macs == 2 * 16 * 8 * 8
    simulated = archcalc.memory(model, (2, 16, 8), optimizer="adam")
    assert not simulated.peak.real  # (the steps ran on the meta device, not the CPU's fallback)
    assert simulated.peak.allocated == real_cpu_peak(module_entry(model, (16, 8)), Inputs.of_shape((2, 16, 8)),
                                                     "adam")


class Norms(nn.Module):
    """Embeddings normalised as OWL-ViT does (torch.linalg.norm over the last dimension), a Frobenius norm, and
    a nuclear norm, which comes from singular values."""

    def forward(self, x):
        unit = x / torch.linalg.norm(x, dim=-1, keepdim=True)
        return unit.sum() + torch.linalg.matrix_norm(x).sum() + torch.linalg.norm(x, ord="nuc", dim=(-2, -1)).sum()


def test_norms_are_reductions_but_those_of_singular_values():
    a = analyse_module(Norms(), "norms", (2, 4, 8), torch.device("meta"), torch.float32)
    vector, frobenius, nuclear = (r for r in a.records if "norm" in r.type)
    assert (vector.macs, vector.elementwise) == (frobenius.macs, frobenius.elementwise) == (0, 2 * 4 * 8)
    assert nuclear.macs is None and nuclear.note == "matrix norm ord='nuc': from the singular values, no formula"
    assert "not counted: linalg_norm (matrix norm ord='nuc': from the singular values, no formula)" in a.notes


class GatesAndBins(nn.Module):
    """xLSTM's forget gate (F.logsigmoid, whose own name is log_sigmoid), a mixture of experts' load (histc,
    bincount) and Reformer's legacy Tensor.new."""

    def forward(self, x):
        load = torch.histc(x, bins=4, min=0, max=1) + torch.bincount(x.flatten().long().clamp(0, 3), minlength=4)
        return F.logsigmoid(x) + x.new(*x.shape).zero_() + load.sum()


def test_a_log_sigmoid_gate_is_element_wise_and_histograms_do_no_arithmetic():
    a = analyse_module(GatesAndBins(), "gates", (2, 4, 8), torch.device("cpu"), torch.float32)
    assert not [n for n in a.notes if "not counted" in n]
    gate = next(r for r in a.records if r.type == "log_sigmoid")
    assert (gate.macs, gate.elementwise) == (0, 2 * 4 * 8)
    bins = [r for r in a.records if r.type in ("histc", "bincount", "new")]
    assert [(r.type, r.macs, r.elementwise) for r in bins] == [("histc", 0, 0), ("bincount", 0, 0), ("new", 0, 0)]


class TriangularSolves(nn.Module):
    """The gated DeltaNet's chunk solve (Qwen3-Next: a unit lower-triangular system), a right-side solve with
    its divisions, and the older torch.triangular_solve (B first)."""

    def __init__(self):
        super().__init__()
        self.w, self.v = nn.Parameter(torch.randn(8, 8)), nn.Linear(3, 3)

    def forward(self, x):  # x: (B, 8, 3)
        a = torch.eye(8) + self.w.tril(-1)
        unit = torch.linalg.solve_triangular(a, self.v(x), upper=False, unitriangular=True)
        right = torch.linalg.solve_triangular(a.mT, x.mT, upper=True, left=False)
        with warnings.catch_warnings():  # (deprecated, once a process)
            warnings.simplefilter("ignore")
            legacy = torch.triangular_solve(x, a, upper=False).solution
        return unit.sum() + right.sum() + legacy.sum()


def test_a_triangular_solve_is_substitution_and_its_gradient_a_solve_and_a_product():
    """2 matrices x 3 right-hand sides of 8 unknowns: 6*8*7/2 = 168 MACs, 48 divisions unless unitriangular.
    Backward (PyTorch's linalg_solve_triangular_backward, one solve and one bmm of 2x8x3 by 2x3x8):
    168 + 2*8*8*3 = 552; ∂B's solve alone where only B needs a gradient."""
    a = analyse_module(TriangularSolves(), "solves", (2, 8, 3), torch.device("cpu"), torch.float32, backward=True)
    unit, right, legacy = (r for r in a.records if "solve" in r.type)
    assert [(r.macs, r.elementwise) for r in (unit, right, legacy)] == [(168, 0), (168, 48), (168, 48)]
    assert unit.formulas["macs"] == "6 right-hand sides * 8*7/2 = 168"
    assert unit.formulas["elementwise"] == "unitriangular: no division"
    assert right.formulas["elementwise"] == "1 division per unknown: 6*8 = 48"
    assert unit.backward.macs == right.backward.macs == legacy.backward.macs == 168 + 2 * 8 * 8 * 3
    assert unit.backward.text()["macs"] == "∂B (a solve) 6 right-hand sides * 8*7/2 + ∂A -∂B·Xᴴ (2*8*3)*8 = 552"
    frozen = TriangularSolves()
    frozen.w.requires_grad_(False)  # A needs no gradient: B's alone (the first solve's; the others' need none)
    only_b = analyse_module(frozen, "solves", (2, 8, 3), torch.device("cpu"), torch.float32, backward=True)
    assert [r.backward.macs for r in only_b.records if "solve" in r.type] == [168, 0, 0]
    assert not [n for n in a.notes if "not counted" in n]


class Chain(nn.Module):
    """x times a chain of matrices by torch.linalg.multi_dot, and a tensordot over two dimensions."""

    def __init__(self, shapes, dims):
        super().__init__()
        self.mats = nn.ParameterList([nn.Parameter(torch.randn(*s)) for s in shapes])
        self.dims, self.t = dims, nn.Parameter(torch.randn(*{0: (6, 3), 1: (7, 4, 5)}[dims[0][0]]))

    def forward(self, x):  # x: (6, 4, 5)
        chained = torch.linalg.multi_dot([x.flatten(1), *self.mats])
        return chained.sum() + torch.tensordot(x, self.t, dims=self.dims).sum()


@pytest.mark.parametrize("shapes", [[(20, 3), (3, 5)], [(20, 30), (30, 2)], [(20, 2), (2, 20), (20, 7), (7, 7)],
                                    [(20, 9), (9, 1), (1, 9), (9, 40), (40, 3)]])
@pytest.mark.parametrize("dims", [([1, 2], [1, 2]), ([0], [0])])
def test_multi_dot_and_tensordot_equal_flop_counter_forward_and_backward(shapes, dims):
    """multi_dot's products in PyTorch's order (for three matrices its own rule, for more the matrix-chain
    recurrence), tensordot as one product over the contracted dimensions; gradients each a product alike."""
    from torch.utils.flop_counter import FlopCounterMode

    model = Chain(shapes, dims)
    a = analyse_module(model, "chain", (6, 4, 5), torch.device("cpu"), torch.float32, backward=True)
    x = torch.randn(6, 4, 5)  # (the input, which needs no gradient)
    with FlopCounterMode(display=False) as counter:
        y = model(x)
        forward = counter.get_total_flops()
        y.backward()
    products = [r for r in a.records if r.type in ("linalg_multi_dot", "tensordot")]
    assert 2 * sum(r.macs for r in products) == forward
    assert 2 * sum(r.macs + r.backward.macs for r in products) == counter.get_total_flops()


def test_a_chain_is_multiplied_in_the_cheapest_order_and_says_so():
    # (20x20)(20x2)(2x20): (AB)C = 20*20*2 + 20*2*20 = 1,600; A(BC) = 20*2*20 + 20*20*20 = 8,800
    a = analyse_module(Chain([(20, 2), (2, 20)], ([1, 2], [1, 2])), "chain", (20, 4, 5), torch.device("cpu"),
                       torch.float32)  # (x flattened: 20x20)
    chain = next(r for r in a.records if r.type == "linalg_multi_dot")
    assert chain.macs == 1_600 and chain.formulas["macs"] == "20*20*2 + 20*2*20 = 1,600"


def test_bilinear_by_hand():
    """y_k = x1ᵀA_k x2 + b_k over 2x6 rows, in1 8, in2 4, out 5: PyTorch computes x1ᵀA_k, then by x2, one k at a
    time: 12*5*4*(8+1) = 2,160; its gradients each 12*5*8*4 = 1,920 (∂A and ∂x2 here: x1, the input, needs none)."""
    from tests.networks import MatrixProducts

    with torch.device("meta"):
        model = MatrixProducts()
    a = analyse_module(model, "products", (2, 6, 8), torch.device("meta"), torch.float32, backward=True)
    bilinear = next(r for r in a.records if r.type == "Bilinear")
    assert (bilinear.params, bilinear.macs, bilinear.elementwise) == (5 * 8 * 4 + 5, 2_160, 12 * 5)
    assert bilinear.formulas["macs"] == "12*5*4*(8+1) = 2,160"
    assert bilinear.formulas["params"] == "weight 5*8*4 + bias 5 = 165"
    assert bilinear.backward.macs == 2 * 1_920
    assert bilinear.backward.text()["macs"] == "∂A 12*5*8*4 + ∂x2 12*5*8*4 = 3,840"
    outer, kron = (next(r for r in a.records if r.type == t) for t in ("outer", "kron"))
    assert (outer.macs, outer.elementwise, kron.macs, kron.elementwise) == (0, 4 * 4, 0, 4 * 4)


@torch.compile
def _swish(x):
    return x * torch.sigmoid(1.702 * x)


class PartlyCompiled(nn.Module):
    """A torch.compile'd function and a torch.compile'd layer inside a model: Dynamo could not trace the
    tracer's mode, and the analysis stopped ("cls_source must not be None for MRO walk")."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), torch.compile(nn.Linear(16, 4))

    def forward(self, x):
        return self.b(_swish(self.a(x)))


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_compiled_parts_are_counted_as_plain_python(device):
    """2x8 -> 16 -> 4: 256 + 128 MACs; the swish's 3 operations over 2x16; ∂W of the first layer, ∂x and ∂W of
    the second (128 each) and no compilation (it runs as PyTorch's "force_eager" stance has it)."""
    with torch.device(device):
        model = PartlyCompiled()
    a = analyse_module(model, "compiled", (2, 8), torch.device(device), torch.float32, backward=True)
    assert (a.totals.macs, a.totals.backward_macs) == (256 + 128, 256 + 2 * 128)
    assert [r.type for r in a.records if r.type in ("mul", "sigmoid")] == ["mul", "sigmoid", "mul"]
