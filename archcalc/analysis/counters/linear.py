"""Linear layers and every matrix product: nn.Linear, F.linear, matmul / @, mm, bmm, mv, dot, addmm,
baddbmm, addbmm, addmv, grouped_mm (a mixture of experts'), einsum.

Symbols: a product of (..., M, K) by (..., K, N) gives (..., M, N) after broadcasting the batch dims.
  Linear:   MACs = rows*n_in*n_out, rows = the product of the input's leading dims (N, or N*L tokens)
  matmul:   MACs = (elements of the broadcast output)*K: each output is a dot product of K terms
  addmm, baddbmm, addmv:  the product's MACs, + 1 add per output for the added input (element-wise)
  grouped_mm:  each row of A by its group's K x N matrix: MACs = (outputs)*K (flop_counter has no formula)
  einsum:   each pairwise contraction costs the product of the sizes of every index it multiplies
            (indices summed within one operand are summed first, element-wise), operands taken in
            the order PyTorch contracts them (left to right; opt_einsum's path when torch uses it)
  tensordot: MACs = (outputs)*K, K the product of the contracted dimensions
  multi_dot, chain_matmul:  the products in the order PyTorch chooses (the cheapest, by the matrix-chain
            recurrence), each (rows)*K*(columns)
  Bilinear: y_k = x1ᵀ A_k x2 + b_k, as PyTorch computes it (_trilinear, one k at a time): x1ᵀ A_k, then by x2:
            MACs = N*out*in2*(in1 + 1); a bias adds N*out
  vecdot:   a dot product of K terms per output;  matrix_power: A^k by PyTorch's squarings and products, n^3 each
            (k < 0: A⁻¹ first, as decompositions.py counts linalg.inv)
  affine_grid:  every output point's (x, y, 1) by θᵀ: points*3*2 (3-D: points*4*3)
  cdist, pdist (p = 2):  per pair of rows, M squared differences summed: pairs*M
  cov, corrcoef:  X·Xᵀ of the centred observations, V*V*O for V variables of O observations
  solve_triangular:  X = A⁻¹B for a triangular n x n A, by substitution: x_i = (b_i - Σ_j<i A_ij x_j) / A_ii,
            MACs = (right-hand sides)*n(n-1)/2, + n divisions each (none where A is unitriangular)
This is torch.utils.flop_counter's mm / addmm / bmm / baddbmm count / 2, whatever the broadcasting
(flop_counter has no formula for addbmm, grouped_mm, bilinear, vecdot, affine_grid, cdist, pdist and triangular
solves: 0).
Backward: for Y = A·B, ∂A = ∂Y·Bᵀ and ∂B = Aᵀ·∂Y, each the forward's MACs, when that operand needs a
gradient (a Linear's ∂x not for a first layer, its ∂W when trainable); an einsum's each pairwise product alike.
A Bilinear's ∂x1, ∂A and ∂x2 (_trilinear again, each k): N*out*in1*in2 each.
A triangular solve's (PyTorch's linalg_solve_triangular_backward): ∂B = (Aᴴ)⁻¹∂X, a solve as the forward, made
whenever either needs a gradient; ∂A = -∂B·Xᴴ, a product of n*n*k per matrix, kept to A's triangle.
"""

from __future__ import annotations

from functools import partial
from math import prod
from typing import NamedTuple

from torch import nn

from archcalc.analysis.counters import sparse
from archcalc.analysis.counters.decompositions import inverse_count
from archcalc.analysis.counters.text import bias_formula, tensor_shape, with_added
from archcalc.analysis.counting import (GRAD_MODULES, GRAD_OPS, MODULES, NOT_COUNTED, OPS, Count, ModuleCall, Needs,
                                       OpCall, gradients, own_tangent, paired, repeated, tangent_products)
from archcalc.analysis.shapes import elements_text
from archcalc.formulas.numbers import grouped
from archcalc.formulas.params import linear_params


def linear_count(rows: int, n_in: int, n_out: int, out: tuple, bias: bool, text) -> Count:
    """MACs = rows*n_in*n_out; a bias adds one per output element."""
    macs = rows * n_in * n_out
    elementwise = prod(out) if bias else 0
    return Count(macs, elementwise, partial(text, rows, n_in, n_out, out, macs, elementwise))


def product_count(out: tuple, inner: int, added: int = 0) -> Count:
    """MACs = (outputs)*K; ``added``: element-wise adds of an added input (addmm's)."""
    macs = prod(out) * inner
    return Count(macs, added, partial(_product_text, out, inner, macs, added))


