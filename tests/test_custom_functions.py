"""Gradients autograd does not derive: a custom torch.autograd.Function (its own backward runs), a region
under torch.no_grad (no backward at all), torch.utils.checkpoint. Each checked against flop_counter
around a forward pass and loss.backward() on real tensors, or against the same network without the
region."""

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode

import archcalc
from tests.aten_flops import AtenMacs
from tests.networks import Product

META, CPU = "meta", "cpu"


def _flop_counter(model, shape) -> tuple[int, int]:
    """(forward, backward) MACs as flop_counter counts them on the CPU."""
    with FlopCounterMode(display=False) as counter:
        y = model(torch.randn(shape))
        forward = counter.get_total_flops()
        y.sum().backward()
    return forward // 2, (counter.get_total_flops() - forward) // 2


def _ours(model, shape, device=META):
    a = archcalc.analyze(model, [shape], device=device, backward=True)
    return a, (a.totals.macs, a.totals.backward_macs)


class ThreeProducts(Product):
    """Y = A·B whose backward does ∂A = ∂Y·Bᵀ and ∂B = Aᵀ·∂Y twice (a Function may do what it likes)."""

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return grad @ b.t(), a.t() @ grad + a.t() @ grad


class StraightThrough(torch.autograd.Function):
    """Rounding forward, ∂y passed on unchanged (a quantiser's straight-through estimator)."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x @ x.t() @ x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(16, 8))
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return StraightThrough.apply(self.fc(ThreeProducts.apply(x, self.w)))


@pytest.mark.parametrize("device", [META, CPU])
def test_a_custom_function_costs_what_its_own_backward_runs(device):
    """4 x 16 inputs: ThreeProducts' forward 4*16*8 = 512 MACs, its backward ∂A and ∂B twice = 3 * 512 (∂A too,
    which autograd computes though x needs none, then drops); the linear layer ∂x + ∂W = 2 * 256; the straight-through estimator nothing, though its forward
    has products (4*4*8 + 4*4*8 = 256 MACs) that autograd's rule would have differentiated."""
    torch.manual_seed(0)
    model = Custom()
    a, counts = _ours(model, (4, 16), device)
    assert counts == _flop_counter(model, (4, 16)) == (512 + 256 + 256, 3 * 512 + 2 * 256)
    rows = {r.name: r for r in a.records}
    assert rows["ThreeProducts"].backward.macs == 3 * 512 and rows["ThreeProducts"].macs == 0
    assert rows["ThreeProducts"].backward.text()["macs"] == "ThreeProducts.backward: 3 × matmul 512 = 1,536"
    assert rows["StraightThrough"].backward.macs == 0
    inside = [r for r in a.records if r.type in ("matmul", "round")]
    assert len(inside) == 4 and all(r.backward.macs == 0 and "gradients off" in r.backward.note for r in inside)
    # a Function's row takes no activation of its own: its output is its last operation's, counted there
    assert rows["ThreeProducts"].activation_bytes == rows["StraightThrough"].activation_bytes == 0
    assert sum(r.activation_bytes for r in a.records) == 4 * (8 + 8 + 4 + 8 + 8) * 4  # (the transpose a view)


