"""Matrix factorisations (counters/decompositions.py): LAPACK Working Note 41's counts, checked against the
operations of the algorithms themselves (LU, Cholesky and their solves run here step by step, on real numbers,
counting each multiplication and addition, and giving PyTorch's factors), by hand on PyTorch's operations, and
the iterative decompositions left uncounted with their reason."""

import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from archcalc.analysis.counters import decompositions as d
from archcalc.analysis.engine import analyse_module
from archcalc.analysis.inputs import Inputs

CPU = torch.device("cpu")


class Ops:
    """A tally of the arithmetic an algorithm does."""

    def __init__(self):
        self.mults = self.adds = 0

    def mul(self, a, b, n=1):
        self.mults += n
        return a * b

    def fma(self, acc, a, b, n=1):  # acc - a*b: a multiplication and an addition (subtraction) each
        self.mults += n
        self.adds += n
        return acc - a * b


def getf2(a: np.ndarray, ops: Ops) -> np.ndarray:
    """LAPACK's unblocked LU with partial pivoting: for each column, the pivot, its reciprocal, the column scaled
    by it and the rank-1 update of what is left (the pivot search and the swaps are no arithmetic)."""
    a = a.copy()
    m, n = a.shape
    for j in range(min(m, n)):
        p = j + int(np.argmax(np.abs(a[j:, j])))
        a[[j, p]] = a[[p, j]]
        r = ops.mul(1.0, 1 / a[j, j])  # (LAWN 41 counts every pivot's reciprocal)
        a[j + 1:, j] = ops.mul(a[j + 1:, j], r, m - j - 1)
        block = np.outer(a[j + 1:, j], a[j, j + 1:])
        a[j + 1:, j + 1:] = ops.fma(a[j + 1:, j + 1:], 1.0, block, (m - j - 1) * (n - j - 1))
    return a


def potf2(a: np.ndarray, ops: Ops) -> np.ndarray:
    """LAPACK's unblocked Cholesky, column by column: l_jj = sqrt(a_jj - l_j·l_j), then the column below from
    a matrix-vector product and a division by l_jj."""
    n = a.shape[0]
    low = np.zeros_like(a)
    for j in range(n):
        s = ops.fma(a[j, j], 1.0, low[j, :j] @ low[j, :j], j)
        low[j, j] = ops.mul(1.0, np.sqrt(s))  # (the square root, counted as a multiplication)
        below = ops.fma(a[j + 1:, j], 1.0, low[j + 1:, :j] @ low[j, :j], (n - j - 1) * j)
        low[j + 1:, j] = ops.mul(below, 1 / low[j, j], n - j - 1)
    return low


def substitute(t: np.ndarray, b: np.ndarray, ops: Ops, lower: bool, unit: bool) -> np.ndarray:
    """A triangular solve of every column of b: x_i = (b_i - Σ t_ij x_j) / t_ii."""
    n = t.shape[0]
    x = b.copy()
    order = range(n) if lower else range(n - 1, -1, -1)
    for i in order:
        done = slice(0, i) if lower else slice(i + 1, n)
        width = i if lower else n - i - 1
        x[i] = ops.fma(x[i], 1.0, t[i, done] @ x[done], width * b.shape[1])
        if not unit:
            x[i] = ops.mul(x[i], 1 / t[i, i], b.shape[1])
    return x


@pytest.mark.parametrize("m,n", [(1, 1), (3, 3), (8, 8), (9, 4), (4, 9), (17, 17), (30, 11)])
def test_lu_counts_are_the_algorithms_and_its_factors_pytorchs(m, n):
    a = np.random.default_rng(m * 31 + n).standard_normal((m, n))
    ops = Ops()
    lu = getf2(a, ops)
    work = d.getrf(m, n)
    assert (work.mults, work.adds) == (ops.mults, ops.adds)
    assert np.allclose(lu, torch.linalg.lu_factor(torch.from_numpy(a))[0].numpy())