def _product_text(out: tuple, inner: int, macs: int, added: int) -> dict[str, str]:
    return with_added(f"{elements_text(out)}*{inner} = {grouped(macs)}", out, added)


# -- nn.Linear and F.linear ------------------------------------------------------------------

@MODULES.register(nn.Linear)
def linear(call: ModuleCall) -> Count:
    m = call.module
    return linear_count(prod(call.input[:-1]), m.in_features, m.out_features, call.output, m.bias is not None,
                        partial(_linear_text, m))


def _linear_text(m, rows, n_in, n_out, out, macs, elementwise) -> dict[str, str]:
    return {
        "params": str(linear_params(n_in, n_out, m.bias is not None)),
        "macs": f"{rows}*{n_in}*{n_out} = {grouped(macs)}",
        **bias_formula(out, elementwise),
    }


@OPS.register("linear")
def linear_op(call: OpCall) -> Count:
    weight = tensor_shape(call.arg(1, "weight"))
    n_out, n_in = (weight[0], weight[1]) if len(weight) == 2 else (1, weight[0])
    return linear_count(prod(call.inputs[0][:-1]), n_in, n_out, call.output, call.arg(2, "bias") is not None,
                        _linear_op_text)


def _linear_op_text(rows, n_in, n_out, out, macs, elementwise) -> dict[str, str]:
    return {"macs": f"{rows}*{n_in}*{n_out} = {grouped(macs)}"}


# -- matrix products ---------------------------------------------------------------------------

@OPS.register("matmul", "mm", "bmm", "mv", "dot", "vdot", "inner")
def matmul(call: OpCall) -> Count:
    """K is the first operand's last dimension (a vector's only one); the output holds the broadcast batch. A
    sparse operand: its stored values' products (sparse.py)."""
    pair = sparse.operands(call)
    if pair is not None:
        return sparse.product(call, pair, added=False)
    return product_count(call.output, call.inputs[0][-1] if call.inputs[0] else 1)


@OPS.register("addmm", "baddbmm", "addmv", "addbmm")
def addmm(call: OpCall) -> Count:
    """input + mat1 @ mat2 (beta, alpha scalings folded into the adds): the product's MACs and one add per
    output (addbmm also sums its batch of products: one more add per product element)."""
    pair = sparse.operands(call, 1)
    if pair is not None:
        return sparse.product(call, pair, added=True)
    mat1, out = call.inputs[1], call.output
    inner = mat1[-1]
    if call.name == "addbmm":  # sum over the batch of b (M, K) @ (K, N) products
        macs_out = (mat1[0], *out)
        count = product_count(macs_out, inner, prod(out) + prod(macs_out) - prod(out))
        return count
    return product_count(out, inner, prod(out))


@OPS.register(*sparse.PRODUCTS)
def sparse_product(call: OpCall) -> Count:
    """torch.sparse.mm, sparse.addmm, hspmm, smm, sspaddmm: a sparse matrix's stored values' products."""
    added = call.name in ("_sparse_addmm", "sspaddmm")
    pair = sparse.operands(call, 1 if added else 0)
    return sparse.product(call, pair, added) if pair is not None else NOT_COUNTED


@OPS.register("_grouped_mm", "grouped_mm")
def grouped_mm(call: OpCall) -> Count:
    """A mixture of experts' products (torch._grouped_mm, F.grouped_mm): each row of A by its group's matrix.
    (M, K) by (G, K, N), rows split by ``offs``; (G, M, K) by (G, K, N); (G, M, K) by (K, N), columns split:
    MACs = (outputs)*K, every row counted once (offs[-1] = M, as a router's sorted tokens give it). (M, K) by
    (K, N) with K split into G groups, giving (G, M, N): MACs = M*K*N. An added bias: one add per output."""
    a, b, out = call.inputs[0], call.inputs[1], call.output
    added = prod(out) if call.arg(3, "bias") is not None else 0
    if len(a) == 2 and len(b) == 2:
        return product_count((a[0], b[1]), a[1], added)
    return product_count(out, a[-1], added)


@OPS.register("tensordot")
def tensordot(call: OpCall) -> Count:
    """torch.tensordot(a, b, dims): a's free dimensions by b's, over K = the product of the contracted ones
    (reshaped to one matrix product, as PyTorch does)."""
    a, dims = call.inputs[0], call.arg(2, "dims", 2)
    if isinstance(dims, int):
        inner = prod(a[len(a) - dims:])
    else:  # (a's dimensions, b's): given as two lists, or a tensor of them
        first = dims[0].tolist() if hasattr(dims[0], "tolist") else dims[0]
        inner = prod(a[d] for d in ([first] if isinstance(first, int) else first))
    return product_count(call.output, inner)


