"""analyse(): build a registered model on the meta device (or a real one), trace one forward pass."""

from __future__ import annotations

import contextlib
import gc
import inspect
import itertools
import weakref
from collections.abc import Mapping, Sequence
from math import prod
from operator import attrgetter
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin

import archcalc.analysis.counters  # noqa: F401  (registers every formula, one file per family)
from archcalc.analysis import draws, mixed_dtypes, placement, sequence_input, tools
from archcalc.analysis.counting import GRADIENTS_OFF, NOT_COUNTED, OFF_THE_PATH
from archcalc.analysis.diagnosis import explain, unbatched, unbatched_input, with_hint
from archcalc.analysis.differentiated import Differentiates
from archcalc.analysis.inputs import Inputs, TensorSpec
from archcalc.analysis.meta_autocast import meta_autocast
from archcalc.analysis.packed import QUANTIZED_TYPES
from archcalc.analysis.records import OP, Analysis, LayerRecord, Totals, from_input
from archcalc.analysis.tracer import Tracer, shapes_of, tensors_in
from archcalc.errors import (COMMAND_LINE, ForwardError, InputError, chain, example_sizes, input_option, option,
                             size_text)
from archcalc.formulas.numbers import shape_text
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
        raise InputError(f"CUDA is not available on this machine; use {option('device', 'meta')} (no memory) or "
                         f"{option('device', 'cpu')}")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise InputError(f"bad device {name!r}: {error}") from None


def input_shape(entry_default: Sequence[int], given: Sequence[int] | None, batch: int,
                shorthand: bool = True) -> tuple[int, ...]:
    """(N, ...) from the model's default size (without the batch), an optional size, and the batch. A
    size of the default's rank replaces it; for an image model (C x H x W), H x W keeps the model's
    channels and, with ``shorthand`` (a registered model), one number n means n x n. Any other size is
    taken as it is (an MLP's 784, audio's 1x16000, video's 3x8x32x32) when the model is the user's."""
    _check_batch(batch)
    size = tuple(entry_default)
    if given is not None:
        given = tuple(given)
        if len(given) == len(size) or not size:
            size = given
        elif len(size) == 3 and len(given) == 2:
            size = size[:1] + given
        elif len(size) == 3 and len(given) == 1 and shorthand:
            size = size[:1] + given * 2
        elif shorthand:
            raise InputError(_not_fitting(given, size, batch))
        else:
            size = given
    if not size:
        raise InputError(f"the model has no input size; give one with {option('input')} (e.g. "
                         f"{example_sizes(batch)})")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise InputError(f"input sizes must be positive integers, got {shape_text(size)}")
    return (batch, *size)


def _not_fitting(given: tuple[int, ...], size: tuple[int, ...], batch: int) -> str:
    """A size given for a registered model that fits neither its input nor a shorthand of it."""
    said = f"{input_option(given, batch)} does not fit this model's input {size_text(size, batch)}"
    if not COMMAND_LINE.get():
        return f"{said}; give {len(size) + 1} sizes, the batch first"
    return f"{said}; give {len(size)} sizes" + (" (CxHxW), HxW or one number for a square" if len(size) == 3 else "")


def entry_shape(entry: ModelEntry, given: Sequence[int] | None, batch: int) -> tuple[int, ...]:
    """input_shape for a registry entry: one number n is n x n only for a registered image model."""
    return input_shape(entry.default_input, given, batch, shorthand=entry.family != "user")


def _check_batch(batch: int) -> None:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError(f"{option('batch')} must be a positive integer, got {batch!r}")


INPUT_DTYPES = {**DTYPES, "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8,
                "uint8": torch.uint8, "bool": torch.bool, "long": torch.int64, "int": torch.int32}


