"""archcalc in Python: ``analyze`` a model (yours, a registered name, or a FILE.py:NAME spec) and read
the result, or ``summary`` it in one line as torchinfo's ``summary`` does.

    >>> import archcalc
    >>> a = archcalc.analyze("lenet5")
    >>> a.totals.params, a.totals.macs
    (60840, 326520)

Sizes here include the batch, as torchinfo takes them: ``input_size=(1, 3, 224, 224)``. The command
line's ``--input`` leaves it out (``--input 3x224x224 --batch 1``). A tensor where a size goes (or a tuple of
them, or a dict of keyword inputs), as fvcore and torchinfo's input_data take one, is an example input:
``archcalc.analyze(model, x)`` is ``archcalc.analyze(model, inputs=x)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from archcalc.errors import COMMAND_LINE, InputError

if TYPE_CHECKING:  # (torch is imported when a function runs, not when archcalc is)
    from archcalc.analysis.records import Analysis

__all__ = ["analyze", "check", "compare", "memory", "reconcile", "rf", "summary", "time"]

Size = Sequence[int]



def analyze(model: Any, input_size: Size | Sequence[Size] | None = None, *, inputs: Any = None,
            input_dtypes: Sequence[Any] | None = None, batch: int = 1, device: str = "meta",
            dtype: Any = "float32", args: Mapping[str, Any] | None = None, depth: int | None = None,
            convention: str | None = None, backward: bool = False) -> Analysis:
    """Trace one forward pass of ``model`` and count every layer: shapes, parameters, MACs, memory.

    model: an ``nn.Module`` (left exactly as it is: never moved, converted, switched to eval or
        hooked; on the meta device its weights are not copied), a registered name (``"vgg_dense"``,
        see ``archcalc models``), or ``"path/to/net.py:Net"`` / ``"package.module:build"``.
    input_size: one input's full shape with the batch, ``(1, 3, 224, 224)``, or a list of shapes for a
        forward of several inputs. For a registered model, None takes its own size with ``batch``.
    inputs: example inputs instead of sizes: a tensor, a tuple of positional inputs, or a dict of
        keyword inputs (on the meta device, replaced by empty tensors of the same shapes and dtypes).
    input_dtypes: one dtype per input size (or one for all): ``torch.int64`` or ``"int64"`` for token
        ids, ``"int64:30522"`` for ids below 30522 on a real device; None: the model's dtype.
    device: "meta" (no memory, any size), "cpu", "cuda", or "auto" (the CPU for a small model).
    dtype: the floating-point dtype of the weights and inputs: float32, float16, bfloat16, float64.
    args: keyword arguments for a registered model's builder, e.g. ``{"reduction": 8}``.
    depth: the rows of the tables (``.layers``): the module tree cut at this level.
    convention: also count under fvcore, torchinfo, thop, ptflops, flop_counter, ... (a table column).
    backward: count a training step: each layer's gradients too (``archcalc.views.for_pass`` turns them into a
        view), after a forward in train mode (dropout, BatchNorm's batch statistics; the model's modes untouched).

    Returns the frozen ``Analysis``: ``.totals`` (params, macs, flops, ...), ``.layers``,
    ``.to_frame()``, ``.to_dict()``, ``.to_json()``, ``.to_csv()``, ``.to_html()``, ``.show()``.
    """
    from archcalc.analysis import engine, tools
    from archcalc.analysis.inputs import Inputs

    if convention is not None and convention not in tools.NAMES:
        raise InputError(f"unknown convention {convention!r}; use one of {', '.join(tools.NAMES)}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise InputError(f"depth must be a positive integer, got {depth!r}")
    if not isinstance(backward, bool):
        raise InputError(f"backward must be True or False, got {backward!r}")
    dtype_name = _dtype_name(dtype)
    input_size, inputs = _example_or_size(input_size, inputs)
    sizes = _sizes(input_size)
    _same_batch(sizes, batch)
    if isinstance(model, str):
        result = _named(model, sizes, inputs, input_dtypes, batch, device, dtype_name, args, backward)
    elif _is_module(model):
        from archcalc.models import programs
        from archcalc.models.user import traceable

        name = type(model).__name__
        if args:
            raise InputError("args are a registered model's builder arguments; build your module with them instead")
        if inputs is not None:
            given = Inputs.of_example(inputs)
        elif sizes is not None:
            given = engine.sized_inputs(sizes, input_dtypes)
        elif getattr(model, "archcalc_input", None) is not None:
            given = engine.sized_inputs([(batch, *model.archcalc_input)], input_dtypes)
        else:
            raise InputError(f"give the input of {name}, with the batch: e.g. "
                             f"input_size={_example_size(model)}, or inputs=<example tensors>")
        if programs.is_torchscript(model):  # (converted to a program at this input: CPU tensors of its dtypes)
            import torch

            model = programs.from_torchscript(model, given.make(torch.device("cpu"), torch.float32)[0], name)
        model = traceable(model, name)  # torch.compile's wrapper -> its module; a module holding TorchScript refused
        result = engine.analyse_given(model, name, given, device, dtype_name, backward)
    else:
        raise InputError(f"model must be an nn.Module, a registered name or a FILE.py:NAME spec, got "
                         f"{type(model).__name__}")
    return replace(result, depth=depth, convention=convention)


def summary(model: Any, input_size: Size | Sequence[Size] | None = None, **options: Any) -> Analysis:
    """Print the summary table (each layer's output shape, parameters, MACs, activation bytes and
    receptive field, with the totals) and return the Analysis: ``analyze``'s options."""
    result = analyze(model, input_size, **options)
    result.show("summary")
    return result