class Product(NamedTuple):
    """One product of a chain: the operands' positions on each side, and its (rows, K, columns)."""
    left: frozenset
    right: frozenset
    sizes: tuple[int, int, int]


@OPS.register("linalg_multi_dot", "chain_matmul")
def multi_dot(call: OpCall) -> Count:
    """torch.linalg.multi_dot / torch.chain_matmul: the products in PyTorch's order (multi_dot_impl: for three,
    (AB)C unless A(BC) is cheaper; for more, the matrix-chain recurrence), each rows*K*columns."""
    steps = chain(call.inputs)
    macs = sum(prod(step.sizes) for step in steps)
    parts = " + ".join("*".join(map(str, step.sizes)) for step in steps)
    return Count(macs, 0, {"macs": f"{parts or 'one matrix'} = {grouped(macs)}"})


def chain(shapes: tuple) -> list[Product]:
    """The matrix products of a chain (a first vector a row, a last one a column), cheapest first-found order."""
    matrices = [tuple(s) for s in shapes]
    if len(matrices[0]) == 1:
        matrices[0] = (1, matrices[0][0])
    if len(matrices[-1]) == 1:
        matrices[-1] = (matrices[-1][0], 1)
    dims = [matrices[0][0]] + [m[1] for m in matrices]  # matrix i is dims[i] x dims[i + 1]
    n = len(matrices)
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = None
            for k in range(i, j):
                q = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or q < cost[i][j]:
                    cost[i][j], split[i][j] = q, k
    if n == 3:  # (multi_dot_impl: its own comparison for three, (AB)C on a tie)
        a, b, c, d = dims
        split[0][2] = 1 if a * c * (b + d) <= b * d * (a + c) else 0
    steps: list[Product] = []

    def walk(i: int, j: int) -> None:
        if i == j:
            return
        k = split[i][j]
        walk(i, k)
        walk(k + 1, j)
        steps.append(Product(frozenset(range(i, k + 1)), frozenset(range(k + 1, j + 1)),
                          (dims[i], dims[k + 1], dims[j + 1])))

    walk(0, n - 1)
    return steps


@MODULES.register(nn.Bilinear)
def bilinear_module(call: ModuleCall) -> Count:
    m = call.module
    return bilinear_count(call.inputs[0], m.in1_features, m.in2_features, m.out_features, m.bias is not None,
                          f"weight {m.out_features}*{m.in1_features}*{m.in2_features}"
                          + (f" + bias {m.out_features}" if m.bias is not None else ""))


@OPS.register("bilinear")
def bilinear_op(call: OpCall) -> Count:
    out, n_in1, n_in2 = tensor_shape(call.arg(2, "weight"))
    return bilinear_count(call.inputs[0], n_in1, n_in2, out, call.arg(3, "bias") is not None, "")


def bilinear_count(x1: tuple, n_in1: int, n_in2: int, n_out: int, bias: bool, params: str) -> Count:
    """y_k = x1ᵀ A_k x2 + b_k, PyTorch's way (_trilinear, one k at a time: x1ᵀ A_k, then that by x2)."""
    rows = prod(x1[:-1])
    macs, adds = rows * n_out * n_in2 * (n_in1 + 1), rows * n_out if bias else 0
    text = {"macs": f"{rows}*{n_out}*{n_in2}*({n_in1}+1) = {grouped(macs)}"}
    if params:
        text["params"] = f"{params} = {grouped(n_out * n_in1 * n_in2 + (n_out if bias else 0))}"
    if adds:
        text["elementwise"] = f"bias: {rows}*{n_out} adds = {grouped(adds)}"
    return Count(macs, adds, text)


@OPS.register("linalg_vecdot")
def vecdot(call: OpCall) -> Count:
    """torch.linalg.vecdot(x, y, dim): a dot product of K terms per output (PyTorch runs it as a product and a
    sum, which flop_counter does not count)."""
    dim = call.kwargs.get("dim", -1)
    return product_count(call.output, call.inputs[0][dim])