class AliasProducts(nn.Module):
    """A Function applied through an alias of its apply, taken at import (``fn = F.apply``, as many libraries
    write it): the trace never sees the call, only the node in the graph."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(16, 8))
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        return products(self.fc(x), self.w)


products = ThreeProducts.apply


def test_a_custom_function_applied_through_an_alias_is_found_in_the_graph():
    torch.manual_seed(0)
    model = AliasProducts()
    a, counts = _ours(model, (4, 16))
    assert counts == _flop_counter(model, (4, 16)) == (1024 + 512, 1024 + 3 * 512)  # (fc: ∂W only)
    assert a.records[-1].name == "ThreeProducts" and a.records[-1].backward.macs == 3 * 512


class UsesItem(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * float(x.abs().sum().item())


class ReadsValues(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return UsesItem.apply(self.fc(x))


def test_a_backward_that_reads_values_runs_on_the_cpu_and_says_so():
    """The meta device cannot give .item(): the analysis runs again on the CPU, as for a forward that reads a
    value, and the note names the Function and the line."""
    torch.manual_seed(0)
    model = ReadsValues()
    a, counts = _ours(model, (2, 8))
    assert a.device == "cpu" and counts == _flop_counter(model, (2, 8)) == (2 * 8 * 8, 2 * 8 * 8)
    assert any("the backward of UsesItem (a custom autograd.Function) reads a tensor's value, which the meta "
               "device cannot give: run on the CPU instead" in n for n in a.notes)
    assert next(r for r in a.records if r.name == "UsesItem").backward.macs == 0  # (2 element-wise operations)


class Refuses(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise ValueError("double backward is not supported here")


def test_a_backward_that_fails_is_not_counted_and_says_so():
    model = nn.Linear(8, 8)
    model.forward = lambda x: Refuses.apply(nn.functional.linear(x, model.weight, model.bias))
    a = archcalc.analyze(model, [(2, 8)], device="meta", backward=True)
    assert next(r for r in a.records if r.name == "Refuses").backward.macs is None
    assert "backward not counted: Refuses (Refuses.backward could not run here: double backward is not supported " \
           "here)" in a.notes


class Teacher(nn.Module):
    """A frozen teacher's features under torch.no_grad beside a student's: its weights require gradients,
    but autograd never differentiates what it computed."""

    def __init__(self):
        super().__init__()
        self.teacher, self.student = nn.Linear(32, 32), nn.Linear(32, 32)

    def forward(self, x):
        with torch.no_grad():
            target = self.teacher(x).relu()
        return self.student(x) - target


def test_a_region_under_no_grad_gets_no_gradient():
    torch.manual_seed(0)
    model = Teacher()
    a, counts = _ours(model, (8, 32))
    assert counts == _flop_counter(model, (8, 32)) == (2 * 8 * 32 * 32, 8 * 32 * 32)  # the student's ∂W only
    teacher = next(r for r in a.records if r.name == "teacher")
    assert teacher.backward.macs == 0 and teacher.backward.note.startswith("made with gradients off")


class Checkpointed(nn.Module):
    def __init__(self, reentrant: bool | None):
        super().__init__()
        self.first, self.second = nn.Linear(32, 32), nn.Linear(32, 32)
        self.reentrant = reentrant

    def forward(self, x):
        x = self.first(x)
        return self.second(x) if self.reentrant is None else checkpoint(self.second, x, use_reentrant=self.reentrant)


@pytest.mark.parametrize("reentrant", [True, False])
def test_checkpointing_counts_the_model_s_gradients_not_the_forward_run_again(reentrant):
    """torch.utils.checkpoint: the reentrant form's forward runs with gradients off inside a custom Function;
    its operations still get their gradients, as without checkpointing. flop_counter counts the forward run
    again in the reentrant form (one more 8*32*32) and not in the other."""
    torch.manual_seed(0)
    _, plain = _ours(Checkpointed(None), (8, 32))
    _, counts = _ours(Checkpointed(reentrant), (8, 32))
    assert counts == plain == (2 * 8 * 32 * 32, 3 * 8 * 32 * 32)
    forward, backward = _flop_counter(Checkpointed(reentrant), (8, 32))
    assert (forward, backward) == (plain[0], plain[1] + (8 * 32 * 32 if reentrant else 0))


class CheckpointedBlock(nn.Module):
    """A block of two products under reentrant checkpointing, after a layer (``first``) or straight on the input."""

    def __init__(self, first: bool, checkpointed: bool = True):
        super().__init__()
        self.first = nn.Linear(32, 32) if first else nn.Identity()
        self.block = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))
        self.head = nn.Linear(32, 8)
        self.checkpointed = checkpointed

    def forward(self, x):
        x = self.first(x)
        x = checkpoint(self.block, x, use_reentrant=True) if self.checkpointed else self.block(x)
        return self.head(x)


@pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad")
@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_checkpointed_block_gets_the_gradients_its_second_run_gives(device):
    """Inside the block the forward ran with gradients off, so the second product's input needs none there; the
    backward runs the block again with them on, where it does: ∂x of that product counted, as without
    checkpointing (flop_counter: that, plus the block's forward run again). A block whose input needs no gradient
    is never differentiated (PyTorch warns): its parameters get none, and nothing inside it is counted."""
    torch.manual_seed(0)
    block, head = 2 * 8 * 32 * 32, 8 * 32 * 8
    _, plain = _ours(CheckpointedBlock(True, False), (8, 32), device)
    _, counts = _ours(CheckpointedBlock(True), (8, 32), device)
    layer = 8 * 32 * 32
    assert counts == plain == (layer + block + head, layer + 2 * block + 2 * head)  # (first: ∂W only, the rest both)
    forward, backward = _flop_counter(CheckpointedBlock(True), (8, 32))
    assert (forward, backward) == (plain[0], plain[1] + block)
    _, counts = _ours(CheckpointedBlock(False), (8, 32), device)
    model = CheckpointedBlock(False)
    assert counts == _flop_counter(model, (8, 32)) == (block + head, head)  # (the head's ∂W only)
    assert all(p.grad is None for p in model.block.parameters())


class SetupContext(torch.autograd.Function):
    """The newer form: forward without ctx, setup_context apart, and an output that is not differentiable."""

    @staticmethod
    def forward(x, w):
        y = x @ w
        return y, y.argmax(-1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, grad, _):
        x, w = ctx.saved_tensors
        return grad @ w.t(), x.t() @ grad


class WithSetup(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.w = nn.Linear(16, 16), nn.Parameter(torch.randn(16, 8))

    def forward(self, x):
        return SetupContext.apply(self.fc(x), self.w)[0]


def test_a_function_with_setup_context_and_a_non_differentiable_output():
    torch.manual_seed(0)
    model = WithSetup()
    _, counts = _ours(model, (4, 16))
    assert counts == _flop_counter(model, (4, 16)) == (1024 + 512, 1024 + 2 * 512)  # (fc: ∂W only)


def test_train_flops_on_the_command_line_name_the_function(cli, tmp_path):
    (tmp_path / "net.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Twice(torch.autograd.Function):\n"
        "    @staticmethod\n    def forward(ctx, x):\n        return x * 2\n"
        "    @staticmethod\n    def backward(ctx, g):\n        return g @ torch.eye(g.shape[-1])\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(8, 8)\n\n"
        "    def forward(self, x):\n        return Twice.apply(self.fc(x))\n")
    data = cli("flops", f"{tmp_path / 'net.py'}:Net", "--input", "8", "--batch", "2", "--pass", "backward",
               "-f", "json").json()
    twice = next(layer for layer in data["layers"] if layer["name"] == "Twice")
    assert twice["macs"] == 2 * 8 * 8  # its backward's (2, 8) x (8, 8) product
    assert data["totals"]["macs"] == 2 * 8 * 8 + 2 * 8 * 8  # + the linear layer's ∂W (∂x: the input needs none)


class AsksAutograd(Product):
    """A backward that asks autograd for the gradients of a forward it runs again (as checkpointing does)."""

    @staticmethod
    def backward(ctx, grad):
        x, w = (t.detach().requires_grad_() for t in ctx.saved_tensors)
        with torch.enable_grad():
            return torch.autograd.grad(x @ w, (x, w), grad)


class AsksForSome(Product):
    """One that asks for ∂x alone (autograd then skips ∂w, work the count cannot follow)."""

    @staticmethod
    def backward(ctx, grad):
        x, w = (t.detach().requires_grad_() for t in ctx.saved_tensors)
        with torch.enable_grad():
            return torch.autograd.grad(x @ w, x, grad)[0], None


class Asking(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.fc, self.w, self.function = nn.Linear(8, 8), nn.Parameter(torch.randn(8, 8)), function

    def forward(self, x):
        return self.function.apply(self.fc(x), self.w)


@pytest.mark.parametrize("device", [META, CPU])
def test_a_backward_that_runs_its_forward_again_and_asks_autograd_is_counted(device):
    """The forward run again is not counted (as for checkpointing), autograd's gradients of it are: ∂x and ∂w of
    x @ w, (2*8)*8 each, and the linear layer's ∂W (∂x: the input needs none). flop_counter counts what autograd's
    engine runs, and the forward run again."""
    torch.manual_seed(0)
    a, counts = _ours(Asking(AsksAutograd), (2, 8), device)
    assert counts == (2 * 128, 128 + 2 * 128)
    function = next(r for r in a.records if r.type == "AsksAutograd")
    assert function.backward.formulas["macs"] == "AsksAutograd.backward: ∂(matmul) 256 = 256"
    assert "a forward run again and differentiated by autograd" in function.backward.note
    forward, backward = _flop_counter(Asking(AsksAutograd), (2, 8))
    assert (forward, backward) == (counts[0], counts[1] + 128)


def test_a_backward_that_asks_for_some_gradients_only_is_not_counted_and_says_so():
    """autograd's engine then leaves out work that no formula of the count can tell: no short count, a note."""
    a = archcalc.analyze(Asking(AsksForSome), [(2, 8)], device=META, backward=True)
    assert next(r for r in a.records if r.type == "AsksForSome").backward.macs is None
    assert "backward not counted: AsksForSome (AsksForSome.backward calls torch.autograd itself and asks autograd " \
           "for the gradients of some of the inputs only, which autograd's engine computes out of the count's " \
           "sight: not counted)" in a.notes


def _aten_flops(model, shape) -> tuple[int, int]:
    """(forward, backward) MACs by flop_counter's formulas, aten operation by aten operation, without its mode:
    FlopCounterMode's module tracking fails on a module called inside a backward, which is what a reversible block
    does."""
    with AtenMacs() as counter:
        y = model(torch.randn(shape))
        forward = counter.macs
        y.sum().backward()
    return forward, counter.macs - forward


class Reversible(torch.autograd.Function):
    """A reversible residual block (RevNet; Reformer's layers): y1 = x1 + F(x2), y2 = x2 + G(y1), nothing kept but the
    outputs; the backward rebuilds the inputs from them, running F and G again with gradients on, and asks autograd
    for their gradients with Tensor.backward, as Hugging Face's Reformer does."""

    @staticmethod
    def forward(ctx, x, f, g, *params):
        x1, x2 = x.chunk(2, dim=-1)
        y1 = x1 + f(x2)
        y2 = x2 + g(y1)
        ctx.f, ctx.g = f, g
        y = torch.cat([y1, y2], dim=-1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        y1, y2 = ctx.saved_tensors[0].chunk(2, dim=-1)
        dy1, dy2 = grad.chunk(2, dim=-1)
        with torch.enable_grad():
            y1 = y1.detach().requires_grad_()
            g_y1 = ctx.g(y1)
            g_y1.backward(dy2)
        with torch.no_grad():
            x2 = y2 - g_y1
            dy1 = dy1 + y1.grad
        with torch.enable_grad():
            x2 = x2.detach().requires_grad_()
            f_x2 = ctx.f(x2)
            f_x2.backward(dy1)
        with torch.no_grad():
            dx2 = dy2 + x2.grad
        return torch.cat([dy1, dx2], dim=-1), None, None, *(None for _ in ctx.needs_input_grad[3:])


class RevNet(nn.Module):
    def __init__(self, reversible: bool, blocks: int = 2, width: int = 16):
        super().__init__()
        self.stem = nn.Linear(2 * width, 2 * width)
        self.f = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(blocks))
        self.g = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.reversible = reversible

    def forward(self, x):
        x = self.stem(x)
        for f, g in zip(self.f, self.g):
            if self.reversible:
                x = Reversible.apply(x, f, g, *f.parameters(), *g.parameters())
            else:
                x1, x2 = x.chunk(2, dim=-1)
                y1 = x1 + f(x2)
                x = torch.cat([y1, x2 + g(y1)], dim=-1)
        return x


@pytest.mark.parametrize("device", [META, CPU])
def test_a_reversible_network_gets_the_gradients_of_the_same_network_kept_whole(device):
    """A reversible block's backward rebuilds its inputs and differentiates F and G run again: the same gradient
    products as the network that keeps its activations (its parameters' gradients get to them through autograd,
    as in the real run), the forward run again not counted; flop_counter counts that run too."""
    torch.manual_seed(0)
    shape = (4, 32)
    _, whole = _ours(RevNet(False), shape, device)
    _, reversible = _ours(RevNet(True), shape, device)
    layer = 4 * 32 * 32  # the stem; F and G: 4*16*16 each, two blocks
    assert whole == reversible == (layer + 4 * 4 * 16 * 16, layer + 2 * 4 * 4 * 16 * 16)  # (stem: ∂W only)
    forward, backward = _aten_flops(RevNet(True), shape)
    assert (forward, backward) == (reversible[0], reversible[1] + 4 * 4 * 16 * 16)
    model = RevNet(True)
    model(torch.randn(shape)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