@pytest.mark.parametrize("n,sides", [(1, 1), (5, 3), (8, 8), (13, 2)])
def test_the_solves_and_cholesky_are_the_algorithms(n, sides):
    """getrs: L (unit) then U, each right-hand side; potrf; potrs: L then Lᴴ; each against PyTorch's answer."""
    rng = np.random.default_rng(n)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, sides))
    lu = getf2(a, Ops())
    pivoted = torch.linalg.lu_solve(*torch.linalg.lu_factor(torch.from_numpy(a)), torch.from_numpy(b)).numpy()
    ops = Ops()
    x = substitute(np.triu(lu), substitute(np.tril(lu, -1), _permuted(a, b), ops, True, True), ops, False, False)
    assert (d.getrs(n, sides).mults, d.getrs(n, sides).adds) == (ops.mults, ops.adds)
    assert np.allclose(x, pivoted)
    spd = a @ a.T + n * np.eye(n)
    ops = Ops()
    low = potf2(spd, ops)
    assert (d.potrf(n).mults, d.potrf(n).adds) == (ops.mults, ops.adds)
    assert np.allclose(low, torch.linalg.cholesky(torch.from_numpy(spd)).numpy())
    ops = Ops()
    x = substitute(low.T, substitute(low, b, ops, True, False), ops, False, False)
    assert (d.potrs(n, sides).mults, d.potrs(n, sides).adds) == (ops.mults, ops.adds)
    assert np.allclose(x, np.linalg.solve(spd, b))


def _permuted(a, b):
    """b with the rows the LU's pivots swapped."""
    p, _, _ = torch.linalg.lu(torch.from_numpy(a))
    return p.numpy().T @ b


def _exact(poly, *sizes):
    return poly(*(Fraction(s) for s in sizes))


def test_the_householder_counts_are_lawn41s_whole_numbers_with_their_leading_terms():
    """geqrf, orgqr and ormqr are LAWN 41's polynomials: whole numbers at every size (a miscopied coefficient
    gives thirds and sixths), 2mn² - 2n³/3 flops for R and as much again for Q's n columns; by hand at 8 x 8:
    geqrf adds 8²(8 - 8/3 - 1/2) + 8*8 + 5*8/6 = 380, mults 309⅓ + 2*64 + 23*8/6 = 468; orgqr(8, 8, 8) adds
    8(128 + 1/3 + 8(16/3 - 16)) = 344, mults 8(128 + 16 - 5/3 + 8(16/3 - 17)) = 392."""
    assert d.geqrf(8, 8)[:2] == (468, 380) and d.orgqr(8, 8, 8)[:2] == (392, 344)
    for m in range(1, 24):
        for n in range(1, 24):
            assert all(isinstance(w, int) for w in d.geqrf(m, n)[:2] + d.getrf(m, n)[:2])
            k = min(m, n)
            assert all(isinstance(w, int) for w in d.orgqr(m, n, k)[:2] + d.ormqr(m, n, k, False)[:2])
    m, n = 4000, 1000
    assert abs(sum(d.geqrf(m, n)[:2]) / (2 * m * n * n - 2 * n ** 3 / 3) - 1) < 2e-3
    assert abs(sum(d.orgqr(m, n, n)[:2]) / (2 * m * n * n - 2 * n ** 3 / 3) - 1) < 2e-3
    assert abs(sum(d.getrf(n, n)[:2]) / (2 * n ** 3 / 3) - 1) < 1e-3 and abs(sum(d.potrf(n)[:2]) / (n ** 3 / 3) - 1) < 2e-3


class Calls(nn.Module):
    def __init__(self, *calls):
        super().__init__()
        self.calls = calls
        self.w = nn.Parameter(torch.randn(6, 6) * 0.1)

    def forward(self, x):  # x: (2, 6, 6)
        a = x @ x.mT + 6 * torch.eye(6) + self.w @ self.w.T  # symmetric positive definite, needs a gradient
        return [call(a, x) for call in self.calls]


def records(*calls, backward=False):
    with warnings.catch_warnings():  # (torch.qr, torch.lu_solve: deprecated, once a process)
        warnings.simplefilter("ignore")
        a = analyse_module(Calls(*calls), "calls", (2, 6, 6), CPU, torch.float32, backward=backward)
    return [r for r in a.records if r.type not in ("Calls", "matmul", "mT", "T", "mul", "add", "eye", "getitem")], a.notes