def input_dtype(spec: Any) -> tuple[torch.dtype | None, int | None]:
    """(dtype, value bound) from a torch.dtype, a name ('int64'), or 'int64:30522' (token ids below 30522:
    the vocabulary of the embedding they index, on a real device; 0 everywhere otherwise)."""
    if spec is None or isinstance(spec, torch.dtype):
        return spec, None
    name, _, high = str(spec).partition(":")
    name = name.strip().removeprefix("torch.")
    if name not in INPUT_DTYPES:
        raise InputError(f"unknown input dtype {spec!r}; use one of {', '.join(INPUT_DTYPES)} (int64:N for token ids "
                         f"below N)")
    if high and not (high.isdigit() and int(high) > 0):
        raise InputError(f"input dtype {spec!r}: the bound after ':' must be a positive integer, e.g. int64:30522")
    dtype = INPUT_DTYPES[name]
    if high and dtype.is_floating_point:
        raise InputError(f"input dtype {spec!r}: a value bound is for integer inputs (token ids)")
    return dtype, int(high) if high else None


def is_sizes(value: Any) -> bool:
    """Whether a value is several sizes ((3, 32, 32), (10,)) rather than example inputs."""
    return isinstance(value, (tuple, list)) and all(
        isinstance(s, (tuple, list)) and all(isinstance(n, int) and not isinstance(n, bool) for n in s)
        for s in value) and any(len(s) for s in value)  # (): one number a sample, beside others


def entry_inputs(entry: ModelEntry, given: Sequence[int] | Sequence[Sequence[int]] | None, batch: int,
                 dtypes: Sequence[Any] | None = None) -> Inputs:
    """What the entry's forward is given: its example inputs (a user's archcalc_input of tensors), one
    size (input_shape), or several (each taken as it is, the batch put first), each of its dtype (one
    dtype for all, or one per input; None: the model's)."""
    several = given is not None and len(given) > 0 and not isinstance(given[0], int)
    sizes = [tuple(g) for g in given] if several else None
    if given is None and entry.example is not None:  # a user's archcalc_input of several sizes, or of examples
        if is_sizes(entry.example):
            sizes = [tuple(s) for s in entry.example]
        else:
            if batch != 1:
                raise InputError(f"{entry.name}'s example inputs (archcalc_input) fix its batch; give "
                                 f"{option('input')} sizes to set {option('batch')}")
            return Inputs.of_example(entry.example)
    _check_batch(batch)
    if sizes is None:
        return sized_inputs([entry_shape(entry, given, batch)], dtypes)
    return sized_inputs([input_shape((), s, batch) if s else (batch,) for s in sizes], dtypes)  # (): one number a
    # sample (a diffusion model's timestep)


def sized_inputs(shapes: Sequence[tuple[int, ...]], dtypes: Sequence[Any] | None = None) -> Inputs:
    """One positional input per shape (with the batch), each of its dtype: one dtype for all, or one per
    input, each as input_dtype reads it; None: the model's."""
    specs = [input_dtype(d) for d in dtypes or ()]
    if len(specs) == 1:
        specs *= len(shapes)
    if specs and len(specs) != len(shapes):
        raise InputError(f"{len(shapes)} inputs but {len(specs)} input dtypes: give one for all, or one per input")
    specs = specs or [(None, None)] * len(shapes)
    return Inputs(tuple(TensorSpec(tuple(shape), dtype, high) for shape, (dtype, high) in zip(shapes, specs)))


def build(entry: ModelEntry, device: torch.device, dtype: torch.dtype,
          overrides: Mapping[str, Any] | None = None) -> nn.Module:
    """The entry's model on the device, in eval mode, in the dtype (on meta, no memory is used)."""
    return build_noted(entry, device, dtype, overrides)[0]


def build_noted(entry: ModelEntry, device: torch.device, dtype: torch.dtype,
                overrides: Mapping[str, Any] | None = None) -> tuple[nn.Module, str]:
    """build(), and a note saying how, when the meta device refused the constructor (placement.construct)."""
    if entry.module is not None:  # the caller's own module: a twin with its own parameters (a step trains them)
        from archcalc.analysis.twin import twin

        if overrides:
            raise InputError(f"{entry.name} is a model already made ({type(entry.module).__name__}), which takes no "
                             f"builder arguments ({', '.join(overrides)}): name its class or a function to build it "
                             f"with them")

        return twin(entry.module, device, dtype, share=False), ""
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


