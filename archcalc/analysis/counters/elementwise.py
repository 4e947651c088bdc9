"""Element-wise work: activations, arithmetic, softmax, reductions, scans, interpolation.

No multiply-accumulates; counted in the element-wise column:
  activations and arithmetic (ReLU, GELU, SiLU, Hardswish, Mish, sigmoid, x + y, x * y, softmax, ...)
                       1 per output element
  addcmul, addcdiv, lerp   2 per output element (a product or quotient, then an add)
  reductions (sum, mean, max, var, logsumexp, argmax, ...)   1 per input element
  cumsum, cumprod      1 per input element;  vander  (N - 1) per element of x (its running product)
  polar                4 per output element (a cosine, a sine, two products)
  trapezoid            as PyTorch computes it: even spacing Δx*(Σy - (y_0 + y_(N-1))/2), N + 4 a row; with x,
                       3 an interval, Δx's differences, /2 a row (cumulative_trapezoid: 3 an interval, 4 with x)
  trace                1 per diagonal element;  dist  2 per broadcast element (the difference, the norm);
  renorm               2 per element (the sub-tensors' norms, the scaling)
  interpolate / Upsample / grid_sample   per output element: nearest 0 (a copy); linear, bilinear, trilinear
                       2^d products and 2^d - 1 adds of the corner values (3, 7, 15); bicubic
                       4^d products and 4^d - 1 adds (31 in 2-D); area: adaptive average pooling
  dropout              the identity at inference (eval mode, or p = 0); in train mode (a training step's count)
                       its mask scaled by 1/(1 - p) and applied, 2 per element; a channel dropout's mask has one
                       entry a map: 1 per element + 1 a map
"""

from __future__ import annotations

from functools import partial
from math import prod

from torch import nn

from archcalc.analysis.counters.pooling import adaptive_count
from archcalc.analysis.counting import MODULES, OPS, Count, ModuleCall, OpCall
from archcalc.analysis.shapes import elements_text
from archcalc.formulas.numbers import grouped


def per_output(out: tuple, per: int, what: str) -> Count:
    n = per * prod(out)
    return Count(0, n, partial(_per_output_text, out, per, what, n))


def _per_output_text(out, per, what, n) -> dict[str, str]:
    if per == 1:
        return {"elementwise": f"1 per {what} element: {elements_text(out)} = {grouped(n)}"}
    return {"elementwise": f"{per} per {what} element: {per}*{elements_text(out)} = {grouped(n)}"}


# -- activations -----------------------------------------------------------------------------

ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.LogSigmoid, nn.Tanh, nn.Tanhshrink, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Hardshrink,
    nn.Softshrink, nn.Softplus, nn.Softsign, nn.Threshold, nn.GLU,
    nn.Softmax, nn.Softmax2d, nn.LogSoftmax, nn.Softmin,
)


@MODULES.register(*ACTIVATIONS)
def activation(call: ModuleCall) -> Count:
    n = prod(call.output)
    return Count(0, n, partial(_activation_text, call.module, call.output, n))


def _activation_text(m: nn.Module, out: tuple, n: int) -> dict[str, str]:
    text = {"elementwise": f"1 per element: {elements_text(out)} = {grouped(n)}"}
    params = list(m.parameters(recurse=False))
    if params:
        text["params"] = " + ".join(f"{p.numel()}" for p in params) + " (learned slope)"
    return text


