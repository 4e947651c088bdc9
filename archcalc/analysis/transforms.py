"""torch.func's transforms in a forward: vmap's batch and forward-mode AD's tangents.

torch.vmap: the function it maps sees one sample (a BatchedTensor's shape leaves the mapped dimension out), and each
operation runs for every sample of the levels its inputs are batched at. So a row made under vmap shows one sample's
shapes and counts its work that many times: MACs, element-wise work and the activations it makes x B (x B1*B2
nested), with a note; torch.func.grad's torch.autograd.grad likewise.

Forward-mode AD (torch.func.jvp, jacfwd, hessian; torch.autograd.forward_ad's dual tensors): each operation computes
its output's tangent beside it, ẏ = Σ ∂y/∂xᵢ · ẋᵢ over the inputs that carry one, a product of the same size as the
backward's ∂xᵢ for each (Y = A·B: Ẏ = Ȧ·B + A·Ḃ; a convolution's: conv(ẋ, W) + conv(x, Ẇ)). So a row whose inputs
carry tangents adds its backward formula's products for those inputs (the layer's weights where they carry one) to
its own: with_tangents.

Forward-mode AD over a gradient (hessian, jvp of grad): forward_over_reverse.py, the gradient's operations' tangents.

Found at each call while a transform is active (torch._C._functorch.maybe_current_level() not None, or a dual level
entered: one C call and one attribute read, nothing otherwise), from the input tensors' wrappers (a grad transform's
wraps a vmap's, which may wrap another) and their tangents at the current dual level."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager

import torch
import torch.autograd.forward_ad as forward_ad

from archcalc.analysis.counting import Count, Needs

_F = torch._C._functorch
_LEVEL = getattr(_F, "maybe_current_level", None)
_UNWRAPPED = all(hasattr(_F, name) for name in ("is_functorch_wrapped_tensor", "is_batchedtensor", "maybe_get_level",
                                                 "maybe_get_bdim", "get_unwrapped"))

FORWARD_OVER_REVERSE = Count(None, None, {}, "forward-mode AD computes the tangents of these gradients' operations "
                                            "(forward over reverse), here where its tangents are out of the trace's "
                                            "sight (nested forward mode, is_grads_batched, a PyTorch whose functorch "
                                            "stack cannot be stepped beneath): not counted")
# Why a row's tangents are out of the trace's sight (out_of_sight()): its count, kept in Tracer.tangents
HIDDEN_TANGENT = Count(None, None, {}, "forward-mode AD runs beneath torch.func.grad here (jvp of grad, hessian, a "
                                      "dual tensor given to grad), whose level hides the tangents from the trace: this "
                                      "operation's tangent is not counted")
SOME_PARAMETERS = Count(None, None, {}, "forward-mode AD over some of its parameters only (a recurrent layer's or an "
                                       "attention's biases, the rest held): its tangent's rule takes every parameter "
                                       "alike, and PyTorch's kernels multiply the others' zeros as they will: not "
                                       "counted")
NESTED_TANGENTS = Count(None, None, {}, "forward-mode AD nested in forward-mode AD (jvp of jvp, jacfwd of jacfwd): "
                                       "the tangents of tangents have no formula here: not counted")
REVERSE_OVER_FORWARD = Count(None, None, {}, "it differentiates operations that computed forward-mode AD's tangents "
                                            "out of the trace's sight (reverse over forward where the tangents are "
                                            "nested or hidden: grad of jvp of jvp), whose backward has no formula "
                                            "here: not counted")


def out_of_sight() -> Count | None:
    """Why a row's tangents cannot be counted here, where that is so: forward-mode AD nested in itself (two jvp
    levels: each operation's tangent of a tangent), or, on a PyTorch whose interpreter stack cannot be stepped
    beneath (_beneath_grad), beneath a grad transform (jvp of grad, hessian's jacfwd of jacrev, a dual tensor given
    to grad), where forward_ad.unpack_dual at the grad level does not reach the jvp level's dual tensors."""
    try:
        from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters
        kinds = [i.key() for i in retrieve_all_functorch_interpreters()]
    except (ImportError, AttributeError, RuntimeError):  # (a PyTorch without them: assume the worst)
        return HIDDEN_TANGENT if forward_ad._current_level >= 0 else None
    jvp, grad = _F.TransformType.Jvp, _F.TransformType.Grad
    if kinds.count(jvp) > 1:
        return NESTED_TANGENTS
    if not _STEPS_BENEATH and ((jvp in kinds and grad in kinds[kinds.index(jvp):]) or
                               (forward_ad._current_level >= 0 and grad in kinds)):
        return HIDDEN_TANGENT
    return None