def check_arguments(model: nn.Module, name: str, inputs: Inputs | None = None) -> None:
    """Say before running a forward that it wants other arguments than archcalc will pass (by
    default one input tensor of the --input size)."""
    if "forward" in model.__dict__:  # a forward of this instance's own
        required = _required(model.forward)
    else:  # every instance of a class has the class's forward: worked out once
        cls = type(model)
        if cls not in _REQUIRED_BY_CLASS:
            _REQUIRED_BY_CLASS[cls] = _required(model.forward)
        required = _REQUIRED_BY_CLASS[cls]
    if required is None:
        return
    given = len(inputs.args) if inputs is not None else 1
    if given and not required and not _takes(model, given) and (keyword_only := _keyword_only(model.forward)):
        raise InputError(f"{name}.forward takes {', '.join(keyword_only)} by keyword only; archcalc passes "
                         f"{option('input')} sizes by position: give inputs={{{keyword_only[0]!r}: ...}}"
                         f"{' in Python' if COMMAND_LINE.get() else ''}, or wrap the model in a module whose forward "
                         f"passes them on")
    keywords = set(inputs.kwargs) if inputs is not None else set()
    missing = [r for r in required[given:] if r not in keywords]
    if missing or (given < len(required) and not keywords):
        wanted = ", ".join(required) or "no argument"
        instead = "or inputs= in Python" if COMMAND_LINE.get() else "or example tensors as inputs="
        raise InputError(
            f"{name}.forward takes {wanted}; archcalc passes {_passed(given, keywords)}: give one {option('input')} "
            f"per argument ({instead}), wrap the model in a module whose forward makes the others, or give them "
            f"defaults")
    if not keywords and given > len(required) and not _takes(model, given):
        raise InputError(f"{name}.forward takes {', '.join(required) or 'no argument'}; archcalc was given "
                         f"{given} inputs: give as many {option('input')} sizes as it takes")


def _passed(given: int, keywords: set[str]) -> str:
    what = {0: "no positional input", 1: "one input tensor"}.get(given, f"{given} input tensors")
    return what + (f" and {', '.join(sorted(keywords))}" if keywords else "")


def _takes(model: nn.Module, count: int) -> bool:
    """Whether the forward accepts ``count`` positional arguments (defaults included)."""
    try:
        parameters = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return True
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return True
    return count <= sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)


def _keyword_only(forward) -> tuple[str, ...]:
    """The keyword-only arguments a forward cannot do without."""
    try:
        parameters = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):
        return ()
    return tuple(p.name for p in parameters if p.kind == p.KEYWORD_ONLY and p.default is p.empty)


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