ELEMENTWISE = (
    # arithmetic
    "add", "sub", "rsub", "mul", "div", "truediv", "floordiv", "floor_divide", "true_divide", "neg", "pow",
    "float_power", "sqrt", "rsqrt", "square", "reciprocal", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p",
    "abs", "sign", "sgn", "fmod", "remainder", "mod", "floor", "ceil", "round", "trunc", "frac", "erf", "erfc",
    "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "hypot", "clamp", "clip", "clamp_min",
    "clamp_max", "maximum", "minimum", "fmax", "fmin", "where", "nan_to_num", "xlogy", "logaddexp",
    # activations
    "relu", "relu6", "leaky_relu", "rrelu", "prelu", "elu", "selu", "celu", "gelu", "silu", "mish", "sigmoid",
    "logsigmoid", "tanh", "tanhshrink", "hardswish", "hardsigmoid", "hardtanh", "hardshrink", "softshrink",
    "softplus", "softsign", "threshold", "_threshold", "glu",
    "softmax", "log_softmax", "softmin",
    "log_sigmoid",  # F.logsigmoid's own name (torch._C._nn.log_sigmoid: xLSTM's gates)
    "outer", "ger", "kron",  # products of every pair, nothing summed: one multiplication per output element
    "diff",  # neighbours' differences
    # further functions of one or two elements, and their aliases
    "absolute", "negative", "multiply", "divide", "subtract", "arccos", "arcsin", "arctan", "arctan2", "arccosh",
    "arcsinh", "arctanh", "acosh", "asinh", "atanh", "fix", "logit", "erfinv", "lgamma", "digamma", "polygamma",
    "mvlgamma", "i0", "sinc", "heaviside", "copysign", "rad2deg", "deg2rad", "angle", "logaddexp2", "ldexp", "gcd",
    "lcm", "nextafter", "igamma", "igammac", "special_expit", "special_logit", "special_erf",
    "special_erfc", "special_erfcx", "special_erfinv", "special_gammaln", "special_digamma", "special_psi",
    "special_polygamma", "special_multigammaln", "special_i0", "special_i0e", "special_i1", "special_i1e",
    "special_ndtr", "special_ndtri", "special_log_ndtr", "special_sinc", "special_entr", "special_xlog1py",
    "special_xlogy", "special_exp2", "special_expm1", "special_log1p", "special_round", "special_softmax",
    "special_log_softmax", "special_zeta", "special_gammainc", "special_gammaincc", "special_airy_ai",
    "special_bessel_j0", "special_bessel_j1", "special_bessel_y0", "special_bessel_y1", "special_modified_bessel_i0",
    "special_modified_bessel_i1", "special_modified_bessel_k0", "special_modified_bessel_k1",
    "special_scaled_modified_bessel_k0", "special_scaled_modified_bessel_k1", "special_spherical_bessel_j0",
    # (not the orthogonal polynomials: POLYNOMIALS below)
    # their gradients, called by name in a custom autograd.Function's backward (SEW-D's XSoftmax): 1 per
    # element, as the backward rule (counting.ELEMENTWISE_BACKWARD) counts a softmax's
    "_softmax_backward_data", "_log_softmax_backward_data",
)


@OPS.register(*ELEMENTWISE)
def elementwise(call: OpCall) -> Count:
    return per_output(call.output, 1, "output")


@OPS.register("addcmul", "addcdiv", "lerp", "addr", "quantile", "nanquantile")
def fused_multiply_add(call: OpCall) -> Count:
    """input + value*t1*t2 (addcmul), input + value*t1/t2 (addcdiv), a + w*(b - a) (lerp), input + v1⊗v2
    (addr); quantile: the two order statistics around it interpolated, a lerp (the sort is comparisons)."""
    return per_output(call.output, 2, "output")


@OPS.register("linalg_cross", "cross")
def cross(call: OpCall) -> Count:
    """a × b: each component a_i b_j - a_j b_i, two products and a subtraction."""
    return per_output(call.output, 3, "output")


@OPS.register("index_add", "scatter_add", "scatter_reduce", "index_reduce", "segment_reduce")
def scattered(call: OpCall) -> Count:
    """Adds (or max, min, products) into places: one per source element, the tensor of values (index_add's
    ``source``, scatter's ``src``: the largest input)."""
    n = max(prod(shape) for shape in call.inputs)
    return Count(0, n, {"elementwise": f"1 per source element: {grouped(n)}"})


