"""Mixed precision (torch.autocast) in a training step simulated on the meta device.

PyTorch's autocast casts at the dispatcher, for CUDA and CPU tensors: on the meta device it does nothing. The
simulation applies its policy itself, operation by operation, as aten/src/ATen/autocast_mode.h and
autocast_mode.cpp define it for each device:

  lower       run in the low precision (float16 or bfloat16): every floating-point argument but float64 is
              cast to it; an fp32 parameter's cast is made once and kept until the autocast region ends
              (the cache autocast keeps for leaves that require grad)
  fp32        run in float32: every low-precision argument is cast up
  set dtype   (softmax, sum, cumsum, ...) asked for a float32 result, unless a dtype is given
  promote     every floating-point argument cast to the widest among them
  composite   (CPU einsum, tensordot, chain_matmul, multi_dot: not autocast entries, but the bmm and mm they
              become are) the decomposition recorded on the same inputs, then replayed above autograd with
              its parts cast by the policy

The operations are caught where a model calls them: torch.*, torch.nn.functional.*, torch.linalg.* and the
tensor methods and operators (x @ w), replaced while the region is open; and, by a torch-function mode, where
a model holds one of them from before the region opened (Hugging Face's FNet keeps partial(torch.fft.fftn),
a layer may keep self.mm = torch.matmul): see _Held. A call that escapes (an operation
of the lower list reached with float32 inputs, or one of the fp32 list left in low precision, outside the
operations caught) is refused, never counted wrong: see Escaped. Inside a caught operation autocast is off,
as PyTorch turns it off inside its own wrappers.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten, tree_leaves, tree_map, tree_unflatten

from archcalc.analysis.meta_autocast import meta_autocast
from archcalc.errors import ForwardError
from archcalc.patching import TURN, replaced


def _since(release: tuple[int, int], *names: str) -> set[str]:
    """Entries autocast_mode.h gained in ``release``: the policy is the installed PyTorch's, which will run the
    step, so on an older one they are not cast."""
    return set(names) if torch.__version__ >= release else set()


# CUDA: AT_FORALL_LOWER_PRECISION_FP, AT_FORALL_FP32, AT_FORALL_FP32_SET_OPT_DTYPE and AT_FORALL_PROMOTE of
# autocast_mode.h (tests/test_autocast.py compares them with the installed PyTorch's header), and the two
# cuDNN convolutions autocast_mode.cpp adds.
CUDA = {
    "lower": {"_convolution", "_scaled_dot_product_flash_attention", "_thnn_fused_gru_cell", "_thnn_fused_lstm_cell",
              "addbmm", "addmm", "addmv", "addr", "baddbmm", "bmm", "chain_matmul", "conv1d", "conv2d", "conv3d",
              "conv_tbc", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "convolution", "einsum",
              "gru_cell", "linalg_multi_dot", "linalg_vecdot", "linear", "lstm_cell", "matmul", "mm", "mv", "prelu",
              "rnn_relu_cell", "rnn_tanh_cell", "scaled_dot_product_attention", "cudnn_convolution",
              "cudnn_convolution_transpose"},
    "fp32": {"_upsample_bicubic2d_aa", "_upsample_bilinear2d_aa", "_upsample_nearest_exact1d",
             "_upsample_nearest_exact2d", "_upsample_nearest_exact3d", "acos", "asin",
             "binary_cross_entropy_with_logits", "cdist", "cosh", "cosine_embedding_loss", "cosine_similarity", "dist",
             "erfinv", "exp", "expm1", "frobenius_norm", "group_norm", "hinge_embedding_loss", "huber_loss", "kl_div",
             "l1_loss", "layer_norm", "log", "log10", "log1p", "log2", "logsumexp", "margin_ranking_loss", "mse_loss",
             "multi_margin_loss", "multilabel_margin_loss", "native_layer_norm", "nll_loss", "nll_loss2d",
             "nuclear_norm", "pdist", "poisson_nll_loss", "pow", "reciprocal", "renorm", "rsqrt", "sinh",
             "smooth_l1_loss", "soft_margin_loss", "softplus", "tan", "triplet_margin_loss", "upsample_bicubic2d",
             "upsample_bilinear2d", "upsample_linear1d", "upsample_nearest1d", "upsample_nearest2d",
             "upsample_nearest3d", "upsample_trilinear3d"} | _since((2, 12), "rms_norm"),
    "set dtype": {"cumprod", "cumsum", "linalg_matrix_norm", "linalg_vector_norm", "log_softmax", "prod", "softmax",
                  "sum"},
    # not an autocast entry on CUDA, but all it runs is: log_softmax (set dtype) and nll_loss (fp32)
    "fp32 inside": {"cross_entropy_loss"},
    "promote": {"addcdiv", "addcmul", "atan2", "bilinear", "cross", "dot", "grid_sampler", "index_put", "scatter_add",
                "tensordot", "vdot"},
}
# CPU: the AutocastCPU registrations of autocast_mode.cpp (the fp32 list without its quantisation entries, which no
# network here calls: an escape among them is refused all the same; its FFTs, which Hugging Face's FNet calls, and
# its linear algebra, which a flow's log-determinant or a Gaussian process's Cholesky runs, are in)
CPU = {
    "lower": {"conv1d", "conv2d", "conv3d", "bmm", "mm", "linalg_vecdot", "baddbmm", "addmm", "_addmm_activation",
              "addbmm", "linear", "_convolution", "matmul", "conv_tbc", "mkldnn_rnn_layer", "conv_transpose1d",
              "conv_transpose2d", "conv_transpose3d", "prelu", "scaled_dot_product_attention",
              "_native_multi_head_attention"},
    "fp32": {"avg_pool3d", "binary_cross_entropy", "grid_sampler", "polar", "prod", "quantile", "nanquantile", "stft",
             "cdist", "grid_sampler_2d", "grid_sampler_3d", "trace", "view_as_complex", "max_pool3d", "max_unpool2d",
             "max_unpool3d", "adaptive_avg_pool3d", "reflection_pad1d", "reflection_pad2d", "replication_pad1d",
             "replication_pad2d", "replication_pad3d", "mse_loss", "cosine_embedding_loss", "nll_loss", "nll_loss2d",
             "hinge_embedding_loss", "poisson_nll_loss", "smooth_l1_loss", "cross_entropy_loss", "l1_loss",
             "huber_loss", "margin_ranking_loss", "soft_margin_loss", "triplet_margin_loss", "multi_margin_loss",
             "ctc_loss", "kl_div", "multilabel_margin_loss", "binary_cross_entropy_with_logits",
             "fractional_max_pool2d", "fractional_max_pool3d", "adaptive_max_pool3d",
             "fft_fft", "fft_ifft", "fft_fft2", "fft_ifft2", "fft_fftn", "fft_ifftn", "fft_rfft", "fft_irfft",
             "fft_rfft2", "fft_irfft2", "fft_rfftn", "fft_irfftn", "fft_hfft", "fft_ihfft",
             "cholesky", "cholesky_inverse", "cholesky_solve", "inverse", "lu_solve", "orgqr", "ormqr", "pinverse",
             "linalg_cond", "linalg_matrix_rank", "linalg_solve", "linalg_cholesky", "linalg_svdvals",
             "linalg_eigvals", "linalg_eigvalsh", "linalg_inv", "linalg_householder_product", "linalg_tensorinv",
             "linalg_tensorsolve", "geqrf", "_lu_with_info", "qr", "svd", "triangular_solve", "linalg_qr",
             "linalg_cholesky_ex", "linalg_svd", "linalg_eig", "linalg_eigh", "linalg_lstsq", "linalg_inv_ex"},
    "set dtype": set(),
    "promote": {"stack", "cat", "index_copy"},
    # not autocast entries, but composites of one (bmm, mm): replayed, their parts cast (_Region.replayed)
    "composite": {"einsum", "tensordot", "chain_matmul", "linalg_multi_dot"},
    # not an autocast entry, but F.pad runs reflection_pad2d, replication_pad3d, ... of the fp32 list by its
    # mode and the number of padded dimensions (timm's BlurPool2d: reflect): _pad_kernel
    "pad": {"pad"},
}
POLICIES = {"cuda": CUDA, "cpu": CPU}
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}

# Where a model reaches an operation, by the name autocast knows it by: the namespaces searched for each
# name, and the operators and Python-level names that are the same operation.
_OWNERS = (torch, F, torch.Tensor, torch.linalg, torch._C._nn, torch.fft)
_PREFIXES = {torch.fft: "fft_", torch.linalg: "linalg_"}  # (torch.fft.fftn is autocast's fft_fftn, torch.linalg.inv
# its linalg_inv)
_ALIASES = {"__matmul__": "matmul", "__rmatmul__": "matmul", "__pow__": "pow", "__rpow__": "pow",
            "cross_entropy": "cross_entropy_loss", "linalg_matmul": "matmul"}  # (torch.linalg.matmul: matmul's
# alias, cast as matmul is; torch.linalg.cross and lu_solve are aten's linalg_cross and linalg_lu_solve, which
# autocast does not list, unlike torch.cross and torch.lu_solve)
# The operations below autograd that the caught ones become (conv2d -> convolution, softmax -> _softmax), by
# device, to find an escape by: a "lower" one in float32, or an "fp32" one left in low precision.
_BELOW = {
    "cuda": {"lower": {"mm", "addmm", "bmm", "baddbmm", "addbmm", "mv", "addmv", "addr", "convolution", "_convolution",
                       "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
                       "_thnn_fused_lstm_cell", "_thnn_fused_gru_cell"},
             "fp32": {"_softmax", "_log_softmax", "native_layer_norm", "native_group_norm", "nll_loss_forward",
                      "nll_loss2d_forward", "mse_loss", "exp", "log", "pow", "sum", "cumsum", "prod", "logsumexp",
                      "rsqrt", "reciprocal"}},
    "cpu": {"lower": {"mm", "addmm", "bmm", "baddbmm", "addbmm", "convolution", "_convolution",
                      "_scaled_dot_product_flash_attention_for_cpu"},
            "fp32": {"nll_loss_forward", "nll_loss2d_forward", "mse_loss", "prod", "reflection_pad1d",
                     "reflection_pad2d", "replication_pad1d", "replication_pad2d", "replication_pad3d",
                     "avg_pool3d", "max_pool3d_with_indices", "_adaptive_avg_pool3d", "adaptive_max_pool3d",
                     "grid_sampler_2d", "grid_sampler_3d", "binary_cross_entropy"}},
}


def _pad_kernel(input, pad, mode="constant", value=None) -> str | None:
    """The padding kernel F.pad(input, pad, mode) runs: reflection_pad2d for mode="reflect" over 2 dimensions
    (4 numbers), replication_pad1d for "replicate" over one, ...; None for constant and circular padding."""
    name = {"reflect": "reflection_pad", "replicate": "replication_pad"}.get(mode)
    return f"{name}{len(pad) // 2}d" if name else None


class Escaped(ForwardError):
    """An operation autocast would cast, reached where the simulation does not catch it."""


def _policy_of(name: str, policy: dict) -> str | None:
    name = _ALIASES.get(name, name)
    return next((kind for kind, names in policy.items() if name in names), None)


def _eligible(t) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64


class _Region:
    """One open autocast region: its cast cache, whether a caught operation is running (autocast off), and
    the torch.autocast regions the model opens inside it (on or off, and their dtype: ``states``)."""

    def __init__(self, device: str, dtype: torch.dtype, copies: set[int]):
        self.device = device
        self.states = [(True, dtype)]  # (enabled, low-precision dtype): the innermost region last
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.copies = copies  # the cached casts' storages, for the simulation's terms (kept after the region)
        self.depth = 0

    @property
    def dtype(self) -> torch.dtype:
        return self.states[-1][1]

    @property
    def casting(self) -> bool:
        """Autocast is on here: not inside a caught operation, nor in a region the model turned it off in."""
        return not self.depth and self.states[-1][0]

    def cast(self, t, to: torch.dtype):
        if not _eligible(t) or t.dtype == to:
            return t
        if to == self.dtype and t.dtype == torch.float32 and t.requires_grad and t.is_leaf and not t._is_view():
            if id(t) not in self.cache:
                self.cache[id(t)] = (t, t.to(to))  # (the source is held, so that its id is not reused)
                self.copies.add(self.cache[id(t)][1].untyped_storage()._cdata)
            return self.cache[id(t)][1]
        return t.to(to)

    def cast_all(self, values, to: torch.dtype):
        """Every argument cast, the last first: PyTorch's autocast casts a kernel's arguments in a C++ call's
        argument list, which GCC (the compiler of PyTorch's Linux builds) evaluates right to left. The order
        is autograd's: the later cast's backward runs first (a convolution's weight gradient is cast up
        before its bias's), and with it which gradient is alive at the backward's peak."""
        leaves, spec = tree_flatten(values)
        cast = [self.cast(a, to) for a in reversed(leaves)][::-1]
        return tree_unflatten(cast, spec)

    def wrap(self, function, kind: str):
        region = self

        def caught(*args, **kwargs):
            if not region.casting:  # inside another caught operation, or turned off by the model
                return function(*args, **kwargs)
            if kind == "set dtype":
                first = next((a for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)), None)
                if _eligible(first) and kwargs.get("dtype") is None:
                    kwargs = {**kwargs, "dtype": torch.float32}
                    if region._half_to_float(function, first, args, kwargs):
                        return region._softmax_half_to_float(function, args, kwargs)
            elif kind == "composite":
                return region.replayed(function, args, kwargs)
            else:
                if kind == "pad" and _pad_kernel(*args, **kwargs) not in POLICIES[region.device]["fp32"]:
                    return function(*args, **kwargs)  # (constant and circular padding: not cast)
                args, kwargs = region.cast_all((args, kwargs), region.target(kind, args, kwargs))
            region.depth += 1
            try:
                return function(*args, **kwargs)
            finally:
                region.depth -= 1

        caught.__name__ = getattr(function, "__name__", "caught")
        caught.__wrapped__ = function
        return caught

    def target(self, kind: str, args, kwargs) -> torch.dtype:
        """The dtype an operation of ``kind`` runs in: lower, fp32, or promote (the widest among its arguments)."""
        if kind == "lower":
            return self.dtype
        if kind in ("fp32", "fp32 inside", "pad"):
            return torch.float32
        floats = [a.dtype for a in tree_leaves((args, kwargs)) if _eligible(a)]
        return torch.float32 if torch.float32 in floats else self.dtype

    def replayed(self, function, args, kwargs):
        """A composite operation the policy does not name, whose parts it does (the CPU's einsum, tensordot,
        chain_matmul and multi_dot, which become bmm or mm), run as PyTorch runs it under autocast: each
        operation of its decomposition cast by the policy as the composite's kernel calls it. The decomposition
        is recorded first on the same meta inputs, outside the simulation's modes and autograd (nothing
        allocated, nothing counted); then replayed above autograd, operation by operation, so that autograd
        keeps what it keeps for each and the tracker sees each storage made."""
        record = _Record(self)
        calls = record.calls
        try:
            self.depth += 1  # (autocast is off inside: the recording casts as the policy says, by itself)
            try:
                with _disable_current_modes(), torch.no_grad(), record:
                    result = function(*args, **kwargs)
            finally:
                self.depth -= 1
            made = {id(t): t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}

            def replay(x):
                return made.get(id(x), x) if isinstance(x, torch.Tensor) else x

            last = {}  # each recorded tensor's last use (the result's: after the last call), so that the replay
            for i, (_, given, _, _) in enumerate(calls):  # frees what the composite's kernel frees
                last.update((id(t), i) for t in tree_leaves(given) if isinstance(t, torch.Tensor))
            last.update((id(t), len(calls)) for t in tree_leaves(result) if isinstance(t, torch.Tensor))
            for i, (func, given, kind, out) in enumerate(calls):
                a, k = tree_map(replay, given)
                if kind in ("lower", "fp32", "promote"):  # (cast as at the top level: a cached weight copy too)
                    a, k = self.cast_all((a, k), self.target(kind, a, k))
                self.depth += 1  # (its arguments cast already: nothing for the watch to find)
                try:
                    got = func(*a, **k)
                finally:
                    self.depth -= 1
                made.update((id(o), g) for o, g in zip(tree_leaves(out), tree_leaves(got))
                            if isinstance(o, torch.Tensor) and last.get(id(o), -1) > i)
                for t in tree_leaves(given):
                    if isinstance(t, torch.Tensor) and last.get(id(t)) == i:
                        made.pop(id(t), None)
                del a, k, got
            return tree_map(replay, result)
        finally:
            calls.clear()  # (the recorded inputs are the model's tensors: not to be kept past the call)

    def _half_to_float(self, function, first, args, kwargs) -> bool:
        """CUDA's softmax of a float16 tensor asked for float32 runs one kernel (half_to_float), no copy."""
        name = getattr(function, "__name__", "")
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        return (self.device == "cuda" and first.dtype == torch.float16 and name in ("softmax", "log_softmax")
                and isinstance(dim, int))

    def _softmax_half_to_float(self, function, args, kwargs):
        x, dim = args[0], (args[1] if len(args) > 1 else kwargs.get("dim"))
        op = torch._softmax if function.__name__ == "softmax" else torch._log_softmax
        self.depth += 1
        try:
            return op(x, dim, True)
        finally:
            self.depth -= 1


class _Record(TorchDispatchMode):
    """The decomposition of a composite (_Region.replayed): each call, its arguments as given, and its output
    as the policy casts it (a bmm of float32 parts made in low precision)."""

    def __init__(self, region: _Region):
        super().__init__()
        self.region, self.policy = region, POLICIES[region.device]
        self.calls: list = []  # (func, (args, kwargs), kind, output)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kind, kwargs = _policy_of(func.overloadpacket.__name__, self.policy), kwargs or {}
        cast = (args, kwargs)
        if kind in ("lower", "fp32", "promote"):
            to = self.region.target(kind, args, kwargs)
            cast = tree_map(lambda t: t.to(to) if _eligible(t) and t.dtype != to else t, (args, kwargs))
        out = func(*cast[0], **cast[1])
        self.calls.append((func, (args, kwargs), kind, out))
        return out


class _Watch(TorchDispatchMode):
    """Below autograd: an operation that should have been cast and was not, outside the caught ones."""

    def __init__(self, region: _Region):
        super().__init__()
        self.region = region
        self.lower, self.fp32 = _BELOW[region.device]["lower"], _BELOW[region.device]["fp32"]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        casting = self.region.casting
        inputs = [a for a in tree_leaves((args, kwargs)) if _eligible(a)] if casting else []
        if name in self.lower and any(a.dtype == torch.float32 for a in inputs):  # (before it runs: with mixed
            # dtypes, as torchvision's MaxViT gives CPU autocast's bmm inside an einsum, it would fail)
            raise Escaped(f"autocast is not simulated for this network: {name} ran in float32 where "
                          f"autocast would cast it (called from an operation archcalc does not catch)")
        out = func(*args, **(kwargs or {}))
        if casting:
            outputs = [o for o in tree_leaves(out) if _eligible(o)]
            if (name in self.fp32 and any(a.dtype != torch.float32 for a in inputs)
                    and any(o.dtype != torch.float32 for o in outputs)):
                raise Escaped(f"autocast is not simulated for this network: {name} ran in "
                              f"{outputs[0].dtype} where autocast would run it in float32")
        return out


class _Held(TorchFunctionMode):
    """A policy's operation called through a reference to PyTorch's own function, taken before the region
    replaced it (``partial(torch.fft.fftn, dim=(1, 2))`` at a model's construction): cast as the caught one
    is. Where autocast is off (inside a caught operation, which calls PyTorch's function itself, or in a region
    the model turned off) the call passes."""

    def __init__(self, region: _Region, caught: dict):
        super().__init__()
        self.region, self.caught = region, caught  # id(PyTorch's function) -> its caught replacement

    def __torch_function__(self, func, types, args=(), kwargs=None):
        caught = self.caught.get(id(func)) if self.region.casting else None
        return (caught or func)(*args, **(kwargs or {}))


def _entry_points(policy: dict) -> list[tuple[object, str, object, str]]:
    """(owner, name, function, its kind in the policy): every callable a model can reach a policy's operation
    by (a tensor method of the C base class too: torch.Tensor shadows it while the region is open)."""
    found = []
    for owner in _OWNERS:
        names = set(vars(owner)) | (set(dir(torch._C.TensorBase)) if owner is torch.Tensor else set())
        for name in sorted(names):
            function = getattr(owner, name, None)
            kind = _policy_of(_PREFIXES.get(owner, "") + name, policy)
            if kind and callable(function) and not isinstance(function, type):
                found.append((owner, name, function, kind))
    return found


@contextmanager
def autocast(device: str, dtype: str, copies: set[int] | None = None):
    """torch.autocast(device, dtype) for a forward pass on the meta device, on this thread (patching.py);
    the storages of the parameters' cached casts are added to ``copies``."""
    policy = POLICIES[device]
    region = _Region(device, DTYPES[dtype], set() if copies is None else copies)
    try:
        with TURN:  # (the functions read are PyTorch's, not another thread's simulation's)
            entries = _entry_points(policy)
            points = [(owner, name, region.wrap(function, kind)) for owner, name, function, kind in entries]
            held = _Held(region, {id(entry[2]): point[2] for entry, point in zip(entries, points)})
            # (the model's own torch.autocast regions inside, on this device or "meta", turn it off or on)
            with replaced(points), meta_autocast(("meta", device), region.states), _Watch(region), held:
                yield region
    finally:
        region.cache.clear()