def analyse_module(model: nn.Module, name: str, shape: tuple[int, ...] | Inputs, device: torch.device,
                   dtype: torch.dtype, inner: bool = False, input_dtype: torch.dtype | None = None,
                   notes: tuple[str, ...] = (), backward: bool = False) -> Analysis:
    """Trace one forward pass of ``model`` and return its records. ``shape``: one input's size with the
    batch (of ``input_dtype``: an integer dtype for token ids, index 0 everywhere; else the model's
    ``dtype``), or the Inputs to pass (several, keyword, examples). ``inner``: each layer's own torch
    calls too (only ptflops's convention needs them, and without them it traces the model again when
    asked). ``notes`` come first among the analysis's notes (how the model was built or run).
    ``backward``: each record counts its gradients too (record.backward), the forward running with
    autograd on."""
    inputs = shape if isinstance(shape, Inputs) else Inputs.of_shape(shape, input_dtype)
    check_arguments(model, name, inputs)
    with _collector_paused():
        if backward:
            tracer, output, trained, step_notes = _trace_step(model, name, inputs, device, dtype, inner)
            notes += step_notes
        else:
            tracer, output = _trace(model, name, inputs, device, dtype, inner)
            trained = False
        records = tracer.inside_functions(tracer.ordered())
        if tracer.sequence_reader:
            notes += (sequence_input.note(inputs.shapes[0], tracer.sequence_reader, tracer.sequence_reading),)
        if backward:  # a row whose output leads nowhere gets no gradient; QR's depends on which outputs get one
            if not any(t.is_floating_point() and t.requires_grad for t in tensors_in(output)):
                notes += (f"the output of {name} holds no floating-point tensor that needs a gradient: there is no "
                          f"loss to take, so the backward pass computes nothing (are all its parameters frozen, or "
                          f"is it a gradient the forward took without create_graph=True?)",)
            notes += _frozen_statistics(records)
            recounted = tracer.per_output_backward(output)
            # (a torch.autograd.grad row's gradients made with create_graph=True: the step runs the operations that
            # made them wherever its graph reaches them, though their last one may lead nowhere)
            again = tracer.differentiated_backward(output)
            dead, off = tracer.off_the_path(output), tracer.gradients_off()
            records = tuple(r._replace(backward=again[r.index]) if r.index in again else
                            r._replace(backward=GRADIENTS_OFF) if r.index in off and r.backward is not None else
                            r._replace(backward=OFF_THE_PATH) if r.index in dead else
                            r._replace(backward=recounted[r.index]) if r.index in recounted else r for r in records)
        totals = _totals(tracer, records)
        output_shapes = tuple(tuple(t.shape) for t in tensors_in(output))
    del output  # (with backward, the autograd graph it holds)
    def retraced(inner: bool = False, nodes: bool = False, given: Inputs = inputs) -> tuple[Tracer, Any]:
        with _train_mode(model, trained) if backward else contextlib.nullcontext(), \
                draws.every_layer_kept() if trained else contextlib.nullcontext():
            return _trace(model, name, given, device, dtype, inner, nodes=nodes)

    def per_image() -> tuple[tuple[LayerRecord, ...], int]:
        """The records ptflops's convention counts, each layer's own calls kept, and how many times: those of one
        sample, N times (ptflops counts one image; its figure for the batch is N x that), where the inputs are sizes
        that share a batch and one sample traces; else this batch's, once."""
        one = inputs.one_sample()
        if one is not None:
            try:
                with _collector_paused():
                    return retraced(True, given=one)[0].ordered(), inputs.batch
            except Exception:  # (one sample that cannot run, BatchNorm's statistics in a training step)
                pass
        return (records if inner else retraced(True)[0].ordered()), 1

    def unused() -> set[tuple[str, int]]:
        """(name, call) of the rows whose work never reaches the output (Tracer.unused); none where the trace
        with gradients on fails."""
        try:
            with _collector_paused():
                tracer, output = retraced(nodes=True)
                kept = [*tracer.buffers.values(), *tracer.inputs, *tracer.parameters]
                return {(r.name, r.call) for r in map(tracer.records.__getitem__, tracer.unused(output, kept))}
        except Exception:  # (the counts stand as they are: every row kept)
            return set()

    shapes = inputs.shapes
    return Analysis(
        model=name,
        input_shape=shapes[0] if shapes else (),
        output_shapes=output_shapes,
        device=str(device),
        dtype=_dtype_name(dtype),
        itemsize=dtype.itemsize,
        records=records,
        totals=totals,
        notes=notes + _notes(records, totals, inputs.batch, _unmade(tracer), inputs.shapes[0] if inputs.shapes else ()),
        by_convention=tools.Counts(model, records, per_image, unused,
                                   frozenset((r.name, r.call) for r in records if r.index in tracer.direct)),
        input_shapes=shapes,
        input_dtypes=tuple(str(d).removeprefix("torch.") for d in inputs.dtypes(dtype)),
    )


def _frozen_statistics(records: tuple[LayerRecord, ...]) -> tuple[str, ...]:
    """A note where a training step's batch_norm calls take the running statistics (a program exported in eval
    mode, whose graph keeps them; a BatchNorm frozen by its code): counted as they run, 2 operations an element."""
    frozen = sum(1 for r in records if r.kind == OP and r.type == "batch_norm"
                 and "batch's statistics" not in r.formulas.get("elementwise", ""))
    if not frozen:
        return ()
    return (f"{frozen} batch_norm call{'s take' if frozen > 1 else ' takes'} the running statistics in this training "
            f"step (a program exported in eval mode keeps them, or the code freezes them): counted so, 2 operations "
            f"an element, not the batch's 5, and not updated",)