def test_the_solves_inverses_and_determinants_pytorch_builds_on_lu():
    """2 matrices 6 x 6; getrf(6): adds 6³/3 - 6²/2 + 6/6 = 55, mults 6³/3 + 2*6/3 = 76 (21 the other way);
    getrs(6, r): adds r*6*5, mults r*36.
      inv = solve(A, I): 2*(55 + 180) = 470 MACs, 2*(21 + 36) = 114 element-wise
      det: 2*55 = 110, 2*21 + 2*6 (the diagonal's product, the pivots' sign) = 54
      slogdet, logdet: 110, 42 + 2*(5*6 - 1) = 100
      solve of a vector a matrix: 110 + 2*30 = 170; of 2 rows (left=False): 110 + 4*30 = 230
      lu_solve of 6 columns: 12*30 = 360, 12*6 = 72;  tensorinv of a 6 x 3 x 2 (ind=1): one 6 x 6 inverse, 235
      matrix_power(A, -3): the inverse, then A⁻¹·A⁻¹ and (A⁻¹A⁻¹)·A⁻¹: 470 + 2*2*216 = 1,334."""
    got, _ = records(lambda a, x: torch.linalg.inv(a), lambda a, x: torch.linalg.det(a),
                     lambda a, x: torch.linalg.slogdet(a), lambda a, x: a.logdet(),
                     lambda a, x: torch.linalg.solve(a, x[..., 0]), lambda a, x: torch.linalg.solve(a, x[:, :2], left=False),
                     lambda a, x: torch.linalg.lu_solve(*torch.linalg.lu_factor(a), x),
                     lambda a, x: torch.linalg.tensorinv(a[0].reshape(6, 3, 2), ind=1),
                     lambda a, x: torch.linalg.matrix_power(a, -3))
    counted = [(r.type, r.macs, r.elementwise) for r in got if r.type != "reshape"]
    assert counted == [("linalg_inv", 470, 114), ("linalg_det", 110, 54), ("linalg_slogdet", 110, 100),
                       ("logdet", 110, 100), ("linalg_solve", 170, 54), ("linalg_solve", 230, 66),
                       ("linalg_lu_factor", 110, 42), ("linalg_lu_solve", 360, 72), ("linalg_tensorinv", 235, 57),
                       ("linalg_matrix_power", 1_334, 114)]
    inv = got[0].formulas
    assert inv["macs"] == "LAWN 41 additions of 2 x (LU 6x6 (getrf) + 6 right-hand sides (getrs)) = 470"
    assert inv["elementwise"] == "the other divisions, reciprocals and square roots: 584 - 470 = 114"
    assert got[1].formulas["elementwise"].endswith("+ the diagonal's product and the pivots' sign: 2*6 = 54")


def test_cholesky_and_qr():
    """potrf(6): adds 6(36 - 1)/6 = 35, mults 6((1 + 3)6 + 2)/6 = 56 (21: 15 divisions, 6 square roots);
    cholesky_solve of 6 columns: potrs adds 12*6*5 = 360, mults 12*6*7; cholesky_inverse: potri adds
    72 - 18 + 1 = 55, mults 72 + 36 + 4 = 112; qr reduced (Q 6 x 6): geqrf + orgqr(6, 6, 6); mode 'r': geqrf
    alone; a 6 x 3 complete: orgqr(6, 6, 3) for Q's 6 columns; householder_product of 4 reflectors."""
    got, _ = records(lambda a, x: torch.linalg.cholesky(a), lambda a, x: torch.cholesky_solve(x, a),
                     lambda a, x: torch.cholesky_inverse(a), lambda a, x: torch.linalg.qr(a),
                     lambda a, x: torch.linalg.qr(a, mode="r"), lambda a, x: torch.linalg.qr(x[..., :3], mode="complete"),
                     lambda a, x: torch.linalg.householder_product(a, x[:, 0, :4]))
    by = [(r.type, r.macs, r.elementwise) for r in got]
    geqrf, orgqr = d.geqrf(6, 6), d.orgqr(6, 6, 6)
    tall = d.geqrf(6, 3).plus(d.orgqr(6, 6, 3))
    assert by == [("linalg_cholesky", 70, 42), ("cholesky_solve", 360, 144), ("cholesky_inverse", 110, 114),
                  ("linalg_qr", 2 * (geqrf.adds + orgqr.adds), 2 * (geqrf.mults - geqrf.adds + orgqr.mults - orgqr.adds)),
                  ("linalg_qr", 2 * geqrf.adds, 2 * (geqrf.mults - geqrf.adds)),
                  ("linalg_qr", 2 * tall.adds, 2 * (tall.mults - tall.adds)),
                  ("linalg_householder_product", 2 * d.orgqr(6, 6, 4).adds, 2 * (d.orgqr(6, 6, 4).mults - d.orgqr(6, 6, 4).adds))]
    assert got[0].formulas["macs"] == "LAWN 41 additions of 2 x (Cholesky 6x6 (potrf)) = 70"


