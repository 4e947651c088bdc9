"""archcalc reconcile: each convention's total beside the installed tools' own totals, and where
each convention differs from the papers' count, layer type by layer type."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version

import torch

from archcalc.analysis import isolated
from archcalc.analysis.counters import decompositions
from archcalc.analysis.diagnosis import with_hint
from archcalc.analysis.packed import QUANTIZED_TYPES
from archcalc.analysis.tools import NO_FORMULA, Counts
from archcalc.analysis.tools import fvcore as fvcore_rules
from archcalc.analysis.tools import ptflops as ptflops_rules
from archcalc.analysis.engine import analyse, build, entry_inputs
from archcalc.analysis.records import LAYER, OP, Analysis, LayerRecord
from archcalc.models.registry import ModelEntry


def _each(names, text: str) -> dict[str, str]:
    return dict.fromkeys(names, text)


_BATCH_NORMS = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")
_POOL_MODULES = tuple(pool.__name__ for pool in ptflops_rules.POOLS)
_POOL_FUNCTIONS = tuple(f"{kind}_pool{d}d" for kind in ("max", "avg", "adaptive_max", "adaptive_avg") for d in (1, 2, 3))

_NORMS = ("LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d")
_RECURRENT = ("RNN", "LSTM", "GRU")
_CELLS = ("RNNCell", "LSTMCell", "GRUCell")

WHY = {
    "fvcore": {**_each(sorted(fvcore_rules.NOT_SUPPORTED), "not supported"),  # (then the ones said more precisely)
               **_each(_BATCH_NORMS + ("batch_norm",), "BatchNorm counted as 2 per element in eval, with the batch's "
                                                       "statistics (training=True) 5 (4 without affine)"),
               **_each(("AdaptiveAvgPool2d", "adaptive_avg_pool2d"), "adaptive average pooling 1 per input element"),
               **_each(("MultiheadAttention", "multi_head_attention_forward"),
                       "its attention runs as aten::scaled_dot_product_attention (need_weights=False), or its QKᵀ as "
                       "aten::baddbmm (need_weights with a mask), which fvcore does not support: projections only"),
               "scaled_dot_product_attention": "aten::scaled_dot_product_attention not supported",
               **_each(_NORMS + ("layer_norm", "group_norm", "instance_norm"),
                       "normalisation counted as 5 per input element (4 without affine)"),
               **_each(_RECURRENT, "aten::lstm / gru / rnn not supported"),
               "matmul": "torch.matmul counted as numel(x) x y.shape[-1]: the second operand's batch not broadcast",
               "einsum": "counted by numpy's einsum_path (its optimal path's flop count, halved): element-wise "
                         "products and the terms summed counted too",
               "deform_conv2d": "torchvision::deform_conv2d not supported",
               **_each(sorted(decompositions.COUNTED), "a matrix factorisation (LAPACK's): not supported"),
               **_each(("Conv1d", "Conv2d", "Conv3d", "conv1d", "conv2d", "conv3d"),
                       "padding='same' or 'valid' traces as aten::_convolution_mode, not supported: 0"),
               **_each(("Upsample", "interpolate"), "upsampling: nearest 1, bilinear 4 per output element"),
               "grid_sample": "aten::grid_sampler counted as 4 per output element (fvcore assumes bilinear)",
               "linear_cross_entropy": "traced, it takes its reference path: the logits' aten::linear only"},
    "torchinfo": {"Linear": "weight and bias elements x N (the bias counted; over L tokens, once, not L times)", **_each(_BATCH_NORMS, "weight and bias counted: N x 2C"),
                  "Conv2d": "bias counted: N x C_out x H x W",
                  "matmul": "functional matrix multiplies ignored", "conv2d": "functional convolutions ignored",
                  "linear": "functional linear layers ignored",
                  "MultiheadAttention": "a module with children: 0 (its out_proj never runs as a module)",
                  **_each(_NORMS, "weight and bias counted: N x 2C"),
                  **_each(_RECURRENT, "its weights and biases x N x T (the output's first two sizes)"),
                  **_each(_CELLS, "its weights and biases x N x H (the output's first two sizes, as for a sequence)"),
                  "Embedding": "its weight counted: N x V x D",
                  **_each(("scaled_dot_product_attention", "einsum", "bmm", "baddbmm", "mm", "addmm"),
                          "functional matrix products ignored")},
    "thop": {**_each(_BATCH_NORMS, "BatchNorm counted as 4 per element (2, doubled for the affine)"),
             **_each(("AvgPool1d", "AvgPool2d", "AvgPool3d"), "average pooling 1 per output element"),
             **_each(("AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d"),
                     "adaptive average pooling (window + 1) per output element"),
             **_each(("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"),
                     "transposed convolution counted over its output: numel(y) x C_in/g x k^2"),
             "Softmax": "3F - 1 per softmax of F features", "PReLU": "1 per element",
             "Upsample": "interpolation counted per output element",
             **_each(_NORMS, "normalisation counted as 2 per input element, doubled for the affine"),
             **_each(_RECURRENT, "thop's cell formula: (I + H)H + H per gate, biases and gate arithmetic, x N x T"),
             **_each(_CELLS, "thop's cell formula: (I + H)H + H per gate, biases and gate arithmetic, x N"),
             "MultiheadAttention": "counted as 0: thop has no rule for it"},
    "ptflops": {"Conv2d": "bias counted: N x C_out x H x W", "Conv1d": "bias counted: N x C_out x L",
                "Conv3d": "bias counted: N x C_out x D x H x W",
                "Linear": "bias counted: N x out",
                **_each(_BATCH_NORMS, "BatchNorm counted as 2 per element (affine)"),
                **_each(("ReLU", "ELU", "GELU", "PReLU"),
                        "counted twice, 2 per element: the module hook and the F.* call inside it"),
                **_each(("LeakyReLU", "ReLU6"), "1 per element"),
                **_each(_POOL_MODULES, "counted twice, 2 per input element: the module hook and the F.* call inside it"),
                **_each(_POOL_FUNCTIONS + ("relu", "elu", "gelu", "silu", "softmax"), "F.* call: 1 per input element"),
                **_each(tuple(f"{name}_with_indices" for name in _POOL_FUNCTIONS if "max" in name),
                        "F.max_pool*d called with return_indices=True: 1 per input element (a direct "
                        "F.max_pool2d_with_indices call, which ptflops does not patch, is 0)"),
                "LocalResponseNorm": "F.local_response_norm's x.mul(x), .mul(alpha), .add(k) and F.avg_pool3d",
                "interpolate": "F.interpolate counted 1 per output element",
                "add": "torch.add and x.add(y) counted 1 per element (x + y and x += y are not)",
                "mul": "torch.mul and x.mul(y) counted 1 per element (x * y is not)",
                "matmul": "torch.matmul and x.matmul(w) counted (x @ w is not)",
                **_each(("addmm", "baddbmm"), "torch.addmm, x.addmm(...) and torch.baddbmm counted as prod(mat1) x "
                                              "mat2.shape[-1] + numel(input): the input added, once a call for its "
                                              "one image"),
                "conv2d": "F.conv2d ignored", "linear": "F.linear ignored",
                "linear_cross_entropy": "the F.linear inside ignored (its chunked path's torch.mm and torch.mul calls, "
                                        "which ptflops patches, are not reproduced)",
                **_each(("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"),
                        "transposed convolution: bias counted, N x C_out x the output's positions"),
                "Upsample": "counted twice: module hook (one sample) and F.interpolate inside it",
                "MultiheadAttention": "ptflops's formula: Q scaling, projections (K and V as kdim^2, vdim^2), biases, "
                                      "per-head QKᵀ, softmax and AV, out-projection with bias",
                **_each(_NORMS, "normalisation 1 per input element, 2 with .affine (LayerNorm has none)"),
                **_each(_RECURRENT, "ptflops's formula: W_ih and W_hh elements, biases and gate arithmetic per step, "
                                    "x N x T, x 2 bidirectional"),
                **_each(_CELLS, "ptflops's formula: W_ih and W_hh elements, biases and gate arithmetic, x N"),
                **_each(("scaled_dot_product_attention", "einsum", "bmm", "baddbmm"),
                        "not patched by ptflops 0.7.5 when called this way"),
                "DeformConv2d": "ptflops's hook (torchvision loaded): prod(kernel) x (C_in x C_out/g + 24, + 1 given a "
                                "mask) x N x H_out x W_out, + bias",
                "deform_conv2d": "counted on its DeformConv2d module instead (ptflops's hook)",
                "Attention": "ptflops's hook for timm's Attention: N x [T*d*h (Q scaled) + h*(2*T*T*d + T*T)], "
                             "in place of its layers' counts"},
    "flops": {},
    "flop_counter": {**_each(sorted(NO_FORMULA), "flop_counter has no formula for it: 0"),  # (then the ones said
                     # more precisely)
                     "deform_conv2d": "torchvision's operation, not aten's: flop_counter has no formula for it, 0",
                     **_each(sorted(decompositions.COUNTED), "a matrix factorisation (LAPACK's): flop_counter has no "
                                                            "formula for it, 0"),
                     **_each(("linalg_matrix_power", "matrix_power"), "a negative power's inverse (linalg_inv_ex): "
                                                                      "flop_counter has no formula for it"),
                     "linear_cross_entropy": "PyTorch's chunked path is a custom operator, opaque to flop_counter: 0",
                     "matmul": "torch.matmul by a vector runs as aten.mv or aten.dot, which flop_counter has no "
                               "formula for: 0",
                     "einsum": "an einsum's pair whose contracted index has size 1 on a side runs as an element-wise "
                               "mul, which flop_counter does not count"},
}

_NORM_TEXTS = ("LayerNorm", "GroupNorm", "InstanceNorm")  # (how a norm layer's element-wise arithmetic begins)
_FUNCTION = "(custom autograd.Function)"  # fvcore's differences inside one are said of it, not of its operations
_UNUSED = "(result unused)"  # a row whose work reaches no output, which fvcore's trace drops
_UNHOOKED = "(called as .forward)"  # a module called as module.forward(x): no hook runs, the hook tools see nothing

# Where a tool's count of a type is not in WHY: what archcalc knows of the tool's rule, or that the
# difference is not explained.
UNEXPLAINED = "not explained: archcalc has no rule of this tool for it"


def _fallback(convention: str, records: list[LayerRecord], amount: int) -> str:
    functional = all(r.kind == OP for r in records)
    if convention == "fvcore" and all(r.formulas.get("elementwise", "").startswith(_NORM_TEXTS) for r in records):
        return WHY["fvcore"]["LayerNorm"]  # (a subclass of a norm: timm's LayerNormNoBias)
    if convention == "fvcore" and amount < 0 and all(r.formulas.get("output", "").startswith("padding='")
                                                     for r in records):
        return WHY["fvcore"]["Conv2d"]  # (a subclass of a convolution: Hugging Face's EfficientNetDepthwiseConv2d)
    if convention in ("fvcore", "flop_counter") and all(r.type.startswith(QUANTIZED_TYPES) for r in records):
        return "a quantized layer: its kernels (quantized::linear, conv2d, ...) have no formula there, 0"
    if convention == "torchinfo":
        return "functional operations ignored" if functional else \
            "a leaf module's weight and bias elements x N (x output H x W when its class name has 'Conv')"
    if convention == "ptflops" and not functional:
        patched = sorted({o.replace("torch.nn.functional.", "F.") for r in records for o, _, _ in r.inner
                          if o in ptflops_rules.FUNCTION_RULES})
        if patched:
            return f"the patched calls inside it are counted: {', '.join(patched)}"
    if convention in ("thop", "ptflops") and amount < 0:
        return f"counted as 0: {convention} counts only the torch.nn types it lists (exact type)" + \
            (" and no functional operation" if convention == "thop" else " and a list of F.* and torch.* calls")
    return UNEXPLAINED


@dataclass(frozen=True)
class ToolTotal:
    tool: str
    version: str
    total: int | None
    error: str = ""


def _version(package: str) -> str:
    if package == "thop":  # (ultralytics-thop, which Ultralytics' YOLO installs, writes its own thop module over thop's)
        with contextlib.suppress(PackageNotFoundError):
            return f"{version('ultralytics-thop')} of ultralytics-thop (archcalc's thop rules are thop 0.1.1's)"
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _attempt(tool: str, package: str, count: Callable[[], int]) -> ToolTotal:
    """One tool's total; its own failure (import, tracing, memory) is reported, not raised, and what
    it prints is kept off the terminal."""
    installed = _version(package)
    if installed == "not installed":
        return ToolTotal(tool, installed, None, f"pip install {package} to compare")
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ToolTotal(tool, installed, int(count()))
    except Exception as error:
        said = str(error) if isinstance(error, isolated.Failed) else f"{type(error).__name__}: {error}"
        return ToolTotal(tool, installed, None, with_hint(said.splitlines()[0] if said else type(error).__name__))
    finally:
        logging.disable(logging.NOTSET)


def _per_image(total: ToolTotal, batch: int) -> ToolTotal:
    """ptflops reports one image: say that its total was scaled to the batch."""
    if batch == 1 or total.total is None:
        return total
    return replace(total, version=f"{total.version} (one image x {batch})")


def run_tools(entry: ModelEntry, size, batch: int, input_dtypes=None) -> dict[str, ToolTotal]:
    """fvcore, thop and ptflops on real CPU tensors, torchinfo and flop_counter on the meta device (on the CPU
    where that fails: a kernel with no meta version, a value read, a device check). The inputs are the
    entry's: a size (random values), or its example inputs (a tuple of positional inputs, a list of images
    for a detector, a dict of keyword inputs), given to each tool as it takes them."""
    inputs = entry_inputs(entry, size, batch, input_dtypes)
    sized = inputs.sized

    def on(device: str):
        return build(entry, torch.device(device), torch.float32)

    def given(device: str) -> tuple[tuple, dict]:
        return inputs.make(torch.device(device), torch.float32)

    def positional(tool: str) -> tuple:
        args, kwargs = given("cpu")
        if kwargs:
            raise ValueError(f"{tool} takes positional inputs only: the keyword inputs ({', '.join(kwargs)}) "
                             f"cannot be given to it")
        return args

    def meta_else_cpu(run: Callable[[str], int]) -> int:
        # (any failure on meta: not every refusal names the device, SEW-D's masked_fill says "Expected `value` to be
        # on same device as `a`"; the CPU's own failure is the one reported)
        try:
            return run("meta")
        except Exception:
            return run("cpu")

    def fvcore() -> int:
        from fvcore.nn import FlopCountAnalysis

        counter = FlopCountAnalysis(on("cpu"), positional("fvcore"))
        counter.unsupported_ops_warnings(False)
        counter.uncalled_modules_warnings(False)
        return counter.total()

    def torchinfo(device: str) -> int:
        from torchinfo import summary

        args, kwargs = given(device)
        if args and kwargs:
            raise ValueError("torchinfo takes positional or keyword inputs, not both")
        data = kwargs or list(args)  # (a list: the forward's positional inputs, a detector's list of images one)
        return summary(on(device), input_data=data, device=device, verbose=0).total_mult_adds

    def thop() -> int:
        from thop import profile

        return profile(on("cpu"), positional("thop"), verbose=False)[0]

    def ptflops() -> int:
        # ptflops runs its input_constructor's input and divides what its module hooks count by that input's batch
        # (the first dimension of its first positional input; 1 for keyword inputs). A size: one image of random
        # values (its own is new_empty(), whatever the memory held: given to DeformConv2d's offsets as NaN or 1e30,
        # torchvision 0.26's kernel reads outside the map and the process dies), N x its total for the batch.
        from ptflops import get_model_complexity_info

        args, kwargs = given("cpu")
        if sized and len(args) == 1 and not kwargs:
            value = args[0][:1]  # (the first sample: its dtype, token ids inside the vocabulary)
        elif not sized and kwargs and not args:
            value = kwargs
        elif not sized and len(args) == 1 and not kwargs and len(args[0]) == 1:
            value = args[0]
        elif sized:
            raise ValueError("ptflops passes one input to the forward")
        else:
            raise ValueError("ptflops passes one input to the forward and divides its module counts by its batch: "
                             "give one positional input of a batch of one (one image), or keyword inputs")
        said = io.StringIO()  # on failure ptflops prints the model's error and returns None
        with contextlib.redirect_stdout(said):
            macs, _ = get_model_complexity_info(on("cpu"), tuple(inputs.shapes[0][1:]) if inputs.shapes else (1,),
                                                as_strings=False, print_per_layer_stat=False, verbose=False,
                                                input_constructor=lambda size: value)
        if macs is None:
            lines = said.getvalue().splitlines()
            raise RuntimeError(lines[1] if len(lines) > 1 else "ptflops could not run the model")
        return macs * (inputs.batch if sized else 1)

    def flop_counter(device: str) -> int:
        # (on the CPU with the math attention kernel, which the meta device runs: flop_counter has no formula for
        # the CPU's flash kernel and counts its attention 0, pytorch/pytorch#195460)
        from torch.nn.attention import SDPBackend, sdpa_kernel
        from torch.utils.flop_counter import FlopCounterMode

        model = on(device)
        args, kwargs = given(device)

        def math():
            return sdpa_kernel(SDPBackend.MATH) if device == "cpu" else contextlib.nullcontext()

        try:
            with torch.no_grad(), math(), FlopCounterMode(display=False) as counter:
                model(*args, **kwargs)
        except (AssertionError, RuntimeError) as error:  # (its module tracker under no_grad: "Expected gradient
            # function to be set", Hugging Face's Mamba; a forward that differentiates, a physics-informed network's:
            # "does not require grad"): with gradients on, as its user runs it
            if "gradient function" not in str(error) and "does not require grad" not in str(error):
                raise
            with math(), FlopCounterMode(display=False) as counter:
                model(*args, **kwargs)
        return counter.get_total_flops()

    ptflops_total = _attempt("ptflops", "ptflops", ptflops)
    return {
        "fvcore": _attempt("fvcore", "fvcore", lambda: isolated.run(fvcore)),  # (TorchScript's trace may abort)
        "torchinfo": _attempt("torchinfo", "torchinfo", lambda: meta_else_cpu(torchinfo)),
        "thop": _attempt("thop", "thop", thop),
        "ptflops": _per_image(ptflops_total, inputs.batch) if sized else ptflops_total,
        "flop_counter": _attempt("torch.utils.flop_counter", "torch", lambda: meta_else_cpu(flop_counter)),
    }


def differences(a: Analysis, convention: str) -> list[tuple[str, int]]:
    """(explanation, amount) for each layer type where the convention differs from the papers' MACs."""
    paper = a.by_convention.get("paper", {})
    other = a.by_convention.get(convention, {})
    doubled = convention in ("flop_counter", "flops")  # (their differences are from 2 x the papers' MACs)
    by_type: dict[str, int] = defaultdict(int)
    records: dict[str, list[LayerRecord]] = defaultdict(list)
    # (ptflops's modules with layers inside that it hooks itself, timm's Attention: it counts them in their place)
    hooked = {r.index: r.type for r in a.records if convention == "ptflops" and r.index in other
              and r.kind not in (LAYER, OP)}
    for r in a.records:
        delta = other.get(r.index, 0) - (2 if doubled else 1) * paper.get(r.index, 0)
        if delta:
            owner = _hooked_owner(r, a.records, hooked) if hooked else None
            parents = a.by_convention.parents(r) if convention in ("thop", "ptflops") and r.kind != OP and \
                isinstance(a.by_convention, Counts) else 1
            kind = f"{r.type} {_UNHOOKED}" if convention in ("thop", "torchinfo", "ptflops") and \
                isinstance(a.by_convention, Counts) and a.by_convention.unhooked(r) else \
                f"{r.inside} {_FUNCTION}" if r.inside and convention == "fvcore" else \
                f"{r.type} {_UNUSED}" if convention == "fvcore" and isinstance(a.by_convention, Counts) and \
                a.by_convention.dropped(r) else \
                f"{r.type} in {owner}" if owner else f"{r.type} held by {parents} parents" if parents > 1 else r.type
            by_type[kind] += delta
            records[kind].append(a.by_convention.with_inner(r) if isinstance(a.by_convention, Counts) else r)
    twice = [("every multiply-accumulate counted as 2 operations (x 2)", a.totals.macs)] if doubled else []
    if convention == "flops":
        return twice + [(f"element-wise work counted ({len(by_type)} layer types)", sum(by_type.values()))]
    why = WHY.get(convention, {})

    def explain(kind: str, amount: int) -> str:
        if " held by " in kind:
            k = kind.rsplit(" held by ", 1)[1].split()[0]
            return (f"a module that {k} parents hold: thop hooks it once from each and adds its count from each, "
                    f"{k} x {k} times" if convention == "thop" else
                    f"a module that {k} parents hold: ptflops adds its count (by its own rule) from each, {k} times")
        if " in " in kind and kind not in why:
            return f"left out: ptflops hooks the {kind.rsplit(' in ', 1)[1]} around it and counts that instead"
        if kind.endswith(_FUNCTION):
            return "one prim::PythonOp in TorchScript's trace, which fvcore does not count: nothing its forward runs"
        if kind.endswith(_UNHOOKED):
            return f"its forward was called as module.forward(x), not module(x), so no hook ran: {convention} " + \
                ("counts only the patched F.* calls inside it" if convention == "ptflops" else "counts it 0")
        if kind.endswith(_UNUSED):
            return "its result reaches no output (nor a buffer or an input written in place), so TorchScript's " \
                   "trace drops it as dead code and fvcore counts 0"
        return why[kind] if kind in why else _fallback(convention, records[kind], amount)

    return twice + sorted(((f"{t}: {explain(t, d)}", d) for t, d in by_type.items()), key=lambda item: -abs(item[1]))


def _hooked_owner(r: LayerRecord, records: tuple[LayerRecord, ...], hooked: dict[int, str]) -> str | None:
    """The type of the hooked module a layer's module hook is left out for (its ancestor), or None; an operation
    (a patched call) still counts."""
    if r.kind == OP:
        return None
    parent = r.parent
    while parent is not None:
        if parent in hooked:
            return hooked[parent]
        parent = records[parent].parent if parent < len(records) and records[parent].index == parent else None
    return None


def reconcile(entry: ModelEntry, size, batch: int, input_dtypes=None) -> tuple[Analysis, dict[str, ToolTotal]]:
    return (analyse(entry, size, batch=batch, inner=True, input_dtypes=input_dtypes),
            run_tools(entry, size, batch, input_dtypes))