def _trace_step(model: nn.Module, name: str, inputs: Inputs, device: torch.device, dtype: torch.dtype,
                inner: bool) -> tuple[Tracer, Any, bool, tuple[str, ...]]:
    """The forward of a training step, which the backward pass follows: the model in train mode (dropout's
    masks, BatchNorm's batch statistics, auxiliary classifiers), every layer LayerDrop may skip kept
    (draws.every_layer_kept); each module's own mode restored after. A forward that fails in train mode for
    another reason than the meta device (a detector asks for its targets) is traced in eval mode, and a note
    says so. (tracer, output, whether in train mode, notes)."""
    try:
        with _train_mode(model), draws.every_layer_kept() as taken:
            tracer, output = _trace(model, name, inputs, device, dtype, inner, True)
        return tracer, output, True, draws.counted(taken)
    except ForwardError as failure:
        if placement.refuses_meta(failure.__cause__) or hasattr(failure, "reads") or \
                out_of_memory(failure.__cause__ or failure):
            raise
        cause = failure.__cause__ or failure
        why = with_hint((str(cause).splitlines() or [type(cause).__name__])[0])
    with _train_mode(model, False):
        tracer, output = _trace(model, name, inputs, device, dtype, inner, True)
    return tracer, output, False, (f"counted in eval mode: in train mode the forward of {name} fails ({why})",)


@contextlib.contextmanager
def _train_mode(model: nn.Module, training: bool = True):
    """Every module in train mode (eval mode with ``training`` False) inside; each one's own mode after."""
    modes = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for m, was in modes:
            m.training = was


def _trace(model: nn.Module, name: str, inputs: Inputs, device: torch.device, dtype: torch.dtype,
           inner: bool, backward: bool = False, nodes: bool = False,
           differentiating: bool = False) -> tuple[Tracer, Any]:
    """One forward pass traced; ``backward``: each row's gradients counted too, ``nodes``: only each row's autograd
    nodes kept, its floating-point inputs watched (for Tracer.unused); ``differentiating``: with gradients on and
    each row's call kept, for a forward that calls torch.autograd.grad (a first trace without finds that out:
    differentiated.py)."""
    try:
        args, kwargs = inputs.make(device, dtype, watched=nodes)
    except RuntimeError as error:
        if not out_of_memory(error):
            raise
        size = sum(prod(s) * d.itemsize for s, d in zip(inputs.shapes, inputs.dtypes(dtype)))
        raise InputError(f"the input {inputs.text()} ({_dtype_name(dtype)}) needs {size:,} bytes, more than {device} "
                         f"can allocate; {_less_memory()}") from None
    tracer = Tracer(model, inner, deferred=device.type == "meta", backward=backward, nodes=nodes,
                    differentiating=differentiating)
    if tracer.lazy:
        make_lazy_parameters(model, args, kwargs)
    for x in tensors_in([args, list(kwargs.values())]):
        tracer.watch_input(x)
    try:
        with torch.set_grad_enabled(backward or nodes or differentiating), _on_meta(tracer, dtype) if \
                device.type == "meta" else contextlib.nullcontext(), tracer:
            output = model(*args, **kwargs)
            if backward:
                tracer.functions_unseen(output)
    except Exception as error:  # the model's own code failed: say where, with what, and why
        if not differentiating and any(isinstance(e, Differentiates) for e in chain(error)):
            del tracer, args, kwargs
            return _trace(model, name, inputs, device, dtype, inner, backward, nodes, True)
        failure = ForwardError(_failure(name, inputs, tracer, error))
        ran = tracer.ordered()
        shapes = inputs.shapes
        failure.ran = Analysis(name, shapes[0] if shapes else (), (), str(device), _dtype_name(dtype), dtype.itemsize,
                               ran, _totals(tracer, ran), ("the forward pass stopped here",), input_shapes=shapes)
        raise failure from error
    if device.type == "meta":
        _backward_reads_values(tracer, name)
    return tracer, output


@contextlib.contextmanager
def _on_meta(tracer: Tracer, dtype: torch.dtype):
    """A forward on the meta device: torch.autocast("meta") taken (meta_autocast), and the dtypes that both the CPU's
    and CUDA's kernels refuse refused (mixed_dtypes.Refusals; the meta kernels take them), from the first floating-
    point tensor of another dtype than ``dtype`` on: a parameter, a buffer or an input, else one that a call makes
    (tracer.watch_dtypes). Where there is none, as in most models, no operation pays for the check."""
    states = [(False, None)]
    refusals = mixed_dtypes.Refusals(states)
    entered = []

    def refuse() -> None:
        refusals.__enter__()
        entered.append(refusals)

    given = itertools.chain(tracer.parameters, tracer.buffers.values(), tracer.inputs)  # (inputs: watch_input's)
    if any(t.dtype is not dtype and t.is_floating_point() for t in given):
        refuse()
    else:
        tracer.watch_dtypes(dtype, refuse)
    try:
        with meta_autocast(states=states):
            yield
    finally:
        for mode in entered:
            mode.__exit__(None, None, None)