@OPS.register("linalg_matrix_power", "matrix_power")
def matrix_power(call: OpCall) -> Count:
    """A^k by PyTorch's products (linalg_matrix_power): A·A for 2, (A·A)·A for 3, else by the binary digits of
    k: a squaring for each digit after the first, a product for each 1 digit after the first; n^3 MACs each a
    matrix. k = 0, 1: no product; k < 0 inverts A first (decompositions.inv: LU and n right-hand sides), then
    raises A⁻¹ to |k|."""
    k, shape = call.arg(1, "n"), call.inputs[0]
    if not isinstance(k, int):
        return NOT_COUNTED
    products = matrix_power_products(abs(k))
    each = prod(shape) * shape[-1]
    macs = products * each
    text = f"{products} products of {elements_text(shape)}*{shape[-1]}"
    if k >= 0:
        return Count(macs, 0, {"macs": f"{text} = {grouped(macs)}"})
    inverse = inverse_count(shape)
    total = inverse.macs + macs
    return Count(total, inverse.elementwise,
                 lambda: {"macs": f"A⁻¹ ({inverse.text()['macs']}) + {text} = {grouped(total)}",
                          "elementwise": f"A⁻¹: {inverse.text()['elementwise']}"})


def matrix_power_products(k: int) -> int:
    if k <= 1:
        return 0
    if k <= 3:
        return k - 1
    return (k.bit_length() - 1) + (bin(k).count("1") - 1)


@OPS.register("affine_grid")
def affine_grid(call: OpCall) -> Count:
    """F.affine_grid(θ, size): every output point's coordinates (x, y, 1) by θᵀ: (points)*3*2 in 2-D,
    (points)*4*3 in 3-D."""
    theta, size = call.inputs[0], call.arg(1, "size")
    rows, columns = theta[-1], theta[-2]
    points = size[0] * prod(size[2:])
    macs = points * rows * columns
    return Count(macs, 0, {"macs": f"{size[0]}*{'*'.join(map(str, size[2:]))} points * {rows}*{columns} = "
                                   f"{grouped(macs)}"})


# -- distances --------------------------------------------------------------------------------

@OPS.register("cdist", "pdist")
def distance(call: OpCall) -> Count:
    """torch.cdist(x1, x2, p) between every row of x1 and of x2, F.pdist(x, p) between every pair of rows of x:
    for p = 2, per pair of rows of M coordinates, M differences (element-wise), their squares summed (M MACs)
    and a root; for another p, M differences, powers and adds (3 per coordinate) and a root."""
    pairs, width = prod(call.output), call.inputs[0][-1]
    p = call.arg(2 if call.name == "cdist" else 1, "p", 2.0)
    if p == 2:
        macs, elementwise = pairs * width, pairs * (width + 1)
        text = {"macs": f"{grouped(pairs)} pairs * {width} squares summed = {grouped(macs)}",
                "elementwise": f"{grouped(pairs)} pairs * ({width} differences + a root) = {grouped(elementwise)}"}
    else:
        macs, elementwise = 0, pairs * (3 * width + 1)
        text = {"elementwise": f"{grouped(pairs)} pairs * (3*{width} + a root) = {grouped(elementwise)}"}
    return Count(macs, elementwise, text)


# -- covariance -------------------------------------------------------------------------------------------------

@OPS.register("cov", "corrcoef")
def covariance(call: OpCall) -> Count:
    """torch.cov(X) for V variables of O observations (X: V x O, or a vector), as ATen's cov runs it: the mean
    of each variable (V*O adds, V divisions), X minus it (V*O), X·Xᵀ (V*V*O MACs), divided by O - correction
    (V*V). corrcoef: then the standard deviations, the square roots of the diagonal (V), C divided by them on
    each side and clipped to [-1, 1] (3*V*V). With observation weights (fweights, aweights): no formula here."""
    if call.kwargs.get("fweights") is not None or call.kwargs.get("aweights") is not None:
        return Count(None, None, {}, "cov with observation weights: no formula here")
    x = call.inputs[0]
    v, o = (1, x[0]) if len(x) == 1 else (x[0], x[1])
    macs = v * v * o
    elementwise = 2 * v * o + v + v * v
    text = f"mean {v}*{o} + {v}, centred {v}*{o}, divided {v}*{v}"
    if call.name == "corrcoef":
        elementwise += v + 3 * v * v
        text += f", square roots {v}, two divisions and the clip 3*{v}*{v}"
    return Count(macs, elementwise, {"macs": f"X·Xᵀ {v}*{v}*{o} = {grouped(macs)}",
                                     "elementwise": f"{text} = {grouped(elementwise)}"})


# -- triangular solves ------------------------------------------------------------------------

