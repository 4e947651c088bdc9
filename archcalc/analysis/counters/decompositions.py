"""Matrix factorisations (torch.linalg) and what PyTorch builds on them: LU, Cholesky and QR, and the solves,
inverses and determinants made from them. Normalising flows (Glow's invertible 1x1 convolution: slogdet, inv),
Gaussian-process layers (Cholesky), orthogonal parametrisations (householder_product) and whitening run them.

Each is counted as the LAPACK routines PyTorch calls (read from its BatchLinearAlgebra.cpp and LinearAlgebra.cpp),
by LAPACK Working Note 41's operation counts, the ones MAGMA's, PLASMA's and ScaLAPACK's testers report: a
routine's multiplications (divisions, reciprocals and square roots among them) and additions, as polynomials in its
sizes. Every addition pairs with a multiplication, so

  MACs = additions,   element-wise = multiplications - additions   (FLOPs = multiplications + additions)

  m x n matrix, k = min(m, n) reflectors or pivots; an n x n matrix where square; r right-hand sides
  getrf  LU with partial pivoting, column j = 0 .. k-1: the pivot's reciprocal, m - j - 1 multipliers, the update
         of (m - j - 1)(n - j - 1): adds Σ (m-j-1)(n-j-1), mults that + Σ (m - j) (square: ~ 2n³/3 flops; for
         m >= n LAWN 41's n²(m - n/3 - 1)/2 + mn/2 + 2n/3 and n²(m - n/3)/2 - mn/2 + n/6; for m < n LAWN 41 swaps
         m and n, counting multipliers a wide matrix never forms: archcalc counts the algorithm's)
  getrs  the solve with LU's two triangles:  mults r*n²,  adds r*n(n - 1)
  potrf  Cholesky:  mults n³/6 + n²/2 + n/3,  adds n³/6 - n/6                           (~ n³/3 flops)
  potrs  the solve with L and Lᴴ:  mults r*n(n + 1),  adds r*n(n - 1)
  potri  the inverse from L (trtri, lauum):  mults n³/3 + n² + 2n/3,  adds n³/3 - n²/2 + n/6
  geqrf  Householder QR (m > n):  mults n²(m - n/3 + 1/2) + mn + 23n/6,  adds n²(m - n/3 + 1/2) + 5n/6
         (m <= n:  mults m²(n - m/3 - 1/2) + 2mn + 23m/6,  adds m²(n - m/3 - 1/2) + mn + 5m/6)   (~ 2mn² - 2n³/3)
  orgqr  Q (m x n) from k reflectors:  mults k(2mn + 2n - 5/3 + k(2k/3 - m - n - 1)),
                                       adds  k(2mn + n - m + 1/3 + k(2k/3 - m - n))
  ormqr  C (m x n) by Q of k reflectors, from the left: mults 2mnk - nk² + 2nk, adds 2mnk - nk² + nk
                                      from the right: mults 2mnk - mk² + mk + nk - k²/2 + k/2, adds 2mnk - mk² + mk
  (At the smallest sizes LAWN 41's polynomials can give fewer multiplications than additions, orgqr of a 1 x 1
  matrix: then MACs are the multiplications and element-wise the extra additions; FLOPs still their sum.)

PyTorch's operations, each a batch of matrices:
  lu_factor, lu (and torch.lu)   getrf (lu's unpacking into P, L, U: data movement)
  lu_solve                       getrs
  solve                          getrf of A, getrs of every right-hand side (a vector b: one)
  inv, inverse                   solve(A, I): getrf + getrs of n right-hand sides (linalg_inv_ex_out)
  det                            getrf, then the product of U's diagonal by the permutation's sign: n mults
  slogdet, logdet                getrf, then |U_ii|, log, their sum (n + n + n - 1) and the sign: sgn of each
                                 U_ii, their product and the permutation's (n + n - 1 + 1): 5n - 1
  tensorinv, tensorsolve         inv, solve of the tensor reshaped to a square matrix
  cholesky, cholesky_solve, cholesky_inverse     potrf, potrs, potri
  qr                             geqrf, and (mode 'reduced' or 'complete') orgqr for Q's columns
  geqrf, householder_product (orgqr), ormqr      their routines
  matrix_power with n < 0        inv, then the products (linear.py)
Not counted, and said why: the eigenvalue and singular-value decompositions (svd, svdvals, eig, eigh, eigvals,
eigvalsh, and pinv, matrix_rank, cond and the spectral matrix norms that use them) iterate until they converge, so
their work depends on the matrix's values, not its shape; lstsq's default CPU drivers (gelsy, gelsd, gelss) reveal
the rank as they go; ldl_factor's Bunch-Kaufman pivots (1 x 1 or 2 x 2 blocks) depend on the values.
matrix_exp chooses its Taylor degree and squarings from the matrix's norm (Bader, Blanes and Casas 2019, as PyTorch's
mexp runs it): counted from the norm on a real device (on meta, which has none: not counted, said why); its
gradient, the exponential of a block matrix holding ∂X, is not (the gradient's norm is not known to a trace).
Real matrices (a complex one has the same operations, in complex arithmetic). torch.utils.flop_counter and fvcore
have no formula for any of them: 0.

Backward (PyTorch's derivatives.yaml), where a gradient is needed; others are not counted:
  inv       ∂A = -Xᴴ·∂X·Xᴴ: two n x n products, 2n³ MACs a matrix
  solve     ∂B = lu_solve(LU, ∂X) with A's LU kept from the forward (getrs, made for ∂A too); ∂A = -∂B·Xᴴ: n*n*r
  det, slogdet, logdet   lu_solve(LU, d·I) (getrs of n right-hand sides: the cofactors (det)·A⁻ᴴ, A⁻ᴴ)
  cholesky  Lᴴ·∂L (n³ MACs), then two triangular solves of n right-hand sides (n*n(n - 1)/2 MACs each)
  cholesky_solve   ∂B = cholesky_solve(∂X, L) (potrs); where L needs one, C = ∂B·Xᴴ (n*n*r) and -(C + Cᴴ)·L (n³)
  lu, lu_factor   by which of L and U receive a gradient (read off the autograd graph, as for qr; lu_factor's LU
            gives both), k = min(m, n): Lᴴ·∂L (mk²), ∂U·Uᴴ (k²n), two triangular solves by L's and U's k x k
            triangles ((m + n)*k(k - 1)/2), P· (m²n, pivoting)
  linalg.lu_solve  ∂B getrs; where LU needs one ∂X·Xᴴ (n*n a side), two triangular solves of n sides, ·Uᴴ (n³)
  qr        by which of Q and R receive a gradient (the trace reads it off the autograd graph after the forward):
            m >= n  gR·Rᴴ (n³), Qᴴ·gQ (mn²), Q·X (mn²), a triangular solve by Rᴴ of m sides (m*n(n - 1)/2);
            m < n   Qᴴ·gQ (m³), gR·Rᴴ (m²n), m³, the solve (m*m(m - 1)/2), Q·gR (m²n)
  householder_product   K = Q·∂Qᴴ (m²n), then K updated with each reflector by matrix-vector products:
            m² + (2m + 1)*S + m*(k - 1)*(2m - k + 1), S = km - k(k - 1)/2
  ormqr     ∂C an ormqr (the forward's count) where C needs one; where A or τ do, K = ∂Y·Yᴴ (mnr, r the reflectors'
            length) and householder_product's updates of K (reflectors in reverse where left == transpose: the
            first term r(r - k + 1), not r²)
  cholesky_inverse      X·(∂X + ∂Xᴴ)·X and ·L: 3n³
"""