def test_the_iterative_decompositions_are_not_counted_and_say_why():
    got, notes = records(lambda a, x: torch.linalg.svd(a), lambda a, x: torch.linalg.eigh(a),
                         lambda a, x: torch.linalg.eigvals(a), lambda a, x: torch.linalg.pinv(a),
                         lambda a, x: torch.linalg.lstsq(a, x))
    assert [r.macs for r in got] == [None] * 5
    assert got[0].note.startswith("an iterative decomposition (eigenvalues or singular values): its work depends")
    assert got[4].note.startswith("least squares: the CPU's drivers gelsy (its default), gelsd and gelss reveal")
    assert any(n.startswith("not counted: ") and "linalg_svd (an iterative decomposition" in n for n in notes)


def test_gradients_of_the_inverse_the_solve_the_determinant_and_cholesky():
    """inv: ∂A = -Xᴴ∂XXᴴ, 2*(2*6*6)*6 = 864; det, slogdet: getrs of the identity, 2*6*6*5 = 360; cholesky:
    Lᴴ∂L 2*216 + two triangular solves 2*6*6*5 = 792; solve of a vector: ∂B getrs 2*6*5 = 60 + ∂A 2*6 = 72;
    matrix_power(A, -3): 2 products twice + the inverse's 864 = 2,592; QR with both factors used: gR·Rᴴ, Qᴴ·gQ and
    Q·X 2*216 each + the solve by Rᴴ 2*6*6*5/2 = 1,476."""
    got, notes = records(lambda a, x: torch.linalg.inv(a), lambda a, x: torch.linalg.det(a),
                         lambda a, x: torch.linalg.slogdet(a), lambda a, x: torch.linalg.cholesky(a),
                         lambda a, x: torch.linalg.solve(a, x[..., 0]), lambda a, x: torch.linalg.matrix_power(a, -3),
                         lambda a, x: torch.linalg.qr(a), backward=True)
    assert [r.backward.macs for r in got] == [864, 360, 360, 792, 72, 2_592, 1_476]
    assert got[0].backward.text()["macs"] == "∂A -Xᴴ·∂X·Xᴴ 2*(2*6*6)*6 = 864"
    assert not any(n.startswith("backward not counted") for n in notes)


def test_an_operator_without_a_meta_kernel_runs_on_the_cpu_and_says_so():
    """torch.geqrf has no meta kernel: the analysis runs on the CPU, and the note names the operator, not a
    value read."""
    class Reflectors(nn.Module):
        def forward(self, x):
            return torch.geqrf(x)[0]

    import archcalc

    a = archcalc.analyze(Reflectors(), input_size=(2, 6, 4), device="meta")
    assert a.device == "cpu"
    assert any("runs on real devices only (aten::geqrf has no meta kernel)" in n for n in a.notes), a.notes
    assert a.records[-1].macs == 2 * d.geqrf(6, 4).adds


@pytest.mark.parametrize("factor_needs_grad", [False, True])
def test_the_gradient_of_a_cholesky_solve(factor_needs_grad):
    """cholesky_solve(B, L) with B from a Linear (2 x 6 x 3): ∂B a potrs of 6 right-hand sides, 6*6*5 = 180; where
    L needs a gradient, C = ∂B·Xᴴ (6*6*6) and -(C + Cᴴ)·L (2*6³): their 648 MACs are the products flop_counter
    sees in PyTorch's backward (its potrs is LAPACK's, which it does not see)."""
    from torch.utils.flop_counter import FlopCounterMode

    class Solve(nn.Module):
        def __init__(self):
            super().__init__()
            self.w, self.project = nn.Parameter(torch.randn(6, 6), requires_grad=factor_needs_grad), nn.Linear(3, 3)

        def forward(self, x):
            return torch.cholesky_solve(self.project(x), torch.linalg.cholesky(self.w @ self.w.T + 6 * torch.eye(6)))

    model = Solve()
    a = analyse_module(model, "solve", (2, 6, 3), CPU, torch.float32, backward=True)
    solve = next(r for r in a.records if r.type == "cholesky_solve")
    products = 6 * 6 * 6 + 2 * 6 ** 3 if factor_needs_grad else 0
    assert solve.backward.macs == 180 + products
    b, chol = model.project(torch.randn(2, 6, 3)), torch.linalg.cholesky(model.w @ model.w.T + 6 * torch.eye(6))
    x = torch.cholesky_solve(b, chol)
    with FlopCounterMode(display=False) as counter:
        torch.autograd.grad(x.sum(), [t for t in (b, chol) if t.requires_grad], retain_graph=True)
    assert counter.get_total_flops() == 2 * products