def rf(model: Any, input_size: Size | Sequence[Size] | None = None, **options: Any) -> dict:
    """The receptive field of every row (``archcalc rf``): label -> receptive.Field (``.size`` in input
    pixels, ``.jump``, ``.centre``; ``.whole`` where the whole input is seen), None where it is not
    defined; ``analyze``'s options."""
    return {r.label: r.receptive for r in analyze(model, input_size, **options).layers}


def compare(models: Sequence[Any], input_size: Size | None = None, *, baseline: str | None = None, batch: int = 1,
            device: str = "auto", dtype: Any = "float32", timed: bool = False,
            args: Mapping[str, Any] | None = None, input_dtypes: Sequence[Any] | None = None) -> list:
    """Params, MACs, FLOPs and memory of several models (names, specs or nn.Modules), each against the
    baseline (a name; default the first): ``archcalc compare``'s rows (analysis.compare.ComparedModel:
    ``.model``, ``.values``, ``.difference``, ``.ratio``), a list that shows as the command's table (in a
    notebook, rich.print, ``.show()``). ``timed``: the forward latency as well
    (``latency_ms``, measured on ``device``, the CPU for meta and auto; a module is timed through a copy). ``args``:
    builder arguments for every named model (``{"reduction": 8}``); one model's own follow its name:
    ``"se_resnet50@reduction=8"``. ``input_dtypes``: as analyze's (token ids: ``["int64"]``)."""
    from archcalc.analysis.compare import compare as compared, totals_of

    if isinstance(models, str) or _is_module(models):
        models = [models]
    if len(models) < 1:
        raise InputError("compare needs at least one model")
    values: dict[str, dict[str, float]] = {}
    batches: dict[str, int] = {}  # (a model's example inputs fix their own: a .pt2 program's, archcalc_input's)
    from archcalc.models.arguments import split_arguments

    for model in models:
        label, own = (model, dict(args or {})) if not isinstance(model, str) else (model, {})
        if isinstance(model, str):  # se_resnet50@reduction=8: this model's own arguments after its name
            model, own = split_arguments(model)
            own = {**dict(args or {}), **own}
        result = analyze(model, input_size, batch=batch, device=device, dtype=dtype,
                         args=own if isinstance(model, str) else None, input_dtypes=input_dtypes)
        label = label if isinstance(label, str) and "@" in label else result.model
        name, n = label, 2
        while name in values:  # two modules of one class: vgg, vgg (2)
            name, n = f"{label} ({n})", n + 1
        values[name] = totals_of(result)
        batches[name] = result.input_shape[0] if result.input_shape else batch
    if timed:
        on = "cpu" if device in ("meta", "auto") else device
        for name, timing in zip(values, time(list(models), input_size, batch=batch, device=on, dtype=dtype,
                                             args=args, input_dtypes=input_dtypes)):
            if timing.error:
                raise InputError(f"{name}: {timing.error}")
            values[name]["latency_ms"] = timing.median_ms
    from archcalc.formulas.numbers import shape_text

    if _is_example(input_size):  # (an example tensor: its shapes, as the analyses read them)
        shapes = result.input_shapes or (result.input_shape,)
        shape, batch = ", ".join(shape_text(s[1:]) for s in shapes), shapes[0][0]
    else:
        shape = shape_text(tuple(input_size)[1:]) if input_size else "each model's default"
        batch = tuple(input_size)[0] if input_size else batch
    if len(set(batches.values())) > 1:
        batch = "each model's own (" + ", ".join(f"{name} {n}" for name, n in batches.items()) + ")"
    context = f"input {shape}, batch {batch}, {device}, {_dtype_name(dtype)}"
    return compared(values, baseline or next(iter(values)), context)