def active() -> bool:
    """Whether a functorch transform (vmap, grad, jacrev, ...) runs, or a dual level of forward-mode AD is entered."""
    return (_LEVEL is not None and _LEVEL() is not None) or forward_ad._current_level >= 0


def tangents(tensors: list) -> list | None:
    """Each tensor's tangent at the current dual level (forward-mode AD), None for one that carries none; None where
    none does. A functorch transform's wrappers (jacfwd's vmap over its basis, hessian's reverse inside its forward)
    are looked through: the dual may be held one of them down."""
    level = forward_ad._current_level
    if level < 0:
        return None
    found = [_tangent(t, level) if isinstance(t, torch.Tensor) and t.is_floating_point() else None for t in tensors]
    return found if any(t is not None for t in found) else None


def _tangent(t: torch.Tensor, dual: int) -> torch.Tensor | None:
    with _beneath_grad() as top:
        while True:
            tangent = None
            if top is None or level(t) <= top:  # (a wrapper above the jvp level: its grad's, no dual there)
                try:
                    tangent = forward_ad.unpack_dual(t, level=dual).tangent
                except RuntimeError:  # (no batching rule for _unpack_dual: look inside the vmap's wrapper)
                    tangent = None
            if tangent is not None or not (_UNWRAPPED and _F.is_functorch_wrapped_tensor(t)):
                return tangent
            t = _F.get_unwrapped(t)


_STEPS_BENEATH = all(hasattr(_F, name) for name in ("pop_dynamic_layer_stack", "push_dynamic_layer_stack",
                                                    "peek_interpreter_stack"))


@contextmanager
def _beneath_grad():
    """The functorch interpreters above the innermost jvp's (a grad's, and a vmap's inside it: hessian's jacrev)
    stepped off the stack for the while (all of them under forward_ad's own dual level), as PyTorch's
    temporarily_pop_interpreter_stack does one: forward-mode AD's dual tensors live at the jvp level, and an unpack
    at a grad level above it does not reach them. Gives the level then on top (None: none is)."""
    popped = []
    try:
        while _STEPS_BENEATH:
            top = _F.peek_interpreter_stack()
            if top is None or top.key() == _F.TransformType.Jvp:
                break
            popped.append(_F.pop_dynamic_layer_stack())
        top = _F.peek_interpreter_stack() if _STEPS_BENEATH else None
        yield None if top is None else top.level()
    finally:
        for layer in reversed(popped):
            _F.push_dynamic_layer_stack(layer)