def _backward_reads_values(tracer: Tracer, name: str) -> None:
    """A custom Function's backward that reads a value (``.item()``) cannot run on the meta device: raised as a
    forward that reads one is, so that placed() runs the analysis on the CPU instead and says why."""
    for function, error in tracer.backward_errors:
        if placement.refuses_meta(error):
            failure = ForwardError(f"{function}.backward in {name} reads a tensor's value")
            failure.reads = f"the backward of {function} (a custom autograd.Function) reads a tensor's value, " \
                            f"which the meta device cannot give"
            raise failure from error


def make_lazy_parameters(model: nn.Module, args: tuple, kwargs: Mapping[str, Any]) -> None:
    """Lazy layers (nn.LazyConv2d, nn.LazyLinear) make their parameters, and become plain layers, in
    their first forward pass, as PyTorch's documentation has it: one forward pass untraced first, so
    that what follows sees each layer as it will stay. Should it fail, the next pass fails the same way
    and says where."""
    if any(isinstance(p, UninitializedTensorMixin) for p in model.parameters()):
        with contextlib.suppress(Exception), torch.no_grad():
            model(*args, **kwargs)


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


def analyse(entry: ModelEntry, given_input: Sequence[int] | Sequence[Sequence[int]] | None = None, batch: int = 1,
            device: str = "meta", dtype: str = "float32", overrides: Mapping[str, Any] | None = None,
            inner: bool = False, backward: bool = False, input_dtypes: Sequence[Any] | None = None) -> Analysis:
    """A registered (or user's FILE.py:NAME) model, built for the device: ``given_input`` is one size
    without the batch (entry_inputs), or several; ``device`` auto decides by placement.auto."""
    inputs = entry_inputs(entry, given_input, batch, input_dtypes)
    torch_dtype = resolve_dtype(dtype)
    try:
        return placed(lambda d: build_noted(entry, d, torch_dtype, overrides), entry.name, inputs, device, torch_dtype,
                      inner, backward)
    except ForwardError as failure:
        given = tuple(given_input) if given_input is not None and isinstance(next(iter(given_input), None), int) else ()
        if COMMAND_LINE.get() and len(given) == 2 and len(entry.default_input) == 3 and given[0] <= 4:  # '3x224'
            # read as H=3, W=224: the command line's shorthand (a Python caller gives the full shape)
            meant = shape_text((given[0], given[1], given[1]))
            hint = ForwardError(f"{failure} (--input {shape_text(given)} is H x W = {given[0]} x {given[1]} "
                                f"with the model's {entry.default_input[0]} channels; did you mean --input {meant}?)")
            hint.ran = failure.ran
            raise hint from failure.__cause__
        raise


def analyse_given(model: nn.Module, name: str, inputs: Inputs, device: str = "meta", dtype: str = "float32",
                  backward: bool = False) -> Analysis:
    """A model the caller made (an nn.Module with or without real weights), analysed through its twin
    (twin.py): the model itself is left exactly as it was."""
    from archcalc.analysis.twin import twin

    torch_dtype = resolve_dtype(dtype)
    return placed(lambda d: (twin(model, d, torch_dtype), ""), name, inputs, device, torch_dtype, False, backward)