def time(models: Any, input_size: Size | Sequence[Size] | None = None, *, batch: int = 1, device: str = "auto",
         dtype: Any = "float32", warmup: int = 3, repeat: int = 20, min_time: float = 0.0, threads: int | None = None,
         channels_last: bool = False, compile: bool = False, training: bool = False, optimizer: str = "sgd",
         args: Mapping[str, Any] | None = None, amp: str | None = None,
         input_dtypes: Sequence[Any] | None = None, inputs: Any = None) -> list:
    """Measured forward-pass latency of registered models, FILE.py:NAME specs or nn.Modules (``archcalc
    time``; a module is timed through a copy on the device, itself left as it is), or with ``training`` that
    of a whole training step: one timing.measure.Timing each (``.median_ms``, ``.iqr_ms``, ``.images_per_s``,
    ``.error`` when it failed), a list that shows as the command's table (``.report(samples, epochs)`` adds
    each run's estimate); timing.measure.run_estimate turns a step into the time of a run; ``amp``
    ("float16", "bfloat16") runs the forward under autocast. ``input_size``: one full shape or several (a
    forward of several inputs), ``input_dtypes`` as analyze's (``"int64:30522"``: token ids below 30522);
    ``inputs``: example inputs instead (memory's: a graph network's ``(x, edge_index)``), their values used."""
    from archcalc.timing.measure import Options, Timings, measure, resolve_timing_device

    resolve_timing_device(device)  # (a device that cannot be had: an error, before any model is built; a model's
    # own failure is its row's)
    names = [models] if isinstance(models, str) or _is_module(models) else list(models)
    input_size, inputs = _example_or_size(input_size, inputs)
    options = Options(warmup, repeat, min_time, threads, channels_last, compile, training, optimizer, amp)
    if inputs is not None:
        if batch != 1 or args:
            raise InputError("example inputs fix the input and its batch: give batch and args without "
                             "them")
        return Timings([measure(_example_entry(n, inputs), None, 1, device, _dtype_name(dtype), options)
                        for n in names], options)
    given, batch = _given(input_size, batch)
    return Timings([measure(_entry(n, given, args, batch), given, batch, device, _dtype_name(dtype), options,
                            input_dtypes=input_dtypes) for n in names], options)


def memory(model: Any, input_size: Size | Sequence[Size] | None = None, *, inputs: Any = None, batch: int = 1,
           optimizer: str = "sgd", dtype: Any = "float32", measure: str | None = None, fit: str | int | None = None,
           device: str | None = None, amp: str | None = None, channels_last: bool = False,
           input_dtypes: Sequence[Any] | None = None):
    """Memory of one training step (``archcalc memory``) of a registered name, a FILE.py:NAME spec or an
    nn.Module (simulated on a meta copy, the module left as it is; ``measure`` needs a name or a spec, which
    a fresh process can build): parameters, gradients, optimizer state and the
    activations autograd keeps, per layer (training.memory.MemoryEstimate), and the peak of two training steps
    simulated for the CPU's allocator or, with ``device="cuda"`` (the default with ``measure="cuda"`` or
    ``fit="device"``), CUDA's (``.peak``; ``.predicted_bytes``); ``amp="float16"`` or ``"bfloat16"`` runs the
    forward under autocast, ``channels_last=True`` the model and input in torch.channels_last; with ``measure``
    ("cpu" or "cuda"), (estimate, the measured peak of two real steps); with ``fit`` (bytes, or "16GiB"), the
    largest batch whose predicted step fits (training.fit.Fit: ``.batch``, ``.text()``, shown as the command's
    table), and with ``measure`` too, (Fit, training.fit.Confirmation: the largest batch measured to fit, found
    by running steps; also the Fit's ``.confirmed``, which its table shows).
    ``input_size``: one full shape or several (a forward of several inputs), with ``input_dtypes`` as
    analyze's (``"int64"`` for token ids, ``"bool"`` for a mask); ``inputs``: example inputs instead, for a forward
    whose inputs share no batch (a graph network's node features and edges: ``inputs=(x, edge_index)``), a tuple of
    positional inputs or a dict of keyword inputs, as reconcile's (only their shapes and dtypes are used; their
    batch is theirs, so no ``fit``)."""
    from archcalc.training.memory import device_kind, estimate, largest_fitting, measure_peak

    input_size, inputs = _example_or_size(input_size, inputs)
    if inputs is not None:
        if fit is not None or batch != 1:
            raise InputError("example inputs fix the batch, so fit and batch do not apply: give input_size (full "
                             "shapes with the batch) to vary it")
        given, entry = None, _example_entry(model, inputs)
    else:
        given, batch = _given(input_size, batch)
        entry = _entry(model, given, batch=batch)
    implied = "cuda" if (measure or "").startswith("cuda") or str(fit).strip().lower() == "device" else "cpu"
    kind = device_kind(device or implied)
    if fit is not None and batch != 1:
        raise InputError(f"fit answers the batch itself; drop the batch of {batch}")
    if fit is not None:
        from archcalc.training.fit import parse_budget

        budget = fit if isinstance(fit, int) and not isinstance(fit, bool) else parse_budget(str(fit))
        if budget < 1:
            raise InputError(f"fit must be a positive number of bytes or a size such as '16GiB', got {fit!r}")
        answer = largest_fitting(entry, given, budget, optimizer, _dtype_name(dtype), kind, amp, channels_last,
                                 input_dtypes, measure)
        return answer if measure is None else (answer, answer.confirmed)
    result = estimate(entry, given, batch, optimizer, _dtype_name(dtype), kind, amp, channels_last, input_dtypes)
    if measure is None:
        return result
    return result, measure_peak(entry, given, batch, optimizer, _dtype_name(dtype), measure, amp=amp,
                                channels_last=channels_last, input_dtypes=input_dtypes)


