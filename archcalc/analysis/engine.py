"""analyse(): build a registered model on the meta device (or a real one), trace one forward pass."""

from __future__ import annotations

import contextlib
import gc
import inspect
import weakref
from collections.abc import Mapping, Sequence
from math import prod
from operator import attrgetter
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin

import archcalc.analysis.counters  # noqa: F401  (registers every formula, one file per family)
from archcalc.analysis import placement, tools
from archcalc.analysis.diagnosis import explain
from archcalc.analysis.records import Analysis, LayerRecord, Totals
from archcalc.analysis.tracer import Tracer, shapes_of
from archcalc.errors import ForwardError, InputError
from archcalc.models.arguments import merged
from archcalc.models.registry import ModelEntry

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
DEVICES = ("meta", "cpu", "cuda")


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise InputError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}") from None


def resolve_device(name: str) -> torch.device:
    kind = name.split(":", 1)[0]
    if kind not in DEVICES:
        raise InputError(f"unknown device {name!r}; use one of {', '.join(DEVICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA is not available on this machine; use --device meta (no memory) or --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise InputError(f"bad device {name!r}: {error}") from None


def input_shape(entry_default: Sequence[int], given: Sequence[int] | None, batch: int) -> tuple[int, ...]:
    """(N, C, H, W) from the model's default C x H x W, an optional C x H x W or H x W, and the batch."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError(f"--batch must be a positive integer, got {batch!r}")
    chw = tuple(entry_default)
    if given is not None:
        given = tuple(given)
        if len(given) == len(chw):
            chw = given
        elif len(given) == len(chw) - 1:
            chw = chw[:1] + given
        else:
            raise InputError(f"--input takes CxHxW or HxW, got {'x'.join(map(str, given))}")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in chw):
        raise InputError(f"input sizes must be positive integers, got {'x'.join(map(str, chw))}")
    return (batch, *chw)


def build(entry: ModelEntry, device: torch.device, dtype: torch.dtype,
          overrides: Mapping[str, Any] | None = None) -> nn.Module:
    """The entry's model on the device, in eval mode, in the dtype (on meta, no memory is used)."""
    return build_noted(entry, device, dtype, overrides)[0]


def build_noted(entry: ModelEntry, device: torch.device, dtype: torch.dtype,
                overrides: Mapping[str, Any] | None = None) -> tuple[nn.Module, str]:
    """build(), and a note saying how, when the meta device refused the constructor (placement.construct)."""
    kwargs = merged(entry, dict(overrides)) if overrides else dict(entry.kwargs)
    torch.manual_seed(0)
    if entry.family == "user":
        from archcalc.models.user import construct

        model, note = placement.construct(lambda: construct(entry.builder, kwargs), device)
    else:
        try:
            model, note = placement.construct(lambda: entry.resolve()(**kwargs), device)
        except (ValueError, TypeError) as error:
            raise InputError(f"cannot build {entry.name}: {error}") from None
    return model.to(dtype=dtype).eval(), note


def check_single_input(model: nn.Module, name: str) -> None:
    """archcalc feeds one tensor: say so before running a forward that wants more (or none)."""
    if "forward" in model.__dict__:  # a forward of this instance's own
        required = _required(model.forward)
    else:  # every instance of a class has the class's forward: worked out once
        cls = type(model)
        if cls not in _REQUIRED_BY_CLASS:
            _REQUIRED_BY_CLASS[cls] = _required(model.forward)
        required = _REQUIRED_BY_CLASS[cls]
    if required is not None and len(required) != 1:
        wanted = ", ".join(required) or "no argument"
        raise InputError(
            f"{name}.forward takes {wanted}; archcalc passes one input tensor of the --input size: wrap the model "
            f"in a module whose forward(x) makes the other arguments, or give them defaults")


def _required(forward) -> tuple[str, ...] | None:
    """The arguments a forward cannot do without (None: it takes any number)."""
    try:
        parameters = list(inspect.signature(forward).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return None
    return tuple(p.name for p in parameters
                 if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


_REQUIRED_BY_CLASS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def analyse_module(model: nn.Module, name: str, shape: tuple[int, ...], device: torch.device,
                   dtype: torch.dtype, inner: bool = False, input_dtype: torch.dtype | None = None,
                   notes: tuple[str, ...] = (), backward: bool = False) -> Analysis:
    """Trace one forward pass of ``model`` on an input of ``shape`` and return its records (with
    ``inner``, each layer's own torch calls too: only ptflops's convention needs them, and without
    them it traces the model again when asked). ``input_dtype``: an integer dtype for token ids (the
    input is then index 0 everywhere), else the input is of the model's ``dtype``. ``notes`` come first
    among the analysis's notes (how the model was built or run). ``backward``: each record counts its
    gradients too (record.backward), the forward running with autograd on."""
    check_single_input(model, name)
    with _collector_paused():
        x, tracer, output = _trace(model, name, shape, device, dtype, inner, input_dtype, backward)
        records = tracer.ordered()
        totals = _totals(tracer, records)
        output_shapes = tuple(tuple(t.shape) for t in _flat(output))
    del output  # (with backward, the autograd graph it holds)
    retrace = None if inner else lambda: _trace(model, name, shape, device, dtype, True, input_dtype)[1].ordered()
    return Analysis(
        model=name,
        input_shape=shape,
        output_shapes=output_shapes,
        device=str(device),
        dtype=_dtype_name(dtype),
        itemsize=dtype.itemsize,
        records=records,
        totals=totals,
        notes=notes + _notes(records, totals, shape[0], _unmade(tracer)),
        by_convention=tools.Counts(model, records, retrace),
    )


def _trace(model: nn.Module, name: str, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype,
           inner: bool, input_dtype: torch.dtype | None = None, backward: bool = False
           ) -> tuple[torch.Tensor, Tracer, Any]:
    integer = input_dtype is not None and not input_dtype.is_floating_point
    if device.type == "meta":
        x = torch.empty(shape, device=device, dtype=input_dtype or dtype)
    else:
        try:
            x = torch.zeros(shape, device=device, dtype=input_dtype) if integer else torch.randn(
                shape, device=device, dtype=input_dtype or dtype)
        except RuntimeError as error:
            if not out_of_memory(error):
                raise
            size = prod(shape) * torch.empty((), dtype=dtype).element_size()
            raise InputError(f"the input {'x'.join(map(str, shape))} ({_dtype_name(dtype)}) needs {size:,} bytes, more "
                             f"than {device} can allocate; {_LESS_MEMORY}") from None
    tracer = Tracer(model, inner, deferred=device.type == "meta", backward=backward)
    if tracer.lazy:
        make_lazy_parameters(model, x)
    tracer.watch_input(x)
    try:
        with torch.set_grad_enabled(backward), tracer:
            output = model(x)
    except Exception as error:  # the model's own code failed: say where, with what, and why
        failure = ForwardError(_failure(name, shape, tracer, error))
        ran = tracer.ordered()
        failure.ran = Analysis(name, shape, (), str(device), _dtype_name(dtype), dtype.itemsize, ran,
                               _totals(tracer, ran), ("the forward pass stopped here",))
        raise failure from error
    return x, tracer, output


def make_lazy_parameters(model: nn.Module, x: torch.Tensor) -> None:
    """Lazy layers (nn.LazyConv2d, nn.LazyLinear) make their parameters, and become plain layers, in
    their first forward pass, as PyTorch's documentation has it: one forward pass untraced first, so
    that what follows sees each layer as it will stay. Should it fail, the next pass fails the same way
    and says where."""
    if any(isinstance(p, UninitializedTensorMixin) for p in model.parameters()):
        with contextlib.suppress(Exception), torch.no_grad():
            model(x)


@contextlib.contextmanager
def _collector_paused():
    """A trace makes thousands of small objects that live as long as its records and form no cycles:
    the cyclic garbage collector's passes over them while the trace runs are wasted (about a tenth
    of the whole analysis). Reference counting still frees everything as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def analyse(entry: ModelEntry, given_input: Sequence[int] | None = None, batch: int = 1,
            device: str = "meta", dtype: str = "float32", overrides: Mapping[str, Any] | None = None,
            inner: bool = False, backward: bool = False) -> Analysis:
    shape = input_shape(entry.default_input, given_input, batch)
    torch_dtype = resolve_dtype(dtype)
    torch_device = resolve_device("meta" if device == "auto" else device)
    model, note = build_noted(entry, torch_device, torch_dtype, overrides)
    if device == "auto":
        choice, why = placement.auto(model, shape, torch_dtype)
        if choice == "cpu":
            cpu = torch.device("cpu")
            try:
                return analyse_module(build(entry, cpu, torch_dtype, overrides), entry.name, shape, cpu, torch_dtype,
                                      inner, notes=(why,), backward=backward)
            except (ForwardError, InputError) as failure:
                if not out_of_memory(failure.__cause__ or failure):
                    raise
                why = "device auto: meta (the CPU ran out of memory)"
        note = f"{note}; {why}" if note else why
    try:
        return analyse_module(model, entry.name, shape, torch_device, torch_dtype, inner, notes=(note,) if note else (),
                              backward=backward)
    except ForwardError as failure:
        if torch_device.type != "meta" or not placement.refuses_meta(failure.__cause__):
            raise
        # the forward reads a value (if x.mean() > 0, .item(), a data-dependent shape): run it for real
        where = placement.user_line(failure.__cause__)
        reads = f"{where + ': ' if where else ''}the forward pass of {entry.name} reads a tensor's value, which the " \
                f"meta device cannot give"
        if not placement.fits_in_memory(model):
            raise InputError(f"{reads}, and its parameters are too large to run it on the CPU here") from None
    cpu = torch.device("cpu")
    model = build(entry, cpu, torch_dtype, overrides)
    return analyse_module(model, entry.name, shape, cpu, torch_dtype, inner, notes=(
        f"{reads}: run on the CPU instead, with a random input; the costs are those of the branch that input took",),
        backward=backward)


def _flat(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _flat(item)]
    return []


def _dtype_name(dtype: torch.dtype) -> str:
    return next(name for name, value in DTYPES.items() if value == dtype)


def _totals(tracer: Tracer, records: tuple[LayerRecord, ...]) -> Totals:
    """The rows' sums, with the parameters no row owns (their layers did not run) added."""
    params, trainable = sum(map(_PARAMS, records)), sum(map(_TRAINABLE, records))
    param_bytes = sum(map(_PARAM_BYTES, records))
    owned = tracer.params_seen
    if not owned.issuperset(map(id, tracer.parameters)):
        for p in tracer.parameters:
            if id(p) not in owned and not isinstance(p, UninitializedTensorMixin):  # a lazy layer's, never run: no size
                n = p.numel()
                params += n
                trainable += n if p.requires_grad else 0
                param_bytes += n * p.element_size()
    return Totals(params=params, trainable_params=trainable, macs=sum(filter(None, map(_MACS, records))),
                  elementwise=sum(filter(None, map(_ELEMENTWISE, records))), param_bytes=param_bytes,
                  buffer_bytes=sum(b.numel() * b.element_size() for b in tracer.buffers.values()),
                  activation_bytes=sum(map(_ACTIVATION_BYTES, records)),
                  backward_macs=sum(r.backward.macs or 0 for r in records if r.backward is not None)
                  if tracer.backward else None)


# (Summed with map over the records: a column's sum without a Python step per row.)
_PARAMS, _TRAINABLE, _PARAM_BYTES, _MACS, _ELEMENTWISE, _ACTIVATION_BYTES = map(attrgetter, (
    "params", "trainable_params", "param_bytes", "macs", "elementwise", "activation_bytes"))


def _unmade(tracer: Tracer) -> int:
    """The parameter tensors that lazy layers never made (their layers did not run)."""
    return sum(isinstance(p, UninitializedTensorMixin) for p in tracer.parameters) if tracer.lazy else 0


def _notes(records: tuple[LayerRecord, ...], totals: Totals, batch: int, lazy: int = 0) -> tuple[str, ...]:
    notes = []
    in_rows = 0
    uncounted = set()
    for r in records:
        in_rows += r.params
        if r.macs is None:
            uncounted.add(r.type)
        if r.type in ("view", "reshape") and r.output_shapes and r.output_shapes[0][0] != batch:
            notes.append(
                f"{r.label} turned batch {batch} into {r.output_shapes[0][0]}: the model flattens to a fixed "
                f"size ({'x'.join(map(str, r.output_shapes[0][1:]))}) that this input does not give per sample"
            )
    if in_rows != totals.params:
        notes.append(f"{totals.params - in_rows:,} parameters belong to layers that did not run in this forward pass")
    if lazy:
        notes.append(f"{lazy} lazy parameter tensors were never made (their layers did not run): not counted")
    if uncounted:
        notes.append(f"not counted (no formula): {', '.join(sorted(uncounted))}")
    return tuple(notes)


def _failure(name: str, shape: tuple[int, ...], tracer: Tracer, error: Exception) -> str:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    frame = tracer.failing_frame()
    where, what = explain(tracer.failed_op, frame.module if frame else None, frame.name if frame else "",
                          shapes_of(frame.inputs) if frame else (), tracer.ordered(), message)
    size = "x".join(map(str, shape[1:]))
    hint = f"; {_LESS_MEMORY}" if out_of_memory(error) else ""
    return f"forward pass of {name} failed for input {size}{' ' + where if where else ''}: {what}{hint}"


_LESS_MEMORY = "use --device meta (shapes and counts without allocating memory) or a smaller --batch or --input"


def out_of_memory(error: BaseException) -> bool:
    """Whether a real device's allocator failed (CPU: DefaultCPUAllocator; CUDA: torch.cuda.OutOfMemoryError)."""
    text = str(error)
    return isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)) or "can't allocate memory" in text \
        or "out of memory" in text.lower()
