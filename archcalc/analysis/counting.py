"""Checked registries from layer type or operation name to a counting function.

A counter returns a ``Count``: MACs (None = no formula: "not counted", never a silent 0), the
element-wise operations, and the arithmetic of each number (a mapping, or a function that writes it
when a row is shown: the text costs more than the counting). Registering a type or name twice is
an error, so one formula answers for each layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any, NamedTuple

from archcalc.analysis.records import Shape
from archcalc.formulas.numbers import grouped


class Count(NamedTuple):
    macs: int | None
    elementwise: int | None
    formulas: Mapping[str, str] | Callable[[], Mapping[str, str]] = MappingProxyType({})
    note: str = ""

    def text(self) -> Mapping[str, str]:
        """The arithmetic, written out now if it was handed over as its writer."""
        return self.formulas() if callable(self.formulas) else self.formulas


NOT_COUNTED = Count(None, None, {}, "no formula: not counted")
NO_PRODUCTS = Count(0, None, {}, "no products to differentiate")
NO_GRADIENT = Count(0, 0, {"macs": "no gradient: nothing before it requires one, nor do its weights"})
OFF_THE_PATH = Count(0, 0, {}, "no gradient reaches it: its output does not lead to the model's output")
GRADIENTS_OFF = Count(0, 0, {}, "made with gradients off (torch.no_grad, or a custom autograd.Function's forward, "
                                "whose own backward is counted on its row): autograd does not differentiate it")
ELEMENTWISE_BACKWARD = ("element-wise backward work: one operation per forward element-wise operation where a gradient "
                        "flows (the local derivative applied to ∂y; a bias's ∂b sums ∂y), a declared rule")


def with_elementwise(grad: Count, forward: Count, flows: bool) -> Count:
    """A backward count with its element-wise work by the declared rule (ELEMENTWISE_BACKWARD): as many
    operations as the forward's element-wise work where a gradient flows through the call, none where it
    does not (nothing before it, and none of its weights, needs one). A counter that knows its backward's
    element-wise work (its ``elementwise`` not None) keeps its own."""
    e = forward.elementwise
    if e is None or grad.macs is None or grad.elementwise is not None:
        return grad
    if not flows:
        return grad._replace(elementwise=0)
    writer = grad.formulas

    def text() -> Mapping[str, str]:
        own = writer() if callable(writer) else writer
        return {**own, "elementwise": f"∂ through the forward's {grouped(e)} element-wise operations, one each"}

    return grad._replace(elementwise=e, formulas=text)


def gradients(terms: list[tuple[str, bool, int, str]]) -> Count:
    """A backward count from its gradient terms (what, computed?, MACs, arithmetic without its value): the
    computed ones add up, e.g. '∂x (2*8*12*12)*(3*3*8) + ∂W (2*8*12*12)*(3*3*8) = 331,776'."""
    done = [(what, macs, text) for what, needed, macs, text in terms if needed]
    if not done:
        return Count(0, None, {"macs": "no gradient: nothing before it requires one"})
    total = sum(macs for _, macs, _ in done)
    return Count(total, None, {"macs": " + ".join(f"{what} {text}" for what, _, text in done) + f" = {grouped(total)}"})


def tangent_products(terms: list[tuple[str, int, int, str]]) -> Count:
    """A forward-mode tangent's count from its products (what, MACs, how many times its tangent is batched,
    arithmetic without its value): 'Q̇·Kᵀ (2*4*5)*8 x 3 + Q·K̇ᵀ (2*4*5)*8 = 1,280' (own_tangent's rules)."""
    if not terms:
        return Count(0, None, {"macs": "no operand carries a tangent: 0"})
    total = sum(macs * times for _, macs, times, _ in terms)
    shown = " + ".join(f"{what} {text}" + (f" x {times}" if times > 1 else "") for what, _, times, text in terms)
    return Count(total, None, {"macs": f"{shown} = {grouped(total)}"})


def repeated(forward: Count, *terms: tuple[str, bool]) -> Count:
    """The gradients of a product Y = A·B each cost one more product of the forward's size (∂A = ∂Y·Bᵀ,
    ∂B = Aᵀ·∂Y; for a convolution, ∂x is the transposed convolution of ∂y and ∂W the correlation of x with
    ∂y): one term per (what, computed?)."""
    expression = forward.text().get("macs", grouped(forward.macs)).rsplit(" = ", 1)[0]
    return gradients([(what, needed, forward.macs, expression) for what, needed in terms])


def paired(*pairs) -> Callable[[Callable], Callable]:
    """Marks a backward counter whose gradients are each one product of ∂Y with one other operand (Y = A·B: ∂A = ∂Y·Bᵀ,
    ∂B = Aᵀ·∂Y): ``pairs`` gives, for each gradient, its operand and that other one, each an input's position or
    None for the layer's weights (a linear layer's (0, None), (None, 0)); or one function of the call that gives
    them, None where they are not pairs (an einsum of three operands). Forward-mode AD over the backward
    (forward_over_reverse.py) counts their tangents so; a counter without them has no formula there."""
    def mark(counter: Callable) -> Callable:
        counter.partners = pairs[0] if len(pairs) == 1 and callable(pairs[0]) else (lambda call: pairs)
        return counter

    return mark


def bias_tangent(counter: Callable) -> Callable:
    """Marks a backward counter whose layer's ∂b alone (its weight frozen, its input needing none), differentiated by
    forward-mode AD, runs products all the same: PyTorch's forward-mode formula of convolution_backward computes two
    ∂W-sized convolutions for it, which forward_over_reverse has no formula for ("not counted")."""
    counter.bias_tangent = True
    return counter


def own_tangent(rule: Callable) -> Callable[[Callable], Callable]:
    """Marks a backward counter whose layer's forward-mode tangent is not its gradients' terms taken one operand at a
    time (transforms.tangent_count): ``rule(call, extra, weights) -> Count`` counts it, given how many times each
    input's tangent runs (0: it carries none) and the weights'. A layer made of several products, some of whose
    operands may carry none: a recurrent layer's first step's hidden product has a tangent only where h_0 or W_hh
    carries one, where its backward computes ∂W_hh at that step all the same; a cross-attention's memory projection
    has none; multi_dot's product of learned matrices has none."""
    def mark(counter: Callable) -> Callable:
        counter.tangent = rule
        return counter

    return mark


class ModuleCall(NamedTuple):
    """What a module counter sees: the module (for its hyperparameters) and the shapes; ``input`` and
    ``output`` are the first of each (None when there is none), fields rather than properties because
    every counter reads them."""

    module: Any
    inputs: tuple[Shape, ...]
    outputs: tuple[Shape, ...]
    input: Shape | None
    output: Shape | None


@dataclass(frozen=True)
class OpCall:
    """What an operation counter sees: its name, arguments (tensors included) and output shapes; ``recorded``:
    whether autograd recorded the call (an output requires grad), which decides what some kernels compute in
    their forward (F.linear_cross_entropy's chunked one computes its gradients there)."""

    name: str
    args: tuple
    kwargs: Mapping[str, Any]
    inputs: tuple[Shape, ...]
    outputs: tuple[Shape, ...]
    recorded: bool = False

    @property
    def output(self) -> Shape:
        return self.outputs[0]

    def arg(self, position: int, keyword: str, default: Any = None) -> Any:
        if keyword in self.kwargs:
            return self.kwargs[keyword]
        return self.args[position] if len(self.args) > position else default

    @property
    def of_two_tensors(self) -> bool:
        """torch.max(x, y) or torch.min(x, y): given a second tensor (not a dim), the element-wise maximum or minimum
        (HyNet's TLU: max(x, τ)), not a reduction."""
        return self.name in ("max", "min") and len(self.inputs) > 1 and not isinstance(self.arg(1, "dim"), int)


class CounterRegistry:
    def __init__(self, what: str):
        self._what = what
        self._table: dict[Any, Callable] = {}

    def register(self, *keys: Any) -> Callable[[Callable], Callable]:
        def decorate(fn: Callable) -> Callable:
            for key in keys:
                if key in self._table:
                    raise ValueError(f"{self._what} {key!r} already has a counter ({self._table[key].__name__})")
                self._table[key] = fn
            counter_for_type.cache_clear()  # a type that had none (or a base's) may have its own now
            grad_counter_for_type.cache_clear()
            return fn

        return decorate

    def get(self, key: Any) -> Callable | None:
        return self._table.get(key)


MODULES = CounterRegistry("layer type")
OPS = CounterRegistry("operation")
# The backward pass: a counter takes the call and what needs a gradient (Needs), and returns the
# multiply-accumulates of the gradients that autograd computes; the tracer adds the element-wise backward
# work by one declared rule (with_elementwise).
GRAD_MODULES = CounterRegistry("layer type (backward)")
GRAD_OPS = CounterRegistry("operation (backward)")


class Needs(NamedTuple):
    """Which gradients the backward pass computes for a call: one flag per input tensor (does it require
    grad?), whether any of the layer's own parameters does, and, for a layer, each one's (``flags``, in the order
    the trace holds them: parameter_names of ``module``)."""

    inputs: tuple[bool, ...]
    weights: bool
    flags: tuple[bool, ...] = ()
    module: Any = None

    def input(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i]

    def weight(self, name: str = "weight") -> bool:
        """Whether this parameter's gradient is computed: a layer whose weight is frozen and its bias trained (BitFit's
        and TinyTL's bias-only fine-tuning) computes no ∂W, though a parameter of it needs a gradient; a
        parametrized weight's by its originals (weight_norm's g and v); the parameters' flag where the name is not
        known (named when asked: most rows never ask)."""
        names = parameter_names(self.module) if self.module is not None and self.flags else ()
        found = [flag for n, flag in zip(names, self.flags) if n == name or n.startswith(f"parametrizations.{name}.")]
        return any(found) if found and len(names) == len(self.flags) else self.weights


def layer_parameters(module: Any):
    """A layer's parameters, in the order the trace holds them: a leaf's own slots, None ones too (an absent bias); a
    container's, recursively."""
    return module.parameters() if module._modules else module._parameters.values()


def parameter_names(module: Any) -> list[str]:
    """A layer's parameters' names, in layer_parameters' order."""
    return [n for n, _ in module.named_parameters()] if module._modules else list(module._parameters)


def needs_of(call: Any, inputs: tuple[bool, ...], params: list[bool]) -> Needs:
    """A call's Needs from its inputs' flags and its parameters' (in the trace's order; a layer's named when a
    counter asks, Needs.weight)."""
    return Needs(inputs, any(params), tuple(params), getattr(call, "module", None))


def module_counter(module: Any) -> Callable | None:
    """The counter for a module's type, or for the nearest base type whose forward it keeps."""
    return counter_for_type(type(module))


@cache  # (found once per type: a trace asks for every module it wraps)
def counter_for_type(cls: type) -> Callable | None:
    return _for_type(MODULES, cls)


@cache
def grad_counter_for_type(cls: type) -> Callable | None:
    return _for_type(GRAD_MODULES, cls)


def _for_type(registry: CounterRegistry, cls: type) -> Callable | None:
    exact = registry.get(cls)
    if exact is not None:
        return exact
    if cls.__module__ == _PARAMETRIZED:  # (spectral_norm, weight_norm, orthogonal: its weight is computed in its
        return None  # forward, so it is counted as the operations that run, the parametrization's and F.linear's)
    for base in cls.__mro__[1:]:
        fn = registry.get(base)
        if fn is not None and getattr(cls, "forward", None) is getattr(base, "forward", None):
            return fn
    return None


_PARAMETRIZED = "torch.nn.utils.parametrize"  # (the module of the classes it makes: ParametrizedLinear, ...)


def op_name(func: Any) -> str:
    """A Python-level operation's name with dunder and in-place marks removed: __iadd__ -> add."""
    name = getattr(func, "__name__", None) or str(func)
    kind = type(func).__name__
    if kind == "OpOverloadPacket" or kind == "OpOverload":  # torch.ops.NAMESPACE.NAME(...)
        qualified = (func if kind == "OpOverloadPacket" else func._overloadpacket)._qualified_op_name
        if qualified.startswith("quantized::"):  # (aten's names with other arguments: quantized::linear, ::add)
            return qualified
        name = qualified.rpartition("::")[2]  # (without the overload: torch.export's aten.conv2d.default, aten.py)
    if name == "__get__":  # a property such as Tensor.real or Tensor.T
        name = getattr(getattr(func, "__self__", None), "__name__", "get")
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name.startswith(("i", "r")) and name[1:] in _ARITHMETIC_DUNDERS:
            name = name[1:]
    return name.rstrip("_") or name


_ARITHMETIC_DUNDERS = {"add", "sub", "mul", "truediv", "floordiv", "matmul", "pow", "div", "and", "or"}