def tangent_terms(inputs: list, params: list, times: tuple[int, str] | None) -> tuple[tuple[int, ...], int,
                                                                                     tuple[int, ...]] | None:
    """Where the inputs (or ``params``) carry tangents: how many times more than the row (``times``: its vmap's) each
    input's tangent runs, the weights' (the most any runs) and each parameter's (jacfwd's tangents are batched by
    its vmap over the basis, the primals not), 0 for one that carries none; else None."""
    carried = tangents(inputs + params)
    if carried is None:
        return None
    base = times[0] if times else 1
    extra = [(factor(inputs + [t]) or (base,))[0] // base if t is not None else 0 for t in carried]
    return tuple(extra[:len(inputs)]), max(extra[len(inputs):], default=0), tuple(extra[len(inputs):])


def tangent_count(gradient, extra: tuple[int, ...], weights: int, params: tuple[int, ...] = (),
                  module=None) -> Count:
    """The products of a row's tangent: its backward formula's (``gradient``: Needs -> Count) for every operand, as
    PyTorch 2.13 computes every operand's term of a product's tangent, one without a tangent (``extra`` 0) taken as
    zeros, once (a linear layer's jvp is x'·Wᵀ + x·W'ᵀ, two products, though W carries none). Where the operands'
    tangents are batched differently (jacfwd's basis batches the input's ``extra`` times, a weight's zero tangent
    ``weights`` times, once), each product runs as many times as the most batched tangent it reads: x'·Wᵀ x B,
    x·W'ᵀ once, and an attention's Ṗ·V, whose Ṗ comes of Q̇ and K̇ and so of the projections' input and weights, x B.
    The backward formula says which products read which operands' tangents (a term of the gradient is computed where
    an operand it leads to needs one, as the term of the tangent is where one it reads carries one), so with S_k the
    operands batched at least f_k times (f_1 > f_2 > ...): Σ_k (f_k - f_k+1) · gradient(S_k) (batched_terms). A
    layer's parameters each by its own (``params``, in the order Needs names them for ``module``): a bias carrying
    jacfwd's basis batches no product of the weight's, whose tangent is zeros once."""
    n = len(extra)
    factors = tuple(max(e, 1) for e in extra) + (tuple(max(e, 1) for e in params) or (max(weights, 1),))
    every = gradient(Needs((True,) * n, True))
    levels = sorted(set(factors), reverse=True)
    if every.macs is None or levels == [1]:
        return every
    parts = []
    for k, f in enumerate(levels):
        at = [g >= f for g in factors]
        own = tuple(at[n:])
        part = every if all(at) else gradient(Needs(tuple(at[:n]), any(own), own if params else (), module))
        if part.macs is None:
            return Count(None, None, {}, "its operands' tangent terms, batched differently, have no formula apart")
        parts.append((f, f - (levels[k + 1] if k + 1 < len(levels) else 0), part.macs, all(at)))
    return batched_terms(every, parts)


def batched_terms(tangent: Count, parts: list[tuple[int, int, int, bool]]) -> Count:
    """The tangent's count where its operands' tangents are batched differently (jacfwd: the input's by its basis, a
    weight's zero tangent once): ``parts`` (f_k, f_k - f_k+1, the products reading a tangent batched f_k times or more,
    whether those are all of them), summed."""
    macs = sum(times * products for _, times, products, _ in parts)
    writer = tangent.formulas
    shown = " + ".join(f"{times} x {products:,} ({'every product' if every else f'those reading a tangent x {f}'})"
                       for f, times, products, every in parts)

    def text() -> Mapping[str, str]:
        own = dict(writer() if callable(writer) else writer)
        own["macs"] = f"{own.get('macs', '')}; each product as many times as the most batched tangent it reads " \
                      f"(x {', '.join(str(f) for f, *_ in parts)}): {shown} = {macs:,}"
        return own

    return tangent._replace(macs=macs, formulas=text)


def with_tangents(count: Count, tangent: Count, note: str = "forward-mode AD: its tangent's products added (its "
                                                              "backward formula's, every operand's term)") -> Count:
    """A row's count with its tangents' work (forward-mode AD) added, ``note`` saying so: "not counted" where either
    is."""
    if count.macs is None:
        return count
    if tangent.macs is None:  # (saying why where the tangent's rule does)
        return Count(None, None, {}, f"forward-mode AD computes its tangent beside it: {tangent.note}" if tangent.note
                     else "forward-mode AD computes its tangent beside it, for which there is no formula: not counted")
    own, theirs = count.formulas, tangent.formulas
    elementwise = None if count.elementwise is None else count.elementwise + (tangent.elementwise or 0)
    figures = {"macs": (count.macs, tangent.macs), "elementwise": (count.elementwise, tangent.elementwise or 0)}

    def text() -> Mapping[str, str]:  # (ending in the row's whole figure: vmap's scaled reads it off the end)
        mine = own() if callable(own) else own
        added = theirs() if callable(theirs) else theirs
        return {key: (f"{mine[key]} + tangents (forward-mode AD): {added[key]}" + _in_all(*figures[key])
                      if key in mine and key in figures else f"{mine.get(key, '0')} + tangents (forward-mode AD): "
                                                             f"{added[key]}") if key in added else
                mine[key] for key in {**mine, **added}}

    return Count(count.macs + tangent.macs, elementwise, text, f"{count.note}; {note}" if count.note else note)


def _in_all(own: int | None, tangents: int | None) -> str:
    """A row's own figure and its tangents' summed, where both are known and the tangents add something."""
    return f"; in all {own:,} + {tangents:,} = {own + tangents:,}" if own is not None and tangents else ""


def levels(t: torch.Tensor) -> list[torch.Tensor]:
    """The tensor and those a torch.func transform's wrappers hold under it, outermost first (grad's
    GradTrackingTensor over vmap's BatchedTensor over the plain tensor): each grad level keeps an autograd graph of its
    own, so an operation run at an inner level made a node at each level below it too."""
    chain = [t]
    while _UNWRAPPED and _F.is_functorch_wrapped_tensor(t):
        t = _F.get_unwrapped(t)
        chain.append(t)
    return chain


def level(t: torch.Tensor) -> int:
    """Its functorch level (0: a plain tensor, regular autograd's)."""
    return _F.maybe_get_level(t) if _UNWRAPPED and _F.is_functorch_wrapped_tensor(t) else 0


def factor(tensors) -> tuple[int, str] | None:
    """(how many times the call runs, in words) where an input is batched by torch.vmap: the product of the batch
    sizes of the levels its inputs carry; None where none is."""
    if not _UNWRAPPED:
        return None
    sizes: dict[int, int] = {}
    for t in tensors:
        while isinstance(t, torch.Tensor) and _F.is_functorch_wrapped_tensor(t):
            inner = _F.get_unwrapped(t)
            if _F.is_batchedtensor(t):
                sizes[_F.maybe_get_level(t)] = inner.shape[_F.maybe_get_bdim(t)]
            t = inner
    if not sizes:
        return None
    times = 1
    for size in sizes.values():
        times *= size
    levels = " x ".join(str(sizes[level]) for level in sorted(sizes))
    return times, f"torch.vmap over {levels}" if len(sizes) == 1 else f"nested torch.vmap over {levels}"


def scaled(count: Count, times: int, words: str, each: str = "sample", run: str | None = None) -> Count:
    """A row's count made under vmap: its one sample's, ``times`` times, the arithmetic and note saying so (``each``:
    what one is, ``run``: the note's words, where not vmap's)."""
    run = run or f"run under {words}: one sample's shapes, its work x {times}"
    if count.macs is None:
        return count._replace(note=_noted(count.note, run))
    writer = count.formulas

    def text() -> Mapping[str, str]:
        own = writer() if callable(writer) else writer
        return {key: f"{value} per {each}, x {times} ({words}) = {_total(value, times)}" for key, value in own.items()}

    return Count(count.macs * times, None if count.elementwise is None else count.elementwise * times,
                 text if count.formulas else count.formulas, _noted(count.note, run))


def _total(value: str, times: int) -> str:
    """The per-sample figure a formula ends with, times the samples (the text as it is where it ends otherwise)."""
    last = value.rsplit(" = ", 1)[-1].replace(",", "")
    return f"{int(last) * times:,}" if last.isdigit() else "that many times"


def _noted(note: str, run: str) -> str:
    return f"{note}; {run}" if note else run