def reconcile(model: Any, input_size: Size | None = None, *, inputs: Any = None, batch: int = 1):
    """Each counting convention's total beside fvcore's, torchinfo's, thop's, ptflops's and flop_counter's
    own (``archcalc reconcile``): (Analysis, tool name -> reconcile.ToolTotal). ``model``: a registered name,
    a FILE.py:NAME spec or an nn.Module; ``inputs``: example inputs instead of a size (a tuple of positional
    inputs, ``([image, image],)`` for a detector's list of images, a dict of keyword inputs), each tool given
    them as it takes them (fvcore and thop take positional inputs only; ptflops one, of a batch of one, or
    keyword inputs)."""
    from archcalc.analysis.reconcile import reconcile as reconciled

    input_size, inputs = _example_or_size(input_size, inputs)
    if inputs is not None:
        return reconciled(_example_entry(model, inputs), None, 1)
    given, batch = _given(input_size, batch)
    if given is not None and not isinstance(given[0], int):
        raise InputError("reconcile takes one input size (with the batch), e.g. (1, 3, 224, 224)")
    return reconciled(_entry(model, given, batch=batch), given, batch)


def check(files: Sequence[str] | None = None) -> list:
    """Every number the papers print (tables/*.csv, or these files) recomputed (``archcalc check``): one
    checking Verdict per row (``.passed``)."""
    from pathlib import Path

    from archcalc.checking.runner import check as checked

    return checked([Path(f) for f in files] if files else None)


# -- the pieces ---------------------------------------------------------------------------------

def _example_size(model) -> str:
    """An input size to suggest, from the first layer that says what it takes (a suggestion: the forward decides)."""
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Linear):
            return f"(1, {m.in_features})"
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return f"(1, {m.in_channels}{', 224' * (m.weight.dim() - 2)})"
        if isinstance(m, nn.Embedding):
            return f"(1, 128), input_dtypes=['int64:{m.num_embeddings}']"
    return "(1, 3, 224, 224)"


def _named(name: str, sizes, inputs, input_dtypes, batch: int, device: str, dtype: str, args, backward: bool):
    """A registered name or a user's spec, built by archcalc for the device."""
    from archcalc.analysis import engine
    from archcalc.analysis.inputs import Inputs
    from archcalc.models.user import lookup

    overrides = dict(args or {})
    if inputs is not None:
        given = Inputs.of_example(inputs)
        entry = lookup(name, [shape[1:] for shape in given.shapes])
        torch_dtype = engine.resolve_dtype(dtype)
        return engine.placed(lambda d: engine.build_noted(entry, d, torch_dtype, overrides), entry.name, given, device,
                             torch_dtype, backward=backward)
    size, batch = _given(sizes, batch)
    entry = _full_shape(lookup(name, size, input_dtypes), size, batch)
    return engine.analyse(entry, size, batch=batch, device=device, dtype=dtype, overrides=overrides,
                          backward=backward, input_dtypes=input_dtypes)