@OPS.register("linalg_solve_triangular", "triangular_solve")
def solve_triangular(call: OpCall) -> Count:
    """torch.linalg.solve_triangular(A, B, upper=, left=, unitriangular=) and the older
    torch.triangular_solve(B, A, upper, transpose, unitriangular): the gated DeltaNet's chunk solve (Qwen3-Next,
    unitriangular). Each right-hand side (a column of B, a row where left=False) costs n(n-1)/2 MACs and, unless
    A's diagonal is ones, n divisions."""
    legacy = call.name == "triangular_solve"
    a = call.inputs[1] if legacy else call.inputs[0]
    unit = bool(call.arg(4, "unitriangular", False) if legacy else call.kwargs.get("unitriangular", False))
    n, out = a[-1], call.output
    sides = prod(out) // n if n else 0
    macs, divisions = sides * n * (n - 1) // 2, 0 if unit else prod(out)
    return Count(macs, divisions, partial(_solve_text, sides, n, macs, divisions))


def _solve_text(sides: int, n: int, macs: int, divisions: int) -> dict[str, str]:
    text = {"macs": f"{sides} right-hand sides * {n}*{n - 1}/2 = {grouped(macs)}"}
    text["elementwise"] = (f"1 division per unknown: {sides}*{n} = {grouped(divisions)}" if divisions else
                           "unitriangular: no division")
    return text


# -- einsum -------------------------------------------------------------------------------------

def _equation(call: OpCall) -> str | None:
    """An einsum's equation, given first or by keyword (None in the sublist form)."""
    equation = call.args[0] if call.args and isinstance(call.args[0], str) else call.kwargs.get("equation")
    return equation if isinstance(equation, str) else None


@OPS.register("einsum")
def einsum(call: OpCall) -> Count:
    equation = _equation(call)
    if equation is None:
        return Count(None, None, {}, "einsum in its sublist form: not counted")
    steps, elementwise = contraction(equation, call.inputs)
    macs = sum(prod(step.sizes.values()) for step in steps)
    return Count(macs, elementwise, partial(_einsum_text, equation, steps, macs, elementwise))


def _einsum_text(equation: str, steps: list, macs: int, elementwise: int) -> dict[str, str]:
    if steps:
        parts = [f"{pair} {'*'.join(f'{k}{v}' for k, v in sizes.items()) or '1'}" for pair, sizes, *_ in steps]
        text = {"macs": f"'{equation}': " + " + ".join(parts) + f" = {grouped(macs)}"}
    else:
        text = {"macs": f"'{equation}': no index contracted between operands = 0"}
    if elementwise:
        text["elementwise"] = (f"element-wise products, and indices summed within one operand: "
                               f"{grouped(elementwise)}")
    return text


def _labels(equation: str, shapes: tuple) -> tuple[list[list[str]], list[str]]:
    """Each operand's index letters (an ellipsis written out as one letter per dimension it covers) and
    the output's (implicit output: the letters used once, in alphabetical order)."""
    equation = equation.replace(" ", "")
    left, arrow, right = equation.partition("->")
    terms = left.split(",")
    ellipsis_rank = max((len(s) - (len(t) - 3) for t, s in zip(terms, shapes) if "..." in t), default=0)
    broadcast = [chr(0x3B1 + i) for i in range(ellipsis_rank)]  # α, β, ... for the ellipsis's dims

    def expand(term: str, rank: int | None) -> list[str]:
        if "..." not in term:
            return list(term)
        before, after = term.split("...")
        covered = (rank - len(before) - len(after)) if rank is not None else ellipsis_rank
        return list(before) + broadcast[ellipsis_rank - covered:] + list(after)

    operands = [expand(t, len(s)) for t, s in zip(terms, shapes)]
    if arrow:
        output = expand(right, None)
    else:
        counts: dict[str, int] = {}
        for labels in operands:
            for x in labels:
                counts[x] = counts.get(x, 0) + 1
        output = broadcast + sorted(x for x, c in counts.items() if c == 1 and x not in broadcast)
    return operands, output


class Step(NamedTuple):
    """One pairwise product of an einsum: its name ('#1#2', '(#1#2)#3'), {index: size}, the original
    operands (positions) on each side, and the indices it contracts with their size on each side."""

    pair: str
    sizes: dict[str, int]
    left: frozenset
    right: frozenset
    contracted: dict[str, tuple[int, int]] = {}  # index -> its size on each side


def equation_of(text: str) -> str | None:
    """An einsum's equation, as its row's arithmetic opens ("'bij,bjk->bik': ...")."""
    return text[1:text.index("'", 1)] if text.startswith("'") and "'" in text[1:] else None