from __future__ import annotations

from fractions import Fraction as Q
from functools import partial
from math import prod
from typing import NamedTuple

from archcalc.analysis.counting import GRAD_OPS, OPS, Count, Needs, OpCall, gradients
from archcalc.errors import option
from archcalc.formulas.numbers import grouped

_LU = ("linalg_lu_factor", "linalg_lu_factor_ex", "linalg_lu", "lu")
_LU_SOLVE = ("linalg_lu_solve", "lu_solve")
_SOLVE = ("linalg_solve", "linalg_solve_ex")
_INV = ("linalg_inv", "linalg_inv_ex", "inverse")
_DET = ("linalg_det", "det")
_SLOGDET = ("linalg_slogdet", "slogdet", "logdet")
_CHOLESKY = ("linalg_cholesky", "linalg_cholesky_ex", "cholesky")
_QR = ("linalg_qr", "qr")
_HOUSEHOLDER = ("linalg_householder_product", "orgqr")
# every operation counted here (the other tools count none of them: fvcore's and flop_counter's conventions)
COUNTED = frozenset(_LU + _LU_SOLVE + _SOLVE + _INV + _DET + _SLOGDET + _CHOLESKY + _QR + _HOUSEHOLDER + (
    "linalg_tensorinv", "linalg_tensorsolve", "cholesky_solve", "cholesky_inverse", "geqrf", "ormqr"))

ITERATIVE = ("an iterative decomposition (eigenvalues or singular values): its work depends on the matrix's values, "
             "how fast it converges, not on its shape, so no formula counts it")
_BY_VALUE = {
    "linalg_lstsq": "least squares: the CPU's drivers gelsy (its default), gelsd and gelss reveal the rank as they go, "
                    "their work depends on it, so no formula counts them (nor, yet, the QR driver gels)",
    "linalg_ldl_factor": "Bunch-Kaufman pivoting takes 1 x 1 or 2 x 2 blocks as the values decide: no formula counts it",
}
_BY_VALUE["linalg_ldl_factor_ex"] = _BY_VALUE["linalg_ldl_solve"] = _BY_VALUE["linalg_ldl_factor"]