@OPS.register("embedding_bag")
def embedding_bag(call: OpCall) -> Count:
    """F.embedding_bag(input, weight, offsets, ..., mode): each bag sums (mean: and divides, max: compares) the
    rows its indices pick: one per picked element (the indices times the embedding's width)."""
    weight = call.inputs[1]
    n = prod(call.inputs[0]) * weight[-1]
    return Count(0, n, {"elementwise": f"1 per picked element: {elements_text(call.inputs[0])}*{weight[-1]} = "
                                       f"{grouped(n)}"})


@OPS.register("gumbel_softmax")
def gumbel_softmax(call: OpCall) -> Count:
    """F.gumbel_softmax(logits, tau, hard): noise -log(E) (log, negation), (logits + noise)/tau (add, divide) and
    the softmax: 5 per element; hard=True adds y_hard - y_soft.detach() + y_soft: 2 more."""
    per = 7 if call.arg(2, "hard", False) else 5
    return per_output(call.output, per, "element")


@OPS.register("sum", "mean", "amax", "amin", "max", "min", "prod", "nansum", "nanmean", "var", "std", "var_mean",
              "std_mean", "logsumexp", "special_logsumexp", "linalg_vector_norm", "argmax", "argmin", "all", "any", "aminmax",
              "count_nonzero")
def reduction(call: OpCall) -> Count:
    if call.of_two_tensors:  # torch.max(x, y), torch.min(x, y): element-wise, as torch.maximum
        return elementwise(call)
    n = prod(call.inputs[0])
    return Count(0, n, {"elementwise": f"1 per input element: {elements_text(call.inputs[0])} = {grouped(n)}"})


_SPECTRAL = (2, -2, "nuc")  # a matrix's 2-norm, its inverse and the nuclear norm: from its singular values


@OPS.register("norm", "linalg_norm", "linalg_matrix_norm")
def norm(call: OpCall) -> Count:
    """torch.norm, torch.linalg.norm, torch.linalg.matrix_norm (OWL-ViT normalises its embeddings with the
    second): a vector norm or the Frobenius norm is a reduction, 1 per input element; the matrix norms of the
    singular values (ord 2, -2, 'nuc') have no formula here."""
    matrix_only = call.name == "linalg_matrix_norm"
    order = call.arg(1, "p" if call.name == "norm" else "ord", "fro" if matrix_only else None)
    dim = call.arg(2, "dim", (-2, -1) if matrix_only else None)
    pair = isinstance(dim, (tuple, list)) and len(dim) == 2 or dim is None and len(call.inputs[0]) == 2
    if order in _SPECTRAL and (matrix_only or pair or order == "nuc"):
        return Count(None, None, {}, f"matrix norm ord={order!r}: from the singular values, no formula")
    return reduction(call)


POLYNOMIALS = tuple(f"special_{kind}_polynomial_{letter}" for kind, letters in (
    ("chebyshev", "tuvw"), ("shifted_chebyshev", "tuvw"), ("hermite", ("h", "he")), ("laguerre", "l"),
    ("legendre", "p")) for letter in letters)


@OPS.register(*POLYNOMIALS)
def orthogonal_polynomial(call: OpCall) -> Count:
    """torch.special.chebyshev_polynomial_t(x, n) and kin: the kernel recurs n times, or takes a closed form
    (cos(n acos x) for |x| < 1 and n > 6) by the value of x: no count a shape gives."""
    return Count(None, None, {}, "an orthogonal polynomial: its kernel recurs n times or takes a closed form by the "
                                 "value of x, so no formula counts it")


@OPS.register("trace")
def trace(call: OpCall) -> Count:
    """The diagonal's sum: 1 per diagonal element (a reduction's rule), min(m, n)."""
    n = min(call.inputs[0])
    return Count(0, n, {"elementwise": f"1 per diagonal element: min{tuple(call.inputs[0])} = {grouped(n)}"})


@OPS.register("dist")
def dist(call: OpCall) -> Count:
    """torch.dist(x, y, p): ‖x - y‖_p, the difference then the norm (a reduction): 2 per broadcast element."""
    return per_output(_broadcast(call.inputs[0], call.inputs[1]), 2, "broadcast")