def bmm_macs(equation: str, shapes: tuple) -> int:
    """The MACs of an einsum's products that PyTorch runs as batched matrix products, which is what
    torch.utils.flop_counter counts: contraction()'s products, but for a pair whose every contracted index has
    size 1 on a side (ATen sums the other side first and multiplies element-wise, which flop_counter does not
    count: Longformer's sliding-window einsum), and without the one-sided size-1 indices where others remain."""
    total = 0
    for step in contraction(equation, shapes)[0]:
        one_sided = {x for x, (m, n) in step.contracted.items() if m == 1 or n == 1}
        if len(one_sided) < len(step.contracted):
            total += prod(n for x, n in step.sizes.items() if x not in one_sided)
    return total


def contraction(equation: str, shapes: tuple) -> tuple[list[Step], int]:
    """The pairwise products PyTorch's einsum makes, and the element-wise work: indices summed within a
    single operand before its product, and the pairs with no index to contract, which PyTorch multiplies
    element-wise."""
    operands, output = _labels(equation, shapes)
    size: dict[str, int] = {}
    for labels, shape in zip(operands, shapes):
        for x, n in zip(labels, shape):
            size[x] = max(size.get(x, 1), n)
    keep = set(output)
    pending = [(f"#{i + 1}", dict(zip(labels, shape)), shape, frozenset((i,)))  # (index: its size there)
               for i, (labels, shape) in enumerate(zip(operands, shapes))]
    summed = 0

    def needed_elsewhere(i: int, j: int | None) -> set:
        """The output's indices and those another operand holds; one held only as 1 (broadcast) does not keep
        an index from being contracted now, as in ATen."""
        rest = set(keep)
        for k, (_, labels, _, _) in enumerate(pending):
            if k != i and k != j:
                rest.update(x for x, n in labels.items() if n > 1)
        return rest

    if len(pending) == 1:
        _, labels, shape, _ = pending[0]
        return [], prod(shape) - prod(size[x] for x in labels if x in keep) if set(labels) - keep else 0
    steps = []
    pairs, at_front = _order(equation, shapes, len(pending))
    for i, j in pairs:
        (name_a, a, _, from_a), (name_b, b, _, from_b) = pending[i], pending[j]
        rest = needed_elsewhere(i, j)
        # an index in one operand only, needed neither later nor in the output, is summed there first
        for labels, other in ((a, b), (b, a)):
            alone = [x for x in labels if x not in rest and x not in other]
            if alone:
                summed += prod(labels.values()) - prod(n for x, n in labels.items() if x not in alone)
                for x in alone:
                    labels.pop(x)
        multiplied = {x: max(a.get(x, 1), b.get(x, 1)) for x in dict.fromkeys([*a, *b])}
        result = {x: n for x, n in multiplied.items() if x in rest}
        contracted = {x: (n, b[x]) for x, n in a.items() if x in b and x not in rest}
        if contracted:  # an index contracted: a batched matrix product
            steps.append(Step(f"{name_a}{name_b}", multiplied, from_a, from_b, contracted))
        else:  # nothing to contract: PyTorch multiplies element-wise (outer or Hadamard product)
            summed += prod(multiplied.values())
        for k in sorted((i, j), reverse=True):
            pending.pop(k)
        made = (f"({name_a}{name_b})", result, tuple(result.values()), from_a | from_b)
        pending.insert(0 if at_front else len(pending), made)
    return steps, summed


def _order(equation: str, shapes: tuple, n: int) -> tuple[list[tuple[int, int]], bool]:
    """The pairs PyTorch contracts, as positions in the shrinking list of operands, and whether each
    result goes first (left to right, PyTorch's own order) or last (opt_einsum's path, which torch
    follows when torch.backends.opt_einsum is on)."""
    import torch

    backend = torch.backends.opt_einsum
    if n > 2 and backend.is_available() and backend.enabled:
        import opt_einsum

        path, _ = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=backend.strategy)
        return [tuple(sorted(p)) for p in path], False
    return [(0, 1)] * (n - 1), True


# -- backward ------------------------------------------------------------------------------

@GRAD_MODULES.register(nn.Linear)
@paired((0, None), (None, 0))
def linear_backward(call: ModuleCall, needs: Needs) -> Count:
    return repeated(linear(call), ("∂x", needs.input(0)), ("∂W", needs.weight()))


