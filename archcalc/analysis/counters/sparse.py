"""Products with a sparse matrix (torch.sparse: COO and CSR layouts), as a graph network multiplies its adjacency:
the work is set by the stored values (nnz), not by the matrix's shape.

  sparse A (m x k, nnz stored values) @ dense B (k x n):   MACs = nnz*n   (each stored a_ij times row j of B)
  dense A (m x k) @ sparse B (k x n, nnz stored values):   MACs = m*nnz
  addmm, sparse.addmm: + one add per output element, as a dense addmm
  sparse @ sparse: the work is the pairs of stored values that meet, which their positions decide: not counted
The dense count of the same shapes (m*k*n) is what torch.utils.flop_counter and fvcore compute for aten::mm,
addmm, bmm and matmul whatever the layout (dense_macs); for torch.sparse.mm / sparse.addmm / hspmm
(aten::_sparse_mm, _sparse_addmm, hspmm) they have no formula: 0. The meta device has no sparse mm, so such a
model runs on the CPU (placement.py); archcalc's meta twin of a user's sparse buffer keeps its stored values' count
(twin.py), but one PyTorch moved there itself (.to("meta")) holds none: a product of it is not counted, said why.
Backward: as a dense product's, each gradient the forward's MACs (∂B = Aᵀ·∂Y over the stored values; a sparse A's
gradient kept to its pattern, one dot product a stored value).
"""

from __future__ import annotations

from functools import partial
from math import prod

import torch

from archcalc.analysis.counters.text import with_added
from archcalc.analysis.counting import Count, OpCall
from archcalc.errors import option
from archcalc.formulas.numbers import grouped

PRODUCTS = ("_sparse_mm", "_sparse_addmm", "hspmm", "smm", "sspaddmm")  # (torch.sparse's own: no tool counts them)
SPARSE = "sparse"  # (in a sparse product's MACs arithmetic: what the tools' conventions look for)
def _on_meta() -> str:
    return (f"a sparse matrix's stored values (nnz), which set the work, are lost on the meta device (its copy there "
            f"holds none): {option('device', 'cpu')} counts it")


def operands(call: OpCall, first: int = 0) -> tuple | None:
    """The two matrices of a product from positional argument ``first`` on, where one of them is sparse; else
    None."""
    pair = list(call.args[first:first + 2])
    pair += [v for k, v in call.kwargs.items() if k in ("input", "mat1", "mat2", "other", "mat")][:2 - len(pair)]
    if len(pair) < 2 or not all(isinstance(t, torch.Tensor) for t in pair) or \
            all(t.layout == torch.strided for t in pair):
        return None
    return tuple(pair)


def product(call: OpCall, pair: tuple, added: bool) -> Count:
    """nnz*n for a sparse A, m*nnz for a sparse B (the docstring above); ``added``: addmm's one add an output."""
    a, b = pair
    sparse_a, sparse_b = a.layout != torch.strided, b.layout != torch.strided
    if sparse_a and sparse_b:
        return Count(None, None, {}, "a product of two sparse matrices: its work is the pairs of stored values that "
                                     "meet, which their positions decide")
    held = a if sparse_a else b
    if held.dense_dim() or held.dim() > 3:
        return Count(None, None, {}, "a hybrid sparse tensor (dense dimensions in its values): no formula here")
    nnz = held._nnz()
    if held.device.type == "meta" and not nnz:
        return Count(None, None, {}, _on_meta())
    out = call.output
    other = (b.shape[-1] if b.dim() > 1 else 1) if sparse_a else prod(a.shape[:-1])
    macs = nnz * other
    adds = prod(out) if added else 0
    what = f"{nnz:,} stored values of sparse {'A' if sparse_a else 'B'} * " + (
        f"B's {other} columns" if sparse_a else f"A's {other} rows")
    return Count(macs, adds, partial(_text, what, macs, adds, out))


def _text(what: str, macs: int, adds: int, out: tuple) -> dict[str, str]:
    return with_added(f"{SPARSE}: {what} = {grouped(macs)}", out, adds)


def of_sparse(formulas) -> bool:
    """Whether a record's arithmetic is a sparse product's (product's own text)."""
    return formulas.get("macs", "").startswith(f"{SPARSE}: ")


def dense_macs(kind: str, inputs: tuple, output: tuple) -> int:
    """The MACs of a product of these shapes as if both were dense (m*k*n, a batch's too): the count of the tools
    whose formulas read shapes only (flop_counter's and fvcore's aten::mm, addmm, bmm, matmul)."""
    mat1 = inputs[1] if kind.startswith("add") or kind == "_sparse_addmm" else inputs[0]
    return prod(output) * (mat1[-1] if mat1 else 1)