@OPS.register("renorm")
def renorm(call: OpCall) -> Count:
    """torch.renorm(x, p, dim, maxnorm): each sub-tensor's norm (1 per element) and its scaling (1): 2 per element."""
    return per_output(call.inputs[0], 2, "input")


def _broadcast(a: tuple, b: tuple) -> tuple:
    rank = max(len(a), len(b))
    a, b = (1,) * (rank - len(a)) + tuple(a), (1,) * (rank - len(b)) + tuple(b)
    return tuple(max(x, y) for x, y in zip(a, b))


@OPS.register("cumsum", "cumprod", "cummax", "cummin", "logcumsumexp")
def scan(call: OpCall) -> Count:
    n = prod(call.inputs[0])
    return Count(0, n, {"elementwise": f"running {call.name[3:]}: 1 per input element: "
                                       f"{elements_text(call.inputs[0])} = {grouped(n)}"})


@OPS.register("polar")
def polar(call: OpCall) -> Count:
    """torch.polar(abs, angle) = abs·cos(angle) + i·abs·sin(angle): a cosine, a sine and two products, 4 per output
    element."""
    return per_output(call.output, 4, "output")


@OPS.register("linalg_vander", "vander")
def vander(call: OpCall) -> Count:
    """The Vandermonde matrix x^0 .. x^(N-1) as PyTorch makes it, a running product (cumprod) of x over its N - 1
    powers: 1 per element of the running product, (N - 1) per element of x."""
    x, out = call.inputs[0], call.output
    n = prod(x) * max(out[-1] - 1, 0)
    return Count(0, n, {"elementwise": f"the running product of the powers: {elements_text(x)}*{out[-1] - 1} = "
                                       f"{grouped(n)}"})


@OPS.register("trapezoid", "trapz", "cumulative_trapezoid")
def trapezoid(call: OpCall) -> Count:
    """The trapezoidal rule over N points along a dimension, as PyTorch's Integration.cpp computes it, R rows of
    I = R*(N - 1) intervals:
      trapezoid, even spacing      Δx*(Σy - (y_0 + y_(N-1))/2): the sum, N a row, and 4 a row
      trapezoid, sample points x   the differences Δx (x's own intervals), (y_i + y_(i+1))*Δx summed (3 an
                                   interval), /2 a row
      cumulative_trapezoid         (y_i + y_(i+1))*Δx/2 and the running sum: 3 an interval; with x, Δx's
                                   differences and /2 an interval more"""
    y = call.inputs[0]
    dim = call.kwargs.get("dim", -1)
    points = y[dim] if y else 1
    rows = prod(y) // points if points else 0
    intervals = rows * max(points - 1, 0)
    x = call.inputs[1] if len(call.inputs) > 1 and call.inputs[1] else None  # (sample points given as a tensor)
    steps = prod(x) // x[dim] * max(x[dim] - 1, 0) if x else 0  # (Δx: x's own intervals, broadcast over y)
    if call.name == "cumulative_trapezoid":
        n, text = (4 * intervals + steps, f"4*{intervals} intervals + Δx {steps}") if x else \
            (3 * intervals, f"3*{intervals} intervals")
    elif x:
        n, text = 3 * intervals + steps + rows, f"3*{intervals} intervals + Δx {steps} + /2 {rows}"
    else:
        n, text = rows * (points + 4), f"{rows} rows*({points} summed + 4)"
    return Count(0, n, {"elementwise": f"{text} = {grouped(n)}"})


@OPS.register("cosine_similarity", "pairwise_distance")
def similarity(call: OpCall) -> Count:
    """Per pair of vectors: products (or differences and squares) and their sums: 3 per input element."""
    n = 3 * prod(call.inputs[0])
    return Count(0, n, {"elementwise": f"3 per input element: 3*{elements_text(call.inputs[0])} = {grouped(n)}"})


# -- interpolation ---------------------------------------------------------------------------------