def product_gradients(forward, *sides: tuple[str, int]):
    """The backward counter of a product: the forward's MACs once for each (gradient, input position) whose
    input needs one."""
    def backward(call: OpCall, needs: Needs) -> Count:
        return repeated(forward(call), *((what, needs.input(i)) for what, i in sides))

    backward.__name__ = f"{forward.__name__}_backward"
    return backward


GRAD_OPS.register("linear")(paired((0, 1), (1, 0))(product_gradients(linear_op, ("∂x", 0), ("∂W", 1))))
GRAD_OPS.register("matmul", "mm", "bmm", "mv", "dot", "vdot", "inner")(
    paired((0, 1), (1, 0))(product_gradients(matmul, ("∂A", 0), ("∂B", 1))))
GRAD_OPS.register("addmm", "baddbmm", "addmv", "addbmm")(
    paired((1, 2), (2, 1))(product_gradients(addmm, ("∂A", 1), ("∂B", 2))))
GRAD_OPS.register("_sparse_mm", "hspmm", "smm")(product_gradients(sparse_product, ("∂A", 0), ("∂B", 1)))
GRAD_OPS.register("_sparse_addmm", "sspaddmm")(product_gradients(sparse_product, ("∂A", 1), ("∂B", 2)))
GRAD_OPS.register("_grouped_mm", "grouped_mm")(product_gradients(grouped_mm, ("∂A", 0), ("∂B", 1)))
GRAD_OPS.register("tensordot")(product_gradients(tensordot, ("∂a", 0), ("∂b", 1)))
GRAD_OPS.register("linalg_vecdot")(product_gradients(vecdot, ("∂x", 0), ("∂y", 1)))
GRAD_OPS.register("affine_grid")(product_gradients(affine_grid, ("∂θ", 0)))


def pairwise_tangents(steps, extra: tuple[int, ...]) -> Count:
    """The tangent of a chain of pairwise products (multi_dot's, einsum's: ``steps`` of (left operands, right
    operands, MACs, arithmetic, what)), each product L·R's L'·R + L·R' where a side carries one (its operands' or
    their partial result's: a product of operands without tangents has none), each term as many times as its side's
    most batched tangent runs (its zeros once)."""
    terms = []
    for left, right, macs, text, what in steps:
        sides = [(side, max((extra[i] for i in side if i < len(extra)), default=0)) for side in (left, right)]
        if any(times for _, times in sides):
            terms += [(f"({''.join(f'#{i + 1}' for i in sorted(side))})'{what}", macs, max(times, 1), text)
                      for side, times in sides]
    return tangent_products(terms)


def multi_dot_tangent(call: OpCall, extra: tuple[int, ...], weights: int) -> Count:
    """multi_dot under forward-mode AD: each product of the chain where one of its sides carries a tangent."""
    return pairwise_tangents([(step.left, step.right, prod(step.sizes), "*".join(map(str, step.sizes)), "")
                              for step in chain(call.inputs)], extra)


@GRAD_OPS.register("linalg_multi_dot", "chain_matmul")
@own_tangent(multi_dot_tangent)
def multi_dot_backward(call: OpCall, needs: Needs) -> Count:
    """Each product of the chain differentiated as a matmul: a side's gradient where an operand in it needs one."""
    terms = []
    for step in chain(call.inputs):
        text = "*".join(map(str, step.sizes))
        for side in (step.left, step.right):
            names = "".join(f"#{i + 1}" for i in sorted(side))
            terms.append((f"∂({names})", any(needs.input(i) for i in side), prod(step.sizes), text))
    return gradients(terms)


def _bilinear_backward(x1: tuple, n_in1: int, n_in2: int, n_out: int, needs: Needs, weight: bool) -> Count:
    """∂x1, ∂A, ∂x2: _trilinear of the other two and ∂y, one k at a time: N*out*in1*in2 each."""
    rows = prod(x1[:-1])
    macs, text = rows * n_out * n_in1 * n_in2, f"{rows}*{n_out}*{n_in1}*{n_in2}"
    return gradients([("∂x1", needs.input(0), macs, text), ("∂A", weight, macs, text),
                      ("∂x2", needs.input(1), macs, text)])


@GRAD_MODULES.register(nn.Bilinear)
def bilinear_module_backward(call: ModuleCall, needs: Needs) -> Count:
    m = call.module
    return _bilinear_backward(call.inputs[0], m.in1_features, m.in2_features, m.out_features, needs,
                              needs.weight())  # (∂A only where the engine computes one)


