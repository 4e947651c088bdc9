"""Named counting conventions: how each tool counts, defined once, from its source and its output.
Each tool's rules live in a file of their own beside this one (fvcore.py, torchinfo.py, thop.py,
ptflops.py), each saying what the tool counts for convolution, linear layers, matrix products,
attention, normalisation and recurrence.

  paper        conv + linear + matmul + attention multiply-accumulates, bias excluded (the papers'
               "multiply-adds"): archcalc's MACs
  torchvision  the same count as paper: torchvision's per-model _ops metadata (ResNet-50 4.089, ViT-B/16 17.564)
  fvcore       fvcore 0.1.5's supported aten ops: conv, linear, matmul (unbroadcast), einsum, BatchNorm,
               LayerNorm/GroupNorm/InstanceNorm, adaptive_avg_pool2d, upsampling; attention by
               scaled_dot_product_attention and recurrence are not supported (0)
  torchinfo    torchinfo 1.8: per leaf module, its parameters' elements x N (x output H x W for "Conv"
               classes; x N x T for RNN weights); functional operations and attention ignored
  thop         thop 0.1.1 profile(): exact torch types only; conv and linear without bias, the norms 4 per
               element, average pooling, softmax, its own RNN cell formulas; attention and functional
               operations ignored
  ptflops      ptflops 0.7.5, pytorch backend: conv and linear with bias, norms, activations and pooling
               per element (counted again through the F.* call inside their modules); torch.add, torch.mul,
               torch.matmul; its own MultiheadAttention and RNN formulas
  flop_counter 2 x MACs: torch.utils.flop_counter's count (convolution, mm, addmm, bmm, baddbmm, attention;
               2 per multiply-add); no formula for matrix-vector products (mv, dot), addbmm, grouped_mm,
               bilinear, vecdot, affine_grid, cdist, pdist, conv_tbc, triangular solves, the matrix factorisations
               (inv, solve, det, cholesky, qr, ...: a negative matrix_power's inverse), matrix_exp, PyTorch's chunked
               F.linear_cross_entropy (a custom operator), torchvision's deform_conv2d and the quantized
               namespace's kernels (a quantized layer: QuantizedLinear, DynamicQuantizedLSTM, ...)
  flops        2 x MACs + every element-wise operation archcalc counts
calflops and DeepSpeed's profiler are not defined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Set
from torch import nn

from archcalc.analysis.counters import decompositions, sparse
from archcalc.analysis.counters.linear import bmm_macs, equation_of
from archcalc.analysis.packed import quantized_kernel
from archcalc.analysis.records import LAYER, OP, LayerRecord
from archcalc.analysis.tools import fvcore, ptflops, thop, torchinfo
from archcalc.analysis.tracer import layer_names

NAMES = ("paper", "torchvision", "fvcore", "torchinfo", "thop", "ptflops", "flop_counter", "flops")


def _paper(r: LayerRecord, module) -> int:
    return r.macs or 0


NO_FORMULA = {"mv", "dot", "vdot", "inner", "addmv",  # (vector products)
               "addbmm", "_grouped_mm", "grouped_mm", "bilinear", "Bilinear", "linalg_solve_triangular",
               "triangular_solve", "linalg_vecdot", "affine_grid", "cdist", "pdist", "conv_tbc",
               "deform_conv2d",  # (torchvision's: flop_counter knows aten's operations only)
               "linalg_matrix_exp", "matrix_exp",  # (its products run inside one aten operation, unseen)
               *sparse.PRODUCTS,  # (torch.sparse.mm, sparse.addmm, hspmm, ...: aten::_sparse_mm, ...)
               *decompositions.COUNTED}  # (LU, Cholesky, QR and the solves, inverses, determinants made from them)


def _flop_counter(r: LayerRecord, module) -> int:
    """2 per MAC, but for what torch.utils.flop_counter has no formula for: the matrix-vector and vector products
    (aten.mv, aten.dot: torch.matmul by a vector becomes one of them), addbmm, _grouped_mm, bilinear (one
    _trilinear kernel), vecdot (a product and a sum), affine_grid, cdist, pdist, conv_tbc and triangular solves; of an
    einsum, the products PyTorch runs as bmm (linear.bmm_macs: not a size-1 contraction's mul, not a dot); nor for
    torchvision's deform_conv2d, not an aten operation, the matrix factorisations, PyTorch's chunked
    F.linear_cross_entropy (a custom operator), and a quantized layer's kernels (quantized::linear, ...)."""
    if r.type in NO_FORMULA or (r.type == "matmul" and len(r.input_shapes) > 1 and len(r.input_shapes[1]) == 1) or \
            quantized_kernel(r.type, module):
        return 0
    if sparse.of_sparse(r.formulas):  # (mm of a sparse matrix: its shapes')
        return 2 * sparse.dense_macs(r.type, r.input_shapes, r.output_shapes[0])
    if r.type == "linear_cross_entropy" and "chunked path" in r.formulas.get("macs", ""):
        return 0  # (PyTorch's chunked F.linear_cross_entropy is a custom operator, opaque to flop_counter)
    if r.type in ("linalg_matrix_power", "matrix_power") and r.formulas.get("macs", "").startswith("A⁻¹"):
        return 2 * (r.macs - decompositions.inverse_count(r.input_shapes[0]).macs)  # (its products, not the inverse)
    equation = equation_of(r.formulas.get("macs", "")) if r.type == "einsum" and r.formulas else None
    if equation is not None:
        return 2 * bmm_macs(equation, r.input_shapes)
    return 2 * (r.macs or 0)


def _flops(r: LayerRecord, module) -> int:
    return 2 * (r.macs or 0) + (r.elementwise or 0)


COUNTERS: dict[str, Callable[[LayerRecord, object], int]] = {
    "paper": _paper, "torchvision": _paper, "fvcore": fvcore.count, "torchinfo": torchinfo.count,
    "thop": thop.count, "ptflops": ptflops.count, "flop_counter": _flop_counter, "flops": _flops,
}


def counts(model: nn.Module, records: tuple[LayerRecord, ...],
           twins: Mapping[tuple[str, int], LayerRecord] | None = None,
           shared: Mapping[int, int] | None = None,
           unused: Set[tuple[str, int]] = frozenset(),
           direct: Set[tuple[str, int]] = frozenset(), images: int = 1) -> dict[str, dict[int, int]]:
    """convention -> record index -> its count (records that count nothing are left out).
    ptflops counts a layer's own F.* calls: ``twins`` are the records of a trace that kept them, by name and call
    number, and ``images`` how many times a twin's count is taken: a trace of one sample, N times (ptflops's figure
    for the batch: engine.analyse_module), or of these inputs, once. ``shared``: _shared(model), where it is known.
    ``unused``: the rows (name, call) whose work never reaches the output, which fvcore's TorchScript trace
    drops (its dead-code elimination: an unused pooler, the branches a wrapper leaves out of its output).
    ``direct``: the rows (name, call) of modules whose forward was called as ``module.forward(x)``, which runs
    no hook: thop and torchinfo count 0 for them, ptflops only the patched calls inside."""
    names = layer_names(model)
    modules = {names[id(m)]: m for m in model.modules()}
    twins = twins or {}
    result: dict[str, dict[int, int]] = {name: {} for name in NAMES}
    rules = ptflops.module_rules()  # (a module with children that ptflops hooks: its total leaves theirs out)
    hooked = [name + "." for name, m in modules.items() if name and type(m) in rules and _has_children(m)]
    shared = _shared(model) if shared is None else shared
    for r in records:
        module = modules.get(r.name) if r.kind != OP else None
        container = r.kind not in (LAYER, OP) and (module is None or _has_children(module))
        if container and (module is None or r.name + "." not in hooked):
            continue
        unhooked = (r.name, r.call) in direct
        for name, counter in COUNTERS.items():
            if name == "ptflops":
                if r.kind == OP and _kept_activation(r, modules):
                    continue
                shadowed = unhooked or any(r.name.startswith(prefix) for prefix in hooked)
                twin = twins.get((r.name, r.call))  # (none: a row that one sample's trace does not make, as it is)
                value = ptflops.count(twin or r, module, shadowed, shared.get(id(module), 1), rules) * \
                    (images if twin is not None else 1)
            elif container or (name == "fvcore" and (r.name, r.call) in unused):  # (a module only ptflops counts
                continue  # as one; a row TorchScript's trace drops)
            elif unhooked and name in ("thop", "torchinfo"):
                continue
            elif name == "thop":
                value = thop.count(r, module, shared.get(id(module), 1))
            else:
                value = counter(r, module)
            if value:
                result[name][r.index] = value
    return result


def _shared(model: nn.Module) -> dict[int, int]:
    """id -> how many paths of the module tree reach a module held by several parents (CoaT's convolutional
    position encodings, shared by its serial and parallel blocks): thop and ptflops add up a module's count
    (every call of it) from each parent that holds it, so once a path; thop also hooks it once a path, so each
    call counts once a path too. Only those above 1."""
    paths: dict[int, int] = {}

    def walk(module: nn.Module) -> None:
        for child in module.children():  # (each child once a parent, as named_children gives them)
            paths[id(child)] = paths.get(id(child), 0) + 1
            walk(child)

    walk(model)
    return {key: n for key, n in paths.items() if n > 1}


def _has_children(module: nn.Module) -> bool:
    return any(True for _ in module.children())


def _kept_activation(r: LayerRecord, modules: Mapping[str, nn.Module]) -> bool:
    """An F.* function called through an attribute of the module that calls it: bound before ptflops patched F.*."""
    return ptflops.held(modules.get(r.name.rpartition(".")[0]), r.origin)


class Counts(Mapping):
    """counts(), worked out the first time a convention is asked for: most views need none."""

    def __init__(self, model: nn.Module, records: tuple[LayerRecord, ...],
                 with_inner: Callable[[], tuple[tuple[LayerRecord, ...], int]] | None = None,
                 unused: Callable[[], Set[tuple[str, int]]] | None = None,
                 direct: Set[tuple[str, int]] = frozenset()):
        """``with_inner``: the records with each layer's own torch calls, and the number of samples their count is
        taken of (counts' twins and images); None: ``records`` have them."""
        self._model, self._records, self._with_inner, self._unused = model, records, with_inner, unused
        self._direct = direct
        self._dropped: Set[tuple[str, int]] = frozenset()
        self._counts: dict[str, dict[int, int]] | None = None
        self._twins: dict | None = None
        self._paths: dict[str, int] = {}

    def _all(self) -> dict[str, dict[int, int]]:
        if self._counts is None:
            traced, images = self._with_inner() if self._with_inner is not None else (self._records, 1)
            self._twins = {(r.name, r.call): r for r in traced}
            self._dropped = frozenset(self._unused()) if self._unused is not None else frozenset()
            shared = _shared(self._model)
            self._counts = counts(self._model, self._records, self._twins, shared, self._dropped, self._direct,
                                  images)
            self._paths = {name: shared[key] for key, name in layer_names(self._model).items() if key in shared}
            self._model = self._with_inner = self._unused = None
        return self._counts

    def dropped(self, r: LayerRecord) -> bool:
        """Whether TorchScript's trace drops the row, its work reaching no output (fvcore counts it 0)."""
        self._all()
        return (r.name, r.call) in self._dropped

    def unhooked(self, r: LayerRecord) -> bool:
        """Whether the row's module was called as ``module.forward(x)``, which runs no hook."""
        return (r.name, r.call) in self._direct

    def parents(self, r: LayerRecord) -> int:
        """How many parents hold the record's module (1 but for a shared module: thop and ptflops count it
        once a parent)."""
        self._all()
        return self._paths.get(r.name, 1)

    def with_inner(self, r: LayerRecord) -> LayerRecord:
        """The record with its layer's own torch calls (from the second trace: of one sample, or of this batch)."""
        self._all()
        return self._twins.get((r.name, r.call), r)

    def __getitem__(self, name: str) -> dict[int, int]:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())