_CORNERS = {"linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4}


def interpolation_count(inp: tuple, out: tuple, mode: str) -> Count:
    d = len(out) - 2
    if mode == "area":
        return adaptive_count(inp[-d:], out, False)
    if mode not in _CORNERS:  # nearest, nearest-exact
        return Count(0, 0, {}, f"{mode}: a copy of the nearest input, no arithmetic")
    taps = _CORNERS[mode] ** d
    per = 2 * taps - 1
    n = per * prod(out)
    return Count(0, n, lambda: {"elementwise": f"{mode}: ({taps} products + {taps - 1} adds)*{elements_text(out)} "
                                               f"= {grouped(n)}"})


@OPS.register("interpolate", "upsample", "upsample_nearest", "upsample_bilinear")
def interpolate(call: OpCall) -> Count:
    default = {"upsample_bilinear": "bilinear"}.get(call.name, "nearest")
    return interpolation_count(call.inputs[0], call.output, call.arg(3, "mode", default))


@OPS.register("grid_sample")
def grid_sample(call: OpCall) -> Count:
    """F.grid_sample(input, grid, mode, ...): each output element interpolated from its corners, as interpolate."""
    return interpolation_count(call.inputs[0], call.output, call.arg(2, "mode", "bilinear"))


@MODULES.register(nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
def upsample(call: ModuleCall) -> Count:
    return interpolation_count(call.input, call.output, call.module.mode)


# -- dropout -------------------------------------------------------------------------------------

DROPOUT = ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout")


def dropout_count(out: tuple, p: float, training: bool, features: int = 0) -> Count:
    """Dropout in train mode: the mask (a random fill, 0) scaled by 1/(1 - p) and applied, 2 per element; a
    channel (feature) dropout's mask has one entry a map: 1 per element + 1 per mask entry (``features``).
    In eval mode, or with p = 0, the identity: 0."""
    if not training:
        return Count(0, 0, {}, "identity at inference (eval mode)")
    if not p:
        return Count(0, 0, {}, "identity: p = 0")
    n = prod(out)
    if features:
        total = n + features
        return Count(0, total, {"elementwise": f"mask of {grouped(features)} maps scaled + applied to "
                                               f"{elements_text(out)}: {grouped(total)}"})
    return Count(0, 2 * n, {"elementwise": f"mask scaled by 1/(1 - {p:g}) and applied: 2*{elements_text(out)} = "
                                           f"{grouped(2 * n)}"})


_FEATURE_DIMS = {"dropout1d": 1, "dropout2d": 2, "dropout3d": 3, "feature_alpha_dropout": None}
_FEATURE_MODULES = ((nn.Dropout1d, 1), (nn.Dropout2d, 2), (nn.Dropout3d, 3), (nn.FeatureAlphaDropout, None))


@OPS.register(*DROPOUT)
def dropout_op(call: OpCall) -> Count:
    """F.dropout*(input, p=0.5, training, inplace): ``training`` defaults to True, but for the alpha dropouts'."""
    training = bool(call.arg(2, "training", "alpha" not in call.name))
    return dropout_count(call.output, call.arg(1, "p", 0.5), training,
                         _mask_entries(call.output, _FEATURE_DIMS.get(call.name, 0)))


def _mask_entries(out: tuple, spatial: int | None) -> int:
    """A channel dropout's mask entries: one a map (the elements over the last ``spatial`` dimensions; for
    feature_alpha_dropout, all but N and C); 0 for an element-wise dropout."""
    if spatial == 0 or not out:
        return 0
    if spatial is None or (spatial == 2 and len(out) == 3):  # (dropout2d takes a 3-D input as N x C x L)
        return prod(out[:2])
    return prod(out[:-spatial]) if len(out) > spatial else 1


@MODULES.register(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
def dropout_module(call: ModuleCall) -> Count:
    m = call.module
    spatial = next((d for kind, d in _FEATURE_MODULES if isinstance(m, kind)), 0)
    return dropout_count(call.output, m.p, m.training, _mask_entries(call.output, spatial))