def placed(make, name: str, inputs: Inputs, device: str, dtype: torch.dtype, inner: bool = False,
           backward: bool = False) -> Analysis:
    """The analysis on the device asked for, ``make(device)`` giving (model, note on how it was made):
    auto takes the CPU for a small model and meta for a large one (meta again when the CPU runs out of
    memory); a forward that reads a value, which meta cannot give, runs again on the CPU, said in a note."""
    torch_device = resolve_device("meta" if device == "auto" else device)
    model, note = make(torch_device)
    if dtype != torch.float32 and placement.quantized(model):
        raise InputError(f"a quantized network keeps its int8 weights and takes float32 inputs, which it quantizes "
                         f"itself: it runs in float32 only, not {_dtype_name(dtype)} (leave the dtype at float32)")
    if device == "meta" and placement.quantized(model):
        cpu = torch.device("cpu")
        return analyse_module(make(cpu)[0], name, inputs, cpu, dtype, inner, notes=(
            "a quantized network runs on the CPU, not the meta device: its int8 kernels (FBGEMM's, QNNPACK's) have "
            "no meta version",), backward=backward)
    if device == "auto":
        choice, why = placement.auto(model, inputs.elements(), dtype)
        if choice == "cpu":
            cpu = torch.device("cpu")
            try:
                return analyse_module(make(cpu)[0], name, inputs, cpu, dtype, inner, notes=(why,), backward=backward)
            except (ForwardError, InputError) as failure:
                if not out_of_memory(failure.__cause__ or failure):
                    raise
                why = "device auto: meta (the CPU ran out of memory)"
        note = f"{note}; {why}" if note else why
    try:
        return analyse_module(model, name, inputs, torch_device, dtype, inner, notes=(note,) if note else (),
                              backward=backward)
    except ForwardError as failure:
        if torch_device.type != "meta" or not placement.refuses_meta(failure.__cause__):
            raise
        # the forward reads a value (if x.mean() > 0, .item(), a data-dependent shape): run it for real
        where = placement.user_line(failure.__cause__)
        reads, branched = (failure.reads, True) if hasattr(failure, "reads") else \
            placement.refusal(failure.__cause__, name)
        reads = f"{where + ': ' if where else ''}{reads}"
        if not placement.fits_in_memory(model):
            raise InputError(f"{reads}, and its parameters are too large to run it on the CPU here") from None
    cpu = torch.device("cpu")
    taken = "; the costs are those of the branch that input took" if branched else ""
    return analyse_module(make(cpu)[0], name, inputs, cpu, dtype, inner, notes=(
        f"{reads}: run on the CPU instead, with a random input{taken}",), backward=backward)


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
                  **(_backward_totals(records) if tracer.backward else {}))


def _backward_totals(records: tuple[LayerRecord, ...]) -> dict[str, int]:
    grads = [r.backward for r in records if r.backward is not None]
    return {"backward_macs": sum(g.macs or 0 for g in grads),
            "backward_elementwise": sum(g.elementwise or 0 for g in grads)}


# (Summed with map over the records: a column's sum without a Python step per row.)
_PARAMS, _TRAINABLE, _PARAM_BYTES, _MACS, _ELEMENTWISE, _ACTIVATION_BYTES = map(attrgetter, (
    "params", "trainable_params", "param_bytes", "macs", "elementwise", "activation_bytes"))


def _unmade(tracer: Tracer) -> tuple[str, ...]:
    """The parameters that lazy layers never made (their layers did not run), by name: 'fc.weight'."""
    if not tracer.lazy:
        return ()
    return tuple(name for name, p in tracer.model.named_parameters() if isinstance(p, UninitializedTensorMixin))