def _same_batch(sizes, batch: int) -> None:
    """A batch given beside full sizes must be theirs (the sizes carry it; the default 1 defers to them)."""
    if sizes is not None and batch != 1 and any(s[0] != batch for s in sizes):
        raise InputError(f"input_size carries the batch ({', '.join(str(s[0]) for s in sizes)}), and batch={batch} "
                         f"differs: drop batch, or make them agree")


def _given(input_size, batch: int):
    """(the size without the batch, or several such sizes; the batch) from full shapes, as the command line
    gives them (--input without the batch, --batch)."""
    if input_size is None:
        return None, batch
    shapes = _sizes(input_size)
    _same_batch(shapes, batch)
    if len({s[0] for s in shapes}) > 1:
        raise InputError(f"the input sizes have different batches ({', '.join(str(s[0]) for s in shapes)}): give one, "
                         f"or, for inputs that share no batch (a graph's nodes and edges), example tensors as inputs=")
    sizes = [s[1:] for s in shapes]
    return (sizes[0] if len(sizes) == 1 else sizes), shapes[0][0]


def _example_entry(model: Any, inputs: Any):
    """The entry of a model (a module, a name or a spec) given example inputs, which fix its batch."""
    from dataclasses import replace as replaced

    from archcalc.models.user import example_entry

    return example_entry(model, inputs) if _is_module(model) else replaced(_entry(model, None), example=inputs)


def _entry(name: Any, given, args: Mapping[str, Any] | None = None, batch: int | None = None):
    from archcalc.models.arguments import split_arguments, with_arguments
    from archcalc.models.user import lookup, module_entry

    if _is_module(name):
        if args:
            raise InputError("args are a registered model's builder arguments; build your module with them instead")
        return module_entry(name, given)
    if not isinstance(name, str):
        raise InputError(f"give an nn.Module, a registered name or a FILE.py:NAME spec here, not "
                         f"{type(name).__name__}")
    name, own = split_arguments(name)
    return with_arguments(_full_shape(lookup(name, given), given, batch), {**dict(args or {}), **own})


def _full_shape(entry, given, batch: int | None = None):
    """The entry, where ``given`` (a size the caller gave, without its first number, the batch) has the rank of a
    registered model's input: the command line's shorthands (HxW with the model's channels, one number for a
    square) do not apply here, where (3, 224, 224) would otherwise be a batch of 3 224x224 images."""
    default = entry.default_input
    if COMMAND_LINE.get() or entry.family == "user" or not default or not given or not isinstance(given[0], int) \
            or len(given) >= len(default):
        return entry
    shape = (batch, *given) if batch is not None else None
    said = f"{shape} " if shape is not None else ""
    raise InputError(f"input_size {said}is the full shape with the batch first, and {entry.name} takes "
                     f"{(1, *default)} for one sample: give {len(default) + 1} sizes (the command line's --input, "
                     f"without the batch, is the one that takes HxW or one number for a square)")


def _sizes(input_size) -> list[tuple[int, ...]] | None:
    """[(N, ...)] from one shape or several; each checked."""
    from archcalc.analysis.inputs import checked_shape

    if input_size is None:
        return None
    if isinstance(input_size, (tuple, list)) and input_size and all(isinstance(s, (tuple, list)) for s in input_size):
        return [checked_shape(s) for s in input_size]
    return [checked_shape(input_size)]


def _is_example(value: Any) -> bool:
    """A tensor, a dict of keyword inputs, or a tuple or list holding a tensor: example inputs, not a size."""
    import torch

    if isinstance(value, (torch.Tensor, Mapping)):
        return True
    return isinstance(value, (tuple, list)) and any(_is_example(v) for v in value)


def _example_or_size(input_size, inputs) -> tuple:
    """(input_size, inputs), example inputs given where the size goes moved to inputs (fvcore's and torchinfo's
    habit: the tensor itself)."""
    if inputs is not None and input_size is not None:
        raise InputError("give input_size or inputs (example tensors), not both")
    return (None, input_size) if _is_example(input_size) else (input_size, inputs)


def _dtype_name(dtype: Any) -> str:
    """'float32' from 'float32' or torch.float32."""
    return str(dtype).removeprefix("torch.")


def _is_module(model: Any) -> bool:
    import torch

    return isinstance(model, torch.nn.Module)