@GRAD_OPS.register("bilinear")
def bilinear_op_backward(call: OpCall, needs: Needs) -> Count:
    out, n_in1, n_in2 = tensor_shape(call.arg(2, "weight"))
    return _bilinear_backward(call.inputs[0], n_in1, n_in2, out, needs, needs.input(2))


@GRAD_OPS.register("linalg_matrix_power", "matrix_power")
def matrix_power_backward(call: OpCall, needs: Needs) -> Count:
    """Each product's two gradients (both factors are powers of A); for k < 0 then the inverse's, -Xᴴ·∂X·Xᴴ:
    two products of n^3 a matrix (decompositions.inv_backward)."""
    k, shape = call.arg(1, "n"), call.inputs[0]
    if not isinstance(k, int):
        return NOT_COUNTED
    products, each = matrix_power_products(abs(k)), prod(shape) * shape[-1]
    text = f"{products}*{elements_text(shape)}*{shape[-1]}"
    return gradients([("∂ left factors", needs.input(0), products * each, text),
                      ("∂ right factors", needs.input(0), products * each, text),
                      ("∂A of A⁻¹ -Xᴴ·∂X·Xᴴ", needs.input(0) and k < 0, 2 * each, f"2*{elements_text(shape)}*{shape[-1]}")])


@GRAD_OPS.register("cdist", "pdist")
def distance_backward(call: OpCall, needs: Needs) -> Count:
    """∂ of each set of rows: per pair, its M coordinates' differences scaled by ∂D (the forward's products)."""
    forward = distance(call)
    if not forward.macs:
        return Count(0, None, {"macs": "p ≠ 2: element-wise only"})
    return repeated(forward, ("∂x1", needs.input(0)), ("∂x2", needs.input(1)))


@GRAD_OPS.register("linalg_solve_triangular", "triangular_solve")
def solve_triangular_backward(call: OpCall, needs: Needs) -> Count:
    """∂B = (Aᴴ)⁻¹∂X, one solve as the forward's (made for ∂A too), and ∂A = -∂B·Xᴴ: n*n*k a matrix."""
    b, a = (0, 1) if call.name == "triangular_solve" else (1, 0)
    solve = solve_triangular(call)
    expression = solve.text()["macs"].rsplit(" = ", 1)[0]
    n, out = call.inputs[a][-1], call.output
    return gradients([("∂B (a solve)", needs.input(a) or needs.input(b), solve.macs, expression),
                      ("∂A -∂B·Xᴴ", needs.input(a), prod(out) * n, f"{elements_text(out)}*{n}")])


@GRAD_OPS.register("cov", "corrcoef")
def covariance_backward(call: OpCall, needs: Needs) -> Count:
    """X·Xᵀ's gradient, as autograd differentiates the product: ∂ of each factor (both X), the forward's
    V*V*O each."""
    return repeated(covariance(call), ("∂X (left)", needs.input(0)), ("∂Xᵀ (right)", needs.input(0)))


def _two_operands(call: OpCall):
    """An einsum of two operands: each gradient a product of ∂Y with the other (three or more: with each other)."""
    return ((0, 1), (1, 0)) if len(call.inputs) == 2 else None


def einsum_tangent(call: OpCall, extra: tuple[int, ...], weights: int) -> Count:
    """einsum under forward-mode AD: each pairwise contraction where one of its sides carries a tangent (an einsum of
    three operands whose first two carry none contracts them without one)."""
    equation = _equation(call)
    if equation is None:
        return NOT_COUNTED
    return pairwise_tangents([(step.left, step.right, prod(step.sizes.values()),
                               "*".join(f"{k}{v}" for k, v in step.sizes.items()), f" of {step.pair}")
                              for step in contraction(equation, call.inputs)[0]], extra)


@GRAD_OPS.register("einsum")
@paired(_two_operands)
@own_tangent(einsum_tangent)
def einsum_backward(call: OpCall, needs: Needs) -> Count:
    """Autograd differentiates each pairwise product: ∂left and ∂right each cost the product, where that
    side (an operand, or a partial result made from some) needs a gradient."""
    equation = _equation(call)
    if equation is None:
        return NOT_COUNTED
    terms = []
    for step in contraction(equation, call.inputs)[0]:
        macs = prod(step.sizes.values())
        text = "*".join(f"{k}{v}" for k, v in step.sizes.items())
        for side in (step.left, step.right):
            names = "".join(f"#{i + 1}" for i in sorted(side))
            terms.append((f"∂({names}) of {step.pair}", any(needs.input(i) for i in side), macs, text))
    return gradients(terms)