def _notes(records: tuple[LayerRecord, ...], totals: Totals, batch: int, lazy: tuple[str, ...] = (),
           model_input: tuple[int, ...] = ()) -> tuple[str, ...]:
    """The analysis' notes on what it found; ``model_input``: the model's (first) input's shape."""
    notes = []
    in_rows = 0
    uncounted: dict[str, str] = {}  # type -> why (the generic "no formula", or its counter's reason)
    fed = from_input(records)
    for r in records:
        in_rows += r.params
        if r.macs is None:
            uncounted.setdefault(r.type, r.note)
        if r.index not in fed:
            continue  # (a tensor made from constants, as a detector's anchors: 3x4 is not the batch)
        given = r.input_shapes[0] if r.input_shapes else ()
        if r.type in ("view", "reshape") and r.output_shapes and r.output_shapes[0] and r.output_shapes[0][0] != batch \
                and given[:1] == (batch,) and not _merges_leading(given, r.output_shapes[0]):  # (T5's position
            # bias, (T, T) -> (1, 1, T, T), carries no batch)
            notes.append(
                f"{r.label} turned batch {batch} into {r.output_shapes[0][0]}: the model flattens to a fixed "
                f"size ({shape_text(r.output_shapes[0][1:])}) that this input does not give per sample"
            )
    alone = unbatched_input(records, model_input)
    if alone:
        notes.append(alone)
    quantized = sorted({r.type for r in records if r.macs and r.type.startswith(QUANTIZED_TYPES)})
    if quantized:
        notes.append(f"quantized kernels ({', '.join(quantized)}): their MACs are the float layers' count, on int8 "
                     f"operands accumulated in int32 (dynamic quantization's float16 kind: in float), FLOPs = 2 x MACs "
                     f"counting them as operations; their parameters at the bytes they are stored in")
    if in_rows != totals.params:
        notes.append(f"{totals.params - in_rows:,} parameters belong to layers that did not run in this forward pass")
    if lazy:
        layers = sorted({name.rsplit(".", 1)[0] for name in lazy})
        notes.append(f"{len(lazy)} lazy parameter tensor{'s were' if len(lazy) != 1 else ' was'} never made "
                     f"({', '.join(lazy)}: {'their layers' if len(layers) > 1 else 'its layer'} "
                     f"{', '.join(layers)} did not run): not counted")
    generic = sorted(kind for kind, why in uncounted.items() if why in ("", NOT_COUNTED.note))
    if generic:
        notes.append(f"not counted (no formula): {', '.join(generic)}")
    reasons = sorted((kind, why) for kind, why in uncounted.items() if why not in ("", NOT_COUNTED.note))
    if reasons:
        notes.append("not counted: " + "; ".join(f"{kind} ({why})" for kind, why in reasons))
    unknown = {r.type: r.backward.note for r in records
               if r.backward is not None and r.backward.macs is None and r.macs is not None}
    if unknown:
        notes.append("backward not counted: " + "; ".join(f"{kind} ({why})" for kind, why in sorted(unknown.items())))
    return tuple(notes)


def _merges_leading(given: tuple[int, ...], made: tuple[int, ...]) -> bool:
    """Whether a view's first size is the batch merged with the next sizes ((N, T, C) -> (N*T, C): a linear
    layer applied per token, as Hugging Face's Conv1D writes it), or with a part of the next size, the rest of
    which comes next ((N, L, C) -> (N*a, L/a, C): YOLO12's area attention), not a fixed size that regroups
    samples."""
    if any(prod(given[:k]) == made[0] for k in range(1, len(given) + 1)):
        return True
    for k in range(1, len(given)):
        lead = prod(given[:k])
        a = made[0] // lead if lead and made[0] % lead == 0 else 0
        if a > 1 and given[k] % a == 0 and len(made) > 1 and made[1] == given[k] // a:
            return True
    return False


def _failure(name: str, inputs: Inputs, tracer: Tracer, error: Exception) -> str:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    failed_op, frame = tracer.failure(error)
    records = tracer.ordered()
    where, what = explain(failed_op, frame.module if frame else None, frame.name if frame else "",
                          shapes_of(frame.inputs) if frame else (), records, message)
    shapes = inputs.shapes
    seen = [(r.type, r.input_shapes[0]) for r in records if r.input_shapes] + (
        [(type(frame.module).__name__, shapes_of(frame.inputs)[0])] if frame and frame.inputs else [])
    alone = next((text for kind, shape in seen if shapes and (text := unbatched(kind, shape, shapes[0]))), "")
    if alone:  # (the real mistake; what failed after it follows from it)
        what = f"{alone} ({what})"
    size = shape_text(shapes[0][1:]) if len(shapes) == 1 else inputs.text()
    hint = f"; {_less_memory()}" if out_of_memory(error) else ""
    return f"forward pass of {name} failed for input {size}{' ' + where if where else ''}: {what}{hint}"


def _less_memory() -> str:
    return (f"use {option('device', 'meta')} (shapes and counts without allocating memory) or a smaller "
            f"{option('batch')} or {option('input')}")


def out_of_memory(error: BaseException) -> bool:
    """Whether a real device's allocator failed (CPU: DefaultCPUAllocator; CUDA: torch.cuda.OutOfMemoryError)."""
    text = str(error)
    return isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)) or "can't allocate memory" in text \
        or "out of memory" in text.lower()