class Work(NamedTuple):
    """One LAPACK routine's operations (LAWN 41) and how they were reached."""

    mults: int
    adds: int
    text: str

    def plus(self, other: Work) -> Work:
        return Work(self.mults + other.mults, self.adds + other.adds, f"{self.text} + {other.text}")

    def times(self, batch: int) -> Work:
        return self if batch == 1 else Work(batch * self.mults, batch * self.adds, f"{batch} x ({self.text})")


def _whole(value: Q) -> int:
    """LAWN 41's polynomials are whole at every size (integer-valued: tests/test_decompositions.py checks them at
    every size up to 23 x 23, more than their degree needs); taken exactly, never rounded."""
    if value.denominator != 1:
        raise AssertionError(f"a LAWN 41 polynomial gave {value}: miscopied")
    return int(value)


def getrf(m: int, n: int) -> Work:
    """Column j (of k): its pivot's reciprocal, m - j - 1 multipliers, the (m - j - 1)(n - j - 1) update. (LAWN 41's
    polynomials for m >= n; for m < n it swaps m and n, which counts multipliers a wide matrix never forms.)"""
    k = min(m, n)
    adds = sum((m - j - 1) * (n - j - 1) for j in range(k))
    return Work(adds + k * m - k * (k - 1) // 2, adds, f"LU {m}x{n} (getrf)")


def getrs(n: int, sides: int) -> Work:
    return Work(sides * n * n, sides * n * (n - 1), f"{sides} right-hand sides (getrs)")


def potrf(n: int) -> Work:
    mults = n * ((Q(n, 6) + Q(1, 2)) * n + Q(1, 3))
    adds = n * (Q(n * n, 6) - Q(1, 6))
    return Work(_whole(mults), _whole(adds), f"Cholesky {n}x{n} (potrf)")


def potrs(n: int, sides: int) -> Work:
    return Work(sides * n * (n + 1), sides * n * (n - 1), f"{sides} right-hand sides (potrs)")


def potri(n: int) -> Work:
    mults = n * (Q(2, 3) + n * (Q(n, 3) + 1))
    adds = n * (Q(1, 6) + n * (Q(n, 3) - Q(1, 2)))
    return Work(_whole(mults), _whole(adds), f"inverse from Cholesky {n}x{n} (potri)")


def geqrf(m: int, n: int) -> Work:
    if m > n:
        base = n * (n * (Q(1, 2) - Q(n, 3) + m))
        mults, adds = base + n * (m + Q(23, 6)), base + n * Q(5, 6)
    else:
        base = m * (m * (-Q(1, 2) - Q(m, 3) + n))
        mults, adds = base + m * (2 * n + Q(23, 6)), base + m * (n + Q(5, 6))
    return Work(_whole(mults), _whole(adds), f"QR {m}x{n} (geqrf)")


def orgqr(m: int, n: int, k: int) -> Work:
    mults = k * (2 * m * n + 2 * n - Q(5, 3) + k * (Q(2 * k, 3) - (m + n) - 1))
    adds = k * (2 * m * n + n - m + Q(1, 3) + k * (Q(2 * k, 3) - (m + n)))
    return Work(_whole(mults), _whole(adds), f"Q {m}x{n} from {k} reflectors (orgqr)")


def ormqr(m: int, n: int, k: int, left: bool) -> Work:
    if left:
        mults, adds = 2 * n * m * k - n * k * k + 2 * n * k, 2 * n * m * k - n * k * k + n * k
    else:
        mults = 2 * n * m * k - m * k * k + m * k + n * k - Q(k * k, 2) + Q(k, 2)
        adds = 2 * n * m * k - m * k * k + m * k
    side = "left" if left else "right"
    return Work(_whole(mults), _whole(adds), f"{m}x{n} by Q of {k} reflectors from the {side} (ormqr)")


def count(work: Work, extra: int = 0, extra_text: str = "") -> Count:
    """MACs = additions, element-wise = the other multiplications (+ ``extra`` element-wise operations)."""
    macs, rest = min(work.mults, work.adds), abs(work.mults - work.adds)
    return Count(macs, rest + extra, partial(_text, work, macs, rest, extra, extra_text))


def _text(work: Work, macs: int, rest: int, extra: int, extra_text: str) -> dict[str, str]:
    paired, more, fewer, kind = (("additions", work.mults, work.adds, "divisions, reciprocals and square roots")
                                 if work.mults >= work.adds else ("multiplications", work.adds, work.mults, "additions"))
    text = {"macs": f"LAWN 41 {paired} of {work.text} = {grouped(macs)}",
            "elementwise": f"the other {kind}: {grouped(more)} - {grouped(fewer)} = {grouped(rest)}"}
    if extra:
        text["elementwise"] += f" + {extra_text} = {grouped(rest + extra)}"
    return text


def _matrices(shape: tuple) -> int:
    return prod(shape[:-2])


# -- LU and what is built on it -----------------------------------------------------------------

@OPS.register(*_LU)
def lu_factor(call: OpCall) -> Count:
    a = call.inputs[0]
    return count(getrf(a[-2], a[-1]).times(_matrices(a)))


@OPS.register(*_LU_SOLVE)
def lu_solve(call: OpCall) -> Count:
    """linalg.lu_solve(LU, pivots, B, left=, adjoint=) and the older lu_solve(B, LU, pivots)."""
    n = (call.inputs[1] if call.name == "lu_solve" else call.inputs[0])[-1]
    return count(getrs(n, _sides(call.output, n)))


def _sides(out: tuple, n: int) -> int:
    """Right-hand sides over the whole batch: the solution's elements by n (columns, rows where left=False,
    or one vector)."""
    return prod(out) // n if n else 0


def solve_work(call: OpCall) -> Work:
    a = call.inputs[0]
    n = a[-1]
    return getrf(n, n).times(_matrices(a)).plus(getrs(n, _sides(call.output, n)))


@OPS.register(*_SOLVE)
def solve(call: OpCall) -> Count:
    return count(solve_work(call))


def inverse_work(shape: tuple) -> Work:
    """solve(A, I): LU and n right-hand sides a matrix (PyTorch's linalg_inv_ex_out)."""
    n = shape[-1]
    return getrf(n, n).plus(getrs(n, n)).times(_matrices(shape))


def inverse_count(shape: tuple) -> Count:
    return count(inverse_work(shape))


@OPS.register(*_INV)
def inv(call: OpCall) -> Count:
    return inverse_count(call.inputs[0])


@OPS.register("linalg_tensorinv")
def tensorinv(call: OpCall) -> Count:
    """A's first ``ind`` dimensions against the rest, as one square matrix inverted."""
    n = prod(call.inputs[0][:call.arg(1, "ind", 2)])
    return count(inverse_work((n, n)))


@OPS.register("linalg_tensorsolve")
def tensorsolve(call: OpCall) -> Count:
    """A (B's dimensions + the solution's) as one n x n matrix, n = B's elements: one right-hand side."""
    n = prod(call.inputs[1])
    return count(getrf(n, n).plus(getrs(n, 1)))


@OPS.register(*_DET)
def det(call: OpCall) -> Count:
    a = call.inputs[0]
    batch, n = _matrices(a), a[-1]
    extra = batch * n
    return count(getrf(n, n).times(batch), extra, f"the diagonal's product and the pivots' sign: {batch}*{n}")


@OPS.register(*_SLOGDET)
def slogdet(call: OpCall) -> Count:
    a = call.inputs[0]
    batch, n = _matrices(a), a[-1]
    extra = batch * (5 * n - 1)
    return count(getrf(n, n).times(batch), extra,
                 f"log|U_ii| summed and the sign's product: {batch}*(5*{n} - 1)")


# -- Cholesky -------------------------------------------------------------------------------------

@OPS.register(*_CHOLESKY)
def cholesky(call: OpCall) -> Count:
    a = call.inputs[0]
    return count(potrf(a[-1]).times(_matrices(a)))


@OPS.register("cholesky_solve")
def cholesky_solve(call: OpCall) -> Count:
    """cholesky_solve(B, L): the two triangular solves with L and Lᴴ."""
    n = call.inputs[1][-1]
    return count(potrs(n, _sides(call.output, n)))


@OPS.register("cholesky_inverse")
def cholesky_inverse(call: OpCall) -> Count:
    a = call.inputs[0]
    return count(potri(a[-1]).times(_matrices(a)))


# -- QR and Householder reflectors ----------------------------------------------------------------------

@OPS.register(*_QR)
def qr(call: OpCall) -> Count:
    """geqrf, then orgqr for Q's columns where Q is asked for (mode 'reduced': k of them, 'complete': m)."""
    a, q = call.inputs[0], call.outputs[0]
    m, n = a[-2], a[-1]
    work = geqrf(m, n)
    if prod(q) and len(q) >= 2:  # (mode 'r' returns an empty Q)
        work = work.plus(orgqr(m, q[-1], min(m, n)))
    return count(work.times(_matrices(a)))


@OPS.register("geqrf")
def householder_qr(call: OpCall) -> Count:
    a = call.inputs[0]
    return count(geqrf(a[-2], a[-1]).times(_matrices(a)))


@OPS.register(*_HOUSEHOLDER)
def householder_product(call: OpCall) -> Count:
    a, tau = call.inputs[0], call.inputs[1]
    return count(orgqr(a[-2], a[-1], tau[-1]).times(_matrices(a)))


@OPS.register("ormqr")
def ormqr_product(call: OpCall) -> Count:
    """ormqr(A, tau, C, left=True, transpose=False): C by the Q of A's reflectors."""
    tau, c = call.inputs[1], call.inputs[2]
    left = bool(call.arg(3, "left", True))
    return count(ormqr(c[-2], c[-1], tau[-1], left).times(_matrices(c)))


# -- the matrix exponential ------------------------------------------------------------------------------

# Bader, Blanes and Casas's optimised Taylor polynomials (Mathematics 2019), as PyTorch's mexp runs them: each
# degree's bound on ‖A‖₁ (float32, float64), and its n x n products and element-wise work in n² (its linear
# combinations, 2k - 1 an element for k terms; T1's and T2's sums; T18 includes the scaling by 2^-s).
_MEXP_THETAS = {"float": (1.192092800768788e-07, 5.978858893805233e-04, 5.116619363445086e-02,
                          5.800524627688768e-01, 1.461661507209034e+00, 3.010066362817634e+00),
                "double": (2.220446049250313e-16, 2.580956802971767e-08, 3.397168839976962e-04,
                           4.991228871115323e-02, 2.996158913811580e-01, 1.090863719290036e+00)}
_MEXP_DEGREES = ((1, 0, 2), (2, 1, 4), (4, 2, 12), (8, 3, 22), (12, 4, 31), (18, 5, 49))  # (degree, products, n²)
def _mexp_on_meta() -> str:
    return (f"its Taylor degree and squarings are chosen from the matrix's norm, a value the meta device does not "
            f"have: {option('device', 'cpu')} counts it")


@OPS.register("linalg_matrix_exp", "matrix_exp")
def matrix_exp(call: OpCall) -> Count:
    """PyTorch's mexp (LinearAlgebra.cpp): per matrix ‖A‖₁ = max column Σ|a_ij| (2n² + n), then one matrix alone
    takes the lowest degree whose bound its norm is within (1, 2, 4, 8, 12: 0 to 4 products of n³); a larger
    norm, or any matrix of a batch, degree 18 of A/2^s, s = max(0, ⌈log2(‖A‖₁/θ18)⌉): 5 products, s squarings."""
    a = call.args[0]
    n = a.shape[-1]
    if n <= 1:  # (0 x 0: a copy; 1 x 1: exp of the element)
        return Count(0, a.numel() if n else 0, {"elementwise": f"exp of each 1 x 1 matrix: {a.numel()}"})
    if a.device.type == "meta":
        return Count(None, None, {}, _mexp_on_meta())
    thetas = _MEXP_THETAS["float" if str(a.dtype) in ("torch.float32", "torch.complex64") else "double"]
    norms = a.detach().reshape(-1, n, n).abs().sum(-2).amax(-1)
    if len(norms) == 1:  # (the lowest degree whose bound holds it; a norm of exactly θ12 is run at 18 too, as there)
        bounds = (-1.0, *thetas[:5])  # (compared in the matrix's dtype, as the kernel compares them)
        chosen = [(*_MEXP_DEGREES[i], 0) for i in range(5) if ((norms > bounds[i]) & (norms <= bounds[i + 1])).item()]
        large = norms[norms >= thetas[4]]
    else:
        chosen, large = [], norms
    chosen += [(*_MEXP_DEGREES[5], int(s)) for s in (large / thetas[5]).log2().ceil().clamp(min=0).tolist()]
    products = sum(p + s for _, p, _, s in chosen)
    macs = products * n ** 3
    elementwise = len(norms) * (2 * n * n + n) + sum(e for _, _, e, _ in chosen) * n * n
    return Count(macs, elementwise, partial(_matrix_exp_text, chosen, n, len(norms), macs, elementwise))


def _matrix_exp_text(chosen: list, n: int, matrices: int, macs: int, elementwise: int) -> dict[str, str]:
    degrees = ", ".join(f"degree {d}" + (f" of A/2^{s}, {s} squarings" if s else "") for d, _, _, s in chosen)
    return {"macs": f"({degrees}): {sum(p + s for _, p, _, s in chosen)} products of {n}^3 = {grouped(macs)}",
            "elementwise": f"‖A‖₁ {matrices}*(2*{n}^2 + {n}) + the polynomials' sums "
                           f"{sum(e for _, _, e, _ in chosen)}*{n}^2 = {grouped(elementwise)}"}


@GRAD_OPS.register("linalg_matrix_exp", "matrix_exp")
def matrix_exp_backward(call: OpCall, needs: Needs) -> Count:
    """PyTorch's backward is the exponential of the 2n x 2n block matrix [[Aᴴ, ∂X], [0, Aᴴ]], whose degree and
    squarings its norm decides, and that holds the gradient, a value no trace has: not counted, said why."""
    if not needs.input(0):
        return gradients([])
    return Count(None, None, {}, "its backward is the exponential of a 2n x 2n block matrix holding the gradient, "
                                 "whose degree depends on the gradient's norm, which the trace does not have")


# -- iterative: not counted, with the reason ------------------------------------------------------------

@OPS.register("linalg_svd", "svd", "linalg_svdvals", "linalg_eigh", "linalg_eigvalsh",
              "linalg_eig", "linalg_eigvals", "linalg_pinv", "pinverse", "linalg_matrix_rank", "linalg_cond",
              "linalg_lstsq", "linalg_ldl_factor", "linalg_ldl_factor_ex", "linalg_ldl_solve")
def iterative(call: OpCall) -> Count:
    return Count(None, None, {}, _BY_VALUE.get(call.name, ITERATIVE))


# -- backward -----------------------------------------------------------------------------------------------

@GRAD_OPS.register(*_INV, "linalg_tensorinv")
def inv_backward(call: OpCall, needs: Needs) -> Count:
    out = call.output
    n, each = out[-1], prod(out) * out[-1]
    return gradients([("∂A -Xᴴ·∂X·Xᴴ", needs.input(0), 2 * each, f"2*({'*'.join(map(str, out))})*{n}")])


@GRAD_OPS.register(*_SOLVE, "linalg_tensorsolve")
def solve_backward(call: OpCall, needs: Needs) -> Count:
    """∂B = lu_solve(LU, ∂X) (made for ∂A too), ∂A = -∂B·Xᴴ."""
    a, out = call.inputs[0], call.output
    n = prod(call.inputs[1]) if call.name == "linalg_tensorsolve" else a[-1]
    sides = _sides(out, n)
    back = getrs(n, sides)
    return gradients([("∂B (getrs)", needs.input(0) or needs.input(1), back.adds, f"{sides}*{n}*{n - 1}"),
                      ("∂A -∂B·Xᴴ", needs.input(0), sides * n, f"{sides}*{n}")])


@GRAD_OPS.register(*_DET, *_SLOGDET)
def determinant_backward(call: OpCall, needs: Needs) -> Count:
    """lu_solve(LU, d·I): n right-hand sides a matrix with the forward's LU."""
    a = call.inputs[0]
    batch, n = _matrices(a), a[-1]
    return gradients([("∂A (getrs of the identity)", needs.input(0), batch * n * n * (n - 1),
                       f"{batch}*{n}*{n}*{n - 1}")])


@GRAD_OPS.register("linalg_lu_factor", "linalg_lu_factor_ex", "lu", "linalg_lu")
def lu_backward(call: OpCall, needs: Needs, reached: tuple[bool, ...] | None = None) -> Count:
    """linalg_lu_backward (lu_factor_ex_backward unpacks LU and gives it both factors' gradients), A = P·L·U of an
    m x n A, k = min(m, n), L m x k, U k x n; ``reached``: a flag for each output (linalg.lu's P, L, U; lu_factor's
    LU, pivots), read off the autograd graph after the forward:
      Lᴴ·∂L (m*k*k) where L receives a gradient, ∂U·Uᴴ (k*k*n) where U does
      two triangular solves by the k x k triangles of L and U, m + n right-hand sides between them
        (square: n of each; tall: the unit U's k and L's m; wide: L's k and the unit U's n): (m + n)*k(k - 1)/2
      P· the result (m*m*n), where A was pivoted"""
    a = call.inputs[0]
    m, n = a[-2], a[-1]
    k, b = min(m, n), _matrices(a)
    if call.name == "linalg_lu":
        gl, gu = reached[1:] if reached is not None else (True, True)
    else:
        gl = gu = reached[0] if reached is not None else True
    if not needs.input(0) or not (gl or gu) or not (b and k):
        return gradients([])
    pivot = bool(call.kwargs.get("pivot", call.arg(1, "pivot", True)))
    return gradients([("Lᴴ·∂L", gl, b * m * k * k, f"{b}*{m}*{k}*{k}"),
                      ("∂U·Uᴴ", gu, b * k * k * n, f"{b}*{k}*{k}*{n}"),
                      ("two triangular solves", True, b * (m + n) * k * (k - 1) // 2,
                       f"{b}*({m} + {n})*{k}*{k - 1}/2"),
                      ("P·", pivot, b * m * m * n, f"{b}*{m}*{m}*{n}")])


lu_backward.per_output = True  # (linalg.lu's L and U: the trace recounts it once it knows which the output reaches)


@GRAD_OPS.register("linalg_lu_solve")
def lu_solve_backward(call: OpCall, needs: Needs) -> Count:
    """linalg.lu_solve(LU, pivots, B) (left, not adjoint): ∂B = lu_solve(LU, ∂X) with the adjoint (getrs) where B
    needs one; where LU does, linalg_lu_solve_LU: ∂X·Xᴴ (n*n a side), two triangular solves of n right-hand
    sides (by Uᴴ, by the unit Lᴴ: n*n(n - 1)/2 each), ·Uᴴ (n³), for each of the solution's matrices. The other
    cases (left=False, adjoint=True): not counted."""
    if call.kwargs.get("left", True) is False or call.kwargs.get("adjoint", False):
        return Count(None, None, {}, "lu_solve's gradient with left=False or adjoint=True: no formula here")
    n, out = call.inputs[0][-1], call.output
    sides = _sides(out, n)
    matrices = _matrices(out)
    return gradients([("∂B (getrs)", needs.input(2), sides * n * (n - 1), f"{sides}*{n}*{n - 1}"),
                      ("∂X·Xᴴ", needs.input(0), sides * n * n, f"{sides}*{n}*{n}"),
                      ("two triangular solves", needs.input(0), matrices * n * n * (n - 1),
                       f"{matrices}*2*{n}*{n}*{n - 1}/2"),
                      ("·Uᴴ", needs.input(0), matrices * n ** 3, f"{matrices}*{n}^3")])


@GRAD_OPS.register("cholesky_solve")
def cholesky_solve_backward(call: OpCall, needs: Needs) -> Count:
    """cholesky_solve_backward: ∂B = cholesky_solve(∂X, L) (potrs, made for ∂L too); where L needs one,
    C = ∂B·Xᴴ (n*n*r a matrix), then ∂L = -(C + Cᴴ)·L (n³ for each of the solution's matrices)."""
    n, out = call.inputs[1][-1], call.output
    sides, matrices = _sides(out, n), _matrices(out)
    back = potrs(n, sides)
    return gradients([("∂B (potrs)", needs.input(0) or needs.input(1), back.adds, f"{sides}*{n}*{n - 1}"),
                      ("C = ∂B·Xᴴ", needs.input(1), sides * n * n, f"{sides}*{n}*{n}"),
                      ("∂L -(C + Cᴴ)·L", needs.input(1), matrices * n ** 3, f"{matrices}*{n}^3")])


@GRAD_OPS.register(*_CHOLESKY)
def cholesky_backward(call: OpCall, needs: Needs) -> Count:
    """Lᴴ·∂L, then two triangular solves of n right-hand sides (PyTorch's cholesky_backward)."""
    a = call.inputs[0]
    batch, n = _matrices(a), a[-1]
    return gradients([("Lᴴ·∂L", needs.input(0), batch * n ** 3, f"{batch}*{n}^3"),
                      ("two triangular solves", needs.input(0), batch * n * n * (n - 1), f"{batch}*2*{n}*{n}*{n - 1}/2")])


@GRAD_OPS.register(*_QR)
def qr_backward(call: OpCall, needs: Needs, reached: tuple[bool, ...] | None = None) -> Count:
    """linalg_qr_backward, whose work depends on which of Q and R receive a gradient (``reached``: a flag for
    each, from the autograd graph after the forward; None: both). k = min(m, n):
      m >= n   gR·Rᴴ (n³) where R has one, Qᴴ·gQ (mn²) where Q has; Q·X (mn²); X·R⁻ᴴ, a triangular solve of m
               right-hand sides (m*n(n - 1)/2)
      m < n    Qᴴ·gQ (m³), gR·Rᴴ (m²n); an m x m product (m³); the triangular solve (m*m(m - 1)/2); Q·gR (m²n)
               where R has one
    mode 'r' (no Q) and mode 'complete' with m > n: PyTorch cannot differentiate it."""
    a, q = call.inputs[0], call.outputs[0]
    m, n = a[-2], a[-1]
    mode = call.arg(1, "mode", "reduced") if call.name == "linalg_qr" else \
        "reduced" if call.arg(1, "some", True) else "complete"  # (torch.qr's some=False: 'complete')
    if not needs.input(0):
        return gradients([])
    if mode == "r" or not prod(q) or (mode == "complete" and m > n):
        return Count(None, None, {}, f"mode '{mode}'{' with m > n' if mode == 'complete' else ''}: PyTorch cannot "
                                     f"differentiate it")
    gq, gr = reached if reached is not None else (True, True)
    if not (gq or gr):
        return gradients([])
    b = _matrices(a)
    if m >= n:
        return gradients([("gR·Rᴴ", gr, b * n ** 3, f"{b}*{n}^3"),
                          ("Qᴴ·gQ", gq, b * m * n * n, f"{b}*{m}*{n}*{n}"),
                          ("Q·X", True, b * m * n * n, f"{b}*{m}*{n}*{n}"),
                          ("·R⁻ᴴ (triangular solve)", True, b * m * n * (n - 1) // 2,
                           f"{b}*{m}*{n}*{n - 1}/2")])
    return gradients([("Qᴴ·gQ", gq, b * m ** 3, f"{b}*{m}^3"),
                      ("gR·Rᴴ", gr, b * m * m * n, f"{b}*{m}*{m}*{n}"),
                      ("the m x m product", True, b * m ** 3, f"{b}*{m}^3"),
                      ("triangular solve", True, b * m * m * (m - 1) // 2, f"{b}*{m}*{m}*{m - 1}/2"),
                      ("Q·gR", gr, b * m * m * n, f"{b}*{m}*{m}*{n}")])


qr_backward.per_output = True  # (the trace recounts it once it knows which outputs the model's output reaches)


def _reflector_updates(m: int, k: int, reverse: bool) -> tuple[int, str]:
    """householder_product_backward's loop over k reflectors of length m (FunctionsManual.cpp), K updated by
    matrix-vector products: the first reflector's H⁻¹·K (m*m; in reverse order, the last one's, m*(m - k + 1));
    for each reflector i, v_iᴴ·K and K·v_i (2*m*(m - i)) and τ_i's v_iᴴ·K·v_i (m - i); between two, H⁻¹·K·H
    (m*(m - i - 1) + m*(m - i)). In all: first + (2m + 1)*S + m*(k - 1)*(2m - k + 1), S = Σ(m - i) = km - k(k - 1)/2."""
    s = k * m - k * (k - 1) // 2
    first, first_text = (m * (m - k + 1), f"{m}*{m - k + 1}") if reverse else (m * m, f"{m}^2")
    return (first + (2 * m + 1) * s + m * (k - 1) * (2 * m - k + 1),
            f"({first_text} + (2*{m} + 1)*{s} + {m}*{k - 1}*{2 * m - k + 1})")


@GRAD_OPS.register(*_HOUSEHOLDER)
def householder_product_backward(call: OpCall, needs: Needs) -> Count:
    """householder_product_backward, made for A and τ together: K = Q·∂Qᴴ (m*m*n), then K updated reflector by
    reflector (_reflector_updates)."""
    a, tau = call.inputs[0], call.inputs[1]
    m, n, k = a[-2], a[-1], tau[-1]
    if not (needs.input(0) or needs.input(1)) or k == 0 or not prod(a):
        return gradients([])
    b = _matrices(a)
    updates, text = _reflector_updates(m, k, reverse=False)
    return gradients([("K = Q·∂Qᴴ", True, b * m * m * n, f"{b}*{m}*{m}*{n}"),
                      ("the reflectors' updates", True, b * updates, f"{b}*{text}")])


@GRAD_OPS.register("ormqr")
def ormqr_backward(call: OpCall, needs: Needs) -> Count:
    """ormqr_backward for Y = Q·C (or C·Q, Qᴴ), C m x n, Q of k reflectors of length r (m from the left, n from
    the right): ∂C = ormqr(A, τ, ∂Y) with the transpose flipped (LAWN 41's ormqr, as the forward) where C needs a
    gradient; where A or τ do, K = ∂Y·Yᴴ (from the right Yᴴ·∂Y: m*n*r), then householder_product's updates of K,
    over the reflectors in reverse order where left == transpose."""
    tau, c = call.inputs[1], call.inputs[2]
    left, transpose = bool(call.arg(3, "left", True)), bool(call.arg(4, "transpose", False))
    m, n, k, b = c[-2], c[-1], tau[-1], _matrices(c)
    r, other = (m, n) if left else (n, m)
    if k == 0 or not b * m * n:
        return gradients([])
    updates, text = _reflector_updates(r, k, reverse=left == transpose)
    reflectors = needs.input(0) or needs.input(1)
    return gradients([("∂C (ormqr)", needs.input(2), b * ormqr(m, n, k, left).adds,
                       f"{b}*(2*{m}*{n}*{k} - {other}*{k}^2 + {other}*{k})"),
                      ("K = ∂Y·Yᴴ" if left else "K = Yᴴ·∂Y", reflectors, b * m * n * r, f"{b}*{m}*{n}*{r}"),
                      ("the reflectors' updates", reflectors, b * updates, f"{b}*{text}")])


@GRAD_OPS.register("cholesky_inverse")
def cholesky_inverse_backward(call: OpCall, needs: Needs) -> Count:
    """cholesky_inverse_backward: C = X·(∂X + ∂Xᴴ)·X (two n x n products), then ∂L = -C·L (upper: -L·C);
    3n³ a matrix."""
    a = call.inputs[0]
    b, n = _matrices(a), a[-1]
    return gradients([("X·(∂X + ∂Xᴴ)·X", needs.input(0), b * 2 * n ** 3, f"{b}*2*{n}^3"),
                      ("·L", needs.input(0), b * n ** 3, f"{b}*{n}^3")])