def test_the_reason_a_row_is_not_counted_is_said(cli, tmp_path):
    """The notes and the table's footer say why each row is not counted: its counter's reason where it has one
    (an iterative decomposition), "no formula" where none."""
    net = tmp_path / "spectral.py"
    net.write_text("import torch\nfrom torch import nn\n\n"
                   "class Whitening(nn.Module):\n"
                   "    def forward(self, x):\n"
                   "        u = torch.linalg.svd(x @ x.mT).U\n"
                   "        return torch.frexp(u @ x).mantissa\n")
    shown = cli("flops", f"{net}:Whitening", "--input", "4x6", "--device", "cpu")
    assert shown.code == 0
    footer = " ".join(shown.out.split())
    assert "Not counted (2): Whitening.linalg_svd (an iterative decomposition (eigenvalues or singular values): its " \
           "work depends on the matrix's values" in footer
    assert "Whitening.frexp (no formula)" in footer


@pytest.mark.parametrize("shape", [(6, 6), (2, 5, 5), (6, 4), (4, 6)])
@pytest.mark.parametrize("used", ["LU", "L", "U", "lu_factor"])
def test_the_gradient_of_an_lu_factorisation_depends_on_which_factor_is_used(shape, used):
    """linalg.lu's backward (linalg_lu_backward, which lu_factor's calls with both factors' gradients): Lᴴ·∂L
    (m*k*k) only where L receives a gradient, ∂U·Uᴴ (k*k*n) only where U does, and P· the result (m*m*n): the
    products flop_counter sees of PyTorch's own backward; and two triangular solves by the k x k triangles,
    (m + n)*k(k - 1)/2, which it does not. Square, tall and wide, batched: by hand and against flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    class Factor(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(*shape))

        def forward(self, x):
            if used == "lu_factor":
                return torch.linalg.lu_factor(self.w + x).LU
            _, low, up = torch.linalg.lu(self.w + x)
            return {"L": low, "U": up, "LU": (low, up)}[used]

    batch, (m, n) = (shape[0] if len(shape) == 3 else 1), shape[-2:]
    k = min(m, n)
    model = Factor()
    a = analyse_module(model, "lu", shape, CPU, torch.float32, backward=True)
    lu = next(r for r in a.records if r.type.startswith("linalg_lu"))
    gl, gu = used in ("L", "LU", "lu_factor"), used in ("U", "LU", "lu_factor")
    products = batch * (m * k * k * gl + k * k * n * gu + m * m * n)
    assert lu.backward.macs == products + batch * (m + n) * k * (k - 1) // 2
    out = model(torch.randn(*shape))
    with FlopCounterMode(display=False) as counter:
        sum(t.sum() for t in (out if isinstance(out, tuple) else (out,))).backward()
    assert counter.get_total_flops() == 2 * products
    assert ("Lᴴ·∂L" in lu.backward.text()["macs"]) == gl and ("∂U·Uᴴ" in lu.backward.text()["macs"]) == gu


@pytest.mark.parametrize("factor_needs_grad", [False, True])
def test_the_gradient_of_an_lu_solve(factor_needs_grad):
    """linalg.lu_solve(LU, pivots, B), B from a Linear (2 x 6 x 3): ∂B a getrs of 6 sides, 180; where LU needs a
    gradient, ∂X·Xᴴ (6*6*6) and ·Uᴴ (2*6³), the 648 MACs flop_counter sees, and two triangular solves by Uᴴ and
    the unit Lᴴ, 2*2*6*6*5/2 = 360 (its getrs is LAPACK's, which flop_counter does not see: without LU's gradient
    it sees only the Linear's ∂W, 2*6*3*3)."""
    from torch.utils.flop_counter import FlopCounterMode

    class Solve(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(6, 6) + 6 * torch.eye(6), requires_grad=factor_needs_grad)
            self.project = nn.Linear(3, 3)

        def forward(self, x):
            return torch.linalg.lu_solve(*torch.linalg.lu_factor(self.w), self.project(x))

    model = Solve()
    a = analyse_module(model, "solve", (2, 6, 3), CPU, torch.float32, backward=True)
    solve = next(r for r in a.records if r.type == "linalg_lu_solve")
    products = 6 * 6 * 6 + 2 * 6 ** 3 if factor_needs_grad else 0
    assert solve.backward.macs == 180 + products + (360 if factor_needs_grad else 0)
    lu, pivots = torch.linalg.lu_factor(model.w.detach())
    lu.requires_grad_(factor_needs_grad)
    x = torch.linalg.lu_solve(lu, pivots, model.project(torch.randn(2, 6, 3)))
    with FlopCounterMode(display=False) as counter:
        torch.autograd.grad(x.sum(), [lu] if factor_needs_grad else list(model.project.parameters()))
    assert counter.get_total_flops() == 2 * products + (0 if factor_needs_grad else 2 * 2 * 6 * 3 * 3)


@pytest.mark.parametrize("m, n", [(6, 4), (4, 6), (5, 5)])
@pytest.mark.parametrize("used", ["Q", "R", "QR"])
def test_the_gradient_of_a_qr_depends_on_which_factor_is_used(m, n, used):
    """linalg.qr's backward (linalg_qr_backward) computes gR·Rᴴ only where R receives a gradient, Qᴴ·gQ only where Q
    does, then Q·X (an m x m product for a wide A, with Q·gR) and a triangular solve, which flop_counter does not
    see: archcalc's MACs less the solve equal flop_counter's count of PyTorch's own backward, for each use of the
    factors, read off the autograd graph after the forward (3 matrices from a Linear, whose ∂W is 3*8*m*n)."""
    from torch.utils.flop_counter import FlopCounterMode

    class Factors(nn.Module):
        def __init__(self):
            super().__init__()
            self.project = nn.Linear(8, m * n)

        def forward(self, x):
            q, r = torch.linalg.qr(self.project(x).view(-1, m, n))
            return {"Q": q, "R": r, "QR": (q, r)}[used]

    model = Factors()
    a = analyse_module(model, "qr", (3, 8), CPU, torch.float32, backward=True)
    qr = next(r for r in a.records if r.type == "linalg_qr")
    k = min(m, n)
    solve = 3 * max(m, k) * k * (k - 1) // 2 if m >= n else 3 * m * m * (m - 1) // 2
    out = model(torch.randn(3, 8))
    with FlopCounterMode(display=False) as counter:
        sum(t.mean() for t in (out if isinstance(out, tuple) else (out,))).backward()
    assert qr.backward.macs - solve == counter.get_total_flops() // 2 - 3 * 8 * m * n
    assert ("gR·Rᴴ" in qr.backward.text()["macs"]) == ("R" in used)
    assert ("Qᴴ·gQ" in qr.backward.text()["macs"]) == ("Q" in used)


@pytest.mark.parametrize("m, n, k", [(6, 5, 4), (5, 6, 3), (8, 3, 3)])
@pytest.mark.parametrize("left, transpose", [(True, False), (True, True), (False, False), (False, True)])
@pytest.mark.parametrize("needs", ["C", "reflectors", "all"])
def test_the_gradient_of_ormqr(m, n, k, left, transpose, needs):
    """ormqr(A, τ, C)'s backward (ormqr_backward): ∂C is ormqr again with the transpose flipped, LAWN 41's count
    of the forward, which flop_counter does not see; where A or τ need a gradient, K = ∂Y·Yᴴ (m*n*r, r the
    reflectors' length) and householder_product's updates of K, reflectors in reverse order where left ==
    transpose: all products flop_counter sees of PyTorch's own backward. 6 x 5 by 4 reflectors from the left,
    in order: K 6*5*6 = 180, updates 6² + 13*18 + 6*3*9 = 432."""
    from torch.utils.flop_counter import FlopCounterMode

    r = m if left else n

    class Reflect(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.randn(r, k), requires_grad=needs != "C")
            self.tau = nn.Parameter(torch.rand(k), requires_grad=needs != "C")
            self.c = nn.Parameter(torch.randn(m, n), requires_grad=needs != "reflectors")

        def forward(self, x):
            return torch.ormqr(self.a, self.tau, self.c + x, left=left, transpose=transpose)

    model = Reflect()
    a = analyse_module(model, "ormqr", (m, n), CPU, torch.float32, backward=True)
    row = next(x for x in a.records if x.type == "ormqr")
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(m, n)).sum().backward()
    seen = counter.get_total_flops() // 2
    if (m, n, k, left, transpose) == (6, 5, 4, True, False) and needs == "reflectors":
        assert seen == 180 + 432
    assert row.backward.macs == seen + (d.ormqr(m, n, k, left).adds if needs != "reflectors" else 0)
    assert seen == (0 if needs == "C" else m * n * r + r * (r - k + 1 if left == transpose else r)
                    + (2 * r + 1) * (k * r - k * (k - 1) // 2) + r * (k - 1) * (2 * r - k + 1))


@pytest.mark.parametrize("m, n, k", [(6, 4, 4), (8, 5, 3), (7, 7, 7)])
def test_the_gradient_of_an_orthogonal_parametrisation(m, n, k):
    """torch.nn.utils.parametrizations.orthogonal on a Linear of n x m weights (its Householder map: A's lower
    triangle and τ = 2/(1 + |v|²) into householder_product): the backward's K = Q·∂Qᴴ and its reflector-by-reflector
    matrix-vector products are all products flop_counter sees, so archcalc's count of householder_product's gradient
    equals flop_counter's count of PyTorch's own, for every shape (and cholesky_inverse's 3n³ likewise)."""
    from torch.nn.utils.parametrizations import orthogonal
    from torch.utils.flop_counter import FlopCounterMode

    del k  # (the parametrisation takes k = min(m, n) reflectors)
    layer = orthogonal(nn.Linear(n, m, bias=False), orthogonal_map="householder")  # (a square one: matrix_exp by default)
    a = analyse_module(layer, "orthogonal", (2, n), CPU, torch.float32, backward=True)
    row = next(r for r in a.records if r.type == "linalg_householder_product")
    tall = (m, n) if m >= n else (n, m)
    x = torch.randn(*tall, requires_grad=True)
    tau = torch.rand(min(m, n), requires_grad=True)
    q = torch.linalg.householder_product(x, tau)
    with FlopCounterMode(display=False) as counter:
        q.sum().backward()
    assert row.backward.macs == counter.get_total_flops() // 2
    assert row.backward.text()["macs"].startswith("K = Q·∂Qᴴ")


def test_the_gradient_of_a_cholesky_inverse():
    from torch.utils.flop_counter import FlopCounterMode

    class Precision(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.eye(5).expand(2, 5, 5) + 0.1 * torch.randn(2, 5, 5).tril())

        def forward(self, x):
            return torch.cholesky_inverse(self.w) @ x

    a = analyse_module(Precision(), "precision", (2, 5, 3), CPU, torch.float32, backward=True)
    row = next(r for r in a.records if r.type == "cholesky_inverse")
    w = Precision().w.detach().requires_grad_()
    with FlopCounterMode(display=False) as counter:
        torch.cholesky_inverse(w).sum().backward()
    assert row.backward.macs == 3 * 2 * 5 ** 3 == counter.get_total_flops() // 2


@pytest.mark.parametrize("scale", [1e-9, 1e-4, 0.01, 0.3, 1.0, 2.5, 13.0, 110.0])
@pytest.mark.parametrize("batch", [1, 3])
def test_the_matrix_exponential_by_its_norm(scale, batch):
    """linalg.matrix_exp as PyTorch's mexp runs it: one matrix takes the Taylor degree its norm ‖A‖₁ allows (1, 2,
    4, 8, 12, 18: 0 to 5 products of n³), a norm beyond 18's bound degree 18 of A/2^s and s squarings; a batch
    degree 18 for every matrix, each squared its own s times. The products counted equal the bmm calls PyTorch's
    profiler records inside the kernel (matrices by their batch), at every norm."""

    class Exponential(nn.Module):
        def forward(self, a):
            return torch.linalg.matrix_exp(a)

    torch.manual_seed(0)
    a = torch.randn(batch, 6, 6) * scale / 6
    row = next(r for r in analyse_module(Exponential(), "mexp", Inputs.of_example(a), CPU, torch.float32).records
               if r.type == "linalg_matrix_exp")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        torch.linalg.matrix_exp(a)
    products = sum(e.input_shapes[0][0] for e in prof.events() if e.name == "aten::bmm")
    assert row.macs == products * 6 ** 3
    assert "products of 6^3" in row.formulas["macs"]
    meta = analyse_module(Exponential(), "mexp", (batch, 6, 6), torch.device("meta"), torch.float32)
    assert next(r for r in meta.records if r.type == "linalg_matrix_exp").note.startswith("its Taylor degree")
