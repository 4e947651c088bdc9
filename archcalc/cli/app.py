"""archcalc's commands. Each parses its strings, calls one library function, and emits one Report.

Heavy imports (torch, via archcalc.analysis) happen inside the analysis commands only, so the
arithmetic commands (outsize, bottleneck) and --help answer without loading torch or pandas.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from archcalc.errors import COMMAND_LINE, ArchcalcError, ForwardError
from archcalc.output.render import FORMATS, choose_format, emit

CONVENTIONS = ("paper", "torchvision", "fvcore", "torchinfo", "thop", "ptflops", "flop_counter", "flops")  # archcalc.analysis.tools.NAMES

app = typer.Typer(
    name="archcalc",
    help="Architecture analysis and cost calculator for PyTorch CNNs: shapes, parameters, "
    "MACs/FLOPs and memory, layer by layer, with the arithmetic shown. Add --debug anywhere "
    "for a traceback on errors.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

def _version(value: bool) -> None:
    if value:
        from archcalc import __version__

        print(f"archcalc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print archcalc's version and exit.")] = False) -> None:
    pass


Format = Annotated[Optional[str], typer.Option("--format", "-f", help=f"One of {', '.join(FORMATS)}; default: from the --output suffix, else table.")]
Output = Annotated[Optional[str], typer.Option("--output", "-o", help="Write to this file (atomically) instead of stdout.")]
Force = Annotated[bool, typer.Option("--force", help="Replace an existing --output file.")]
ModelName = Annotated[str, typer.Argument(help="A registered model name (see `archcalc models`), or your own: path/to/net.py:Net or package.module:build.")]
InputSize = Annotated[Optional[str], typer.Option("--input", "-i", help="Input size without the batch, of any rank: 3x224x224, HxW (C from the model), 784, 1x16000, 3x8x32x32; default: the model's own.")]
InputSizes = Annotated[Optional[list[str]], typer.Option("--input", "-i", help="Input size without the batch, of any rank: 3x224x224, HxW (C from the model), 784 (a vector), 1x16000 (audio), 3x8x32x32 (video); repeat it for a forward of several inputs; default: the model's own.")]
InputDtype = Annotated[Optional[list[str]], typer.Option("--input-dtype", help="The input's dtype when it is not the model's: int64 for token ids (int64:N: ids below N on a real device), bool for masks; one for all inputs or one per --input.")]
Batch = Annotated[int, typer.Option("--batch", "-b", min=1, help="Batch size N.")]
Device = Annotated[str, typer.Option("--device", "-d", help="auto (the CPU for a small model, where a real pass is quicker, else meta), meta (no memory, any size), cpu or cuda.")]
Dtype = Annotated[str, typer.Option("--dtype", help="float32, float16, bfloat16 or float64 (sets the byte counts).")]
Args = Annotated[Optional[list[str]], typer.Option("--arg", "-a", help="A builder argument key=value (repeatable), e.g. --arg reduction=8 --arg attention=fc_then_add.")]
Plot = Annotated[Optional[str], typer.Option("--plot", help="Also draw a picture to this .png/.svg/.pdf file (needs matplotlib: pip install 'archcalc\\[plot]'); an existing file needs --force.")]
Convention = Annotated[Optional[str], typer.Option("--convention", help=f"Also count under a named convention: {', '.join(CONVENTIONS)} (see `archcalc reconcile`).")]
CountOpt = Annotated[Optional[str], typer.Option("--count", help="Report multiplications, additions or both (mults, adds, both) of conv/linear/matmul layers.")]
ByOpt = Annotated[str, typer.Option("--by", help="The rows: layer (every layer and operation) or type (each layer and operation type's rows summed, with its share of the parameters and MACs: how much is attention, how much convolution).")]
PassOpt = Annotated[str, typer.Option("--pass", help="Which pass the MACs count: forward (eval mode), backward (the gradients: ∂x and ∂W of each layer) or train (forward + backward); backward and train count a training step, its forward in train mode.")]
Depth = Annotated[Optional[int], typer.Option("--depth", min=1, help="Show the module tree cut at this nesting level (rows below it are summed into it); default: every layer and operation.")]

_VIEW_HELP = {
    "shapes": "Output shape of every layer and operation, with the output-size rule (in + 2p - k)/s + 1.",
    "params": "Parameters of every layer with their arithmetic, e.g. LeNet-5 C1 (5*5*1 + 1)*6 = 156.",
    "flops": "MACs (multiply-accumulates of conv/linear/matmul), FLOPs = 2 x MACs, and element-wise work.",
    "summary": "Output shapes, parameters, MACs and activation memory of every layer, with totals.",
    "rf": "Receptive field of every layer: size in input pixels (tokens, for token ids), jump (effective stride) and centre; where branches meet, their union.",
}


def _models(format: str | None, output: str | None, input: str | list[str] | None, names: list[str],
            args: list[str] | None = None, input_dtypes: list[str] | None = None):
    """The common start of a command on models: the output format, the --input size (or, repeated, the
    sizes), the entries (registered names or users' FILE.py:NAME, with the --arg values applied), each checked
    before any heavy import."""
    from archcalc.cli.parsing import parse_input, parse_inputs
    from archcalc.models.arguments import parse, split_arguments, with_arguments
    from archcalc.models.user import lookup

    fmt = choose_format(format, output)
    size = parse_inputs(input) if isinstance(input, list) else parse_input(input)
    overrides = parse(args or [])
    entries = []
    for spec in names:  # NAME@key=value: one model's own arguments
        name, own = split_arguments(spec)
        entries.append(with_arguments(lookup(name, size, input_dtypes), {**overrides, **own}))
    return fmt, size, entries


def _register_view(view: str) -> None:
    def command(model: ModelName, input: InputSizes = None, batch: Batch = 1, device: Device = "auto",
                dtype: Dtype = "float32", arg: Args = None, depth: Depth = None, format: Format = None,
                output: Output = None, plot: Plot = None, force: Force = False,
                convention: Convention = None, count: CountOpt = None, pass_: PassOpt = "forward",
                input_dtype: InputDtype = None, by: ByOpt = "layer") -> None:
        from archcalc.cli.parsing import parse_inputs
        from archcalc.models.arguments import parse

        fmt = choose_format(format, output)
        if by not in ("layer", "type"):
            raise ArchcalcError(f"unknown --by {by!r}; use layer or type")
        if by == "type" and view not in ("params", "flops", "summary"):
            raise ArchcalcError(f"--by type sums parameters and MACs by type, which {view} does not show: use it with "
                                f"params, flops or summary")
        if by == "type" and depth is not None:
            raise ArchcalcError("--by type groups every layer by its type and --depth cuts the module tree: give one")
        if count is not None and count not in ("mults", "adds", "both"):
            raise ArchcalcError(f"unknown --count {count!r}; use mults, adds or both")
        if convention is not None and convention not in CONVENTIONS:
            raise ArchcalcError(f"unknown convention {convention!r}; use one of {', '.join(CONVENTIONS)}")
        if pass_ not in ("forward", "backward", "train"):
            raise ArchcalcError(f"unknown --pass {pass_!r}; use forward, backward or train")
        _check_plot(plot, force)
        sizes, overrides = _full_sizes(parse_inputs(input), batch), parse(arg or [])
        from archcalc.analysis.views import by_type, for_pass, rows
        from archcalc.api import analyze
        from archcalc.output.analysis_report import analysis_report

        try:
            result = analyze(model, sizes, batch=batch, device=device, dtype=dtype, args=overrides,
                             backward=pass_ != "forward", input_dtypes=input_dtype)
            result = for_pass(result, pass_)
        except ForwardError as failure:  # show every layer that ran (in the view and format asked), then the error
            ran = failure.ran
            if ran is not None and ran.records and output is None:
                from dataclasses import replace

                partial = analysis_report(ran, view, rows(ran))
                emit(replace(partial, data={**partial.data, "error": str(failure)}), fmt, None)
            raise
        shown = rows(result, depth)
        report = analysis_report(result, "types" if by == "type" else view, shown, convention, count)
        if fmt == "html":  # the page shows the network drawn as well
            from dataclasses import replace

            from archcalc.output.graph import drawing

            report = replace(report, figures=(drawing(result, depth),))
        emit(report, fmt, output, force)
        if plot:
            from archcalc.output.plots import plot_layers

            counted = [(r.type, r.macs) for r in by_type(result)] if by == "type" else \
                [(r.label, r.macs) for r in shown]
            counted = [(label, macs) for label, macs in counted if macs]
            _wrote(plot_layers(result.model, [label for label, _ in counted], [macs for _, macs in counted], plot,
                               by))

    command.__name__ = view
    command.__doc__ = _VIEW_HELP[view]
    app.command(view)(command)


for _view in _VIEW_HELP:
    _register_view(_view)


@app.command()
def graph(
    model: ModelName,
    input: InputSizes = None,
    batch: Batch = 1,
    device: Device = "auto",
    arg: Args = None,
    depth: Depth = None,
    input_dtype: InputDtype = None,
    layout: Annotated[str, typer.Option("--layout", help="auto (graphviz's dot when installed, else archcalc's own layered layout), dot or python.")] = "auto",
    format: Annotated[Optional[str], typer.Option("--format", "-f", help="svg (the drawing) or dot (graphviz's source); default: from the --output suffix, else svg.")] = None,
    output: Output = None,
    force: Force = False,
) -> None:
    """The network drawn: a box per layer with its output shape and MACs, an arrow wherever a tensor flows (skips, concatenations, attention)."""
    from archcalc.cli.parsing import parse_inputs
    from archcalc.models.arguments import parse
    from archcalc.output import graph as drawn

    fmt = drawn.format_of(output, format)
    if layout not in drawn.LAYOUTS:
        raise ArchcalcError(f"unknown --layout {layout!r}; use one of {', '.join(drawn.LAYOUTS)}")
    from archcalc.api import analyze

    result = analyze(model, _full_sizes(parse_inputs(input), batch), batch=batch, device=device,
                     args=parse(arg or []), input_dtypes=input_dtype)
    picture = drawn.of(result, depth)
    text = drawn.to_dot(picture) if fmt == "dot" else drawn.svg(picture, layout)
    if output is None:
        sys.stdout.write(text)
        return
    from archcalc.output.render import write_atomic

    if os.path.exists(output) and not force:
        raise ArchcalcError(f"{output} exists; add --force to replace it")
    write_atomic(output, text)
    _wrote(output)


@app.command("time")
def time_command(
    models: Annotated[list[str], typer.Argument(help="One or more models: registered names (see `archcalc models`) or your own, path/to/net.py:Net.")],
    device: Annotated[str, typer.Option("--device", "-d", help="cpu, cuda or auto (cuda when present).")] = "auto",
    batch: Batch = 1,
    input: InputSizes = None,
    input_dtype: InputDtype = None,
    arg: Args = None,
    dtype: Dtype = "float32",
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs first.")] = 3,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Timed runs (at least).")] = 20,
    min_time: Annotated[float, typer.Option("--min-time", min=0, help="Keep timing until this many seconds have passed.")] = 0.0,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads (torch.set_num_threads).")] = None,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Model and input in channels-last memory format.")] = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model first (where it works).")] = False,
    training: Annotated[bool, typer.Option("--training", help="Time a whole training step: zero_grad, forward, loss, backward, optimizer step.")] = False,
    optimizer: Annotated[str, typer.Option("--optimizer", help="The training step's optimizer: sgd, momentum, nesterov, adam, adamw, rmsprop or adagrad.")] = "sgd",
    amp: Annotated[Optional[str], typer.Option("--amp", help="Mixed precision: the forward (and the training step's loss) under torch.autocast in float16 or bfloat16.")] = None,
    samples: Annotated[Optional[int], typer.Option("--samples", min=1, help="With --training and --epochs: estimate a run over this many samples an epoch (CIFAR-10: 50000).")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="With --training and --samples: the run's epochs.")] = None,
    format: Format = None,
    output: Output = None,
    force: Force = False,
) -> None:
    """Measured forward-pass (or, with --training, training-step) time: median and IQR over many runs, images/s and achieved GFLOP/s."""
    fmt, size, entries = _models(format, output, input, models, arg, input_dtype)
    if (samples is None) != (epochs is None):
        raise ArchcalcError("give both --samples and --epochs to estimate a training run")
    if samples is not None and not training:
        raise ArchcalcError("--samples and --epochs estimate a training run from its step: add --training")
    if optimizer != "sgd" and not training:
        raise ArchcalcError("--optimizer is the training step's: add --training")
    if amp not in (None, "float16", "bfloat16"):
        raise ArchcalcError(f"unknown --amp {amp!r}; use float16 or bfloat16")
    from archcalc.timing.measure import Options, measure_entries, resolve_timing_device

    resolve_timing_device(device)  # (a device that cannot be had: one line, before any model is built)

    options = Options(warmup, repeat, min_time, threads, channels_last, compile, training, optimizer, amp)
    results = measure_entries(entries, size, batch, device, dtype, options, input_dtype)
    for failed in (t for t in results if t.error):
        print(f"archcalc: error: {failed.model}: {failed.error}", file=sys.stderr)
    emit(results.report(samples, epochs), fmt, output, force)
    if any(t.error for t in results):
        raise typer.Exit(1)


@app.command()
def memory(
    model: ModelName,
    batch: Annotated[Optional[int], typer.Option("--batch", "-b", min=1, help="Batch size N (default 1; not with --fit, which answers it).")] = None,
    input: InputSizes = None,
    input_dtype: InputDtype = None,
    arg: Args = None,
    optimizer: Annotated[str, typer.Option("--optimizer", help="The training step's optimizer: sgd, momentum, nesterov, adam, adamw, rmsprop or adagrad (PyTorch's own, usual settings).")] = "sgd",
    dtype: Dtype = "float32",
    measure: Annotated[Optional[str], typer.Option("--measure", help="Also run two real steps on this device (cpu or cuda) and compare; with --fit, confirm the answer by running steps, each aimed by the last one's bytes.")] = None,
    fit: Annotated[Optional[str], typer.Option("--fit", help="Answer the largest batch whose predicted step fits in this memory: 16GiB, 512MiB, 24GB, or device (the GPU's).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="Whose allocator the step is simulated for: cpu, or cuda (as the CUDA caching allocator counts it; no GPU needed). Default: cuda with --measure cuda or --fit device, else cpu.")] = None,
    amp: Annotated[Optional[str], typer.Option("--amp", help="Mixed precision: the forward and the loss under torch.autocast(device, float16 or bfloat16), as the AMP recipe runs them.")] = None,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="The model and the input in torch.channels_last.")] = False,
    format: Format = None,
    output: Output = None,
    force: Force = False,
) -> None:
    """Peak memory of training: two steps simulated tensor by tensor (CPU or CUDA allocator), its parts per layer; --fit: the largest batch that fits."""
    fmt, size, (entry,) = _models(format, output, input, [model], arg, input_dtype)
    from archcalc.training.memory import device_kind, estimate, measurable, measure_peak
    from archcalc.output.memory_report import memory_report

    implied = "cuda" if (measure or "").startswith("cuda") or (fit or "").strip().lower() == "device" else "cpu"
    kind = device_kind(device or implied)
    if measure and device and device_kind(measure) != kind:
        raise ArchcalcError(f"--measure {measure} compares with the {device_kind(measure)} model: drop --device "
                            f"{device}, or measure on {kind}")
    if measure:
        measurable(measure)  # before any simulation: the fit's can take a while
    if fit is not None and batch is not None:
        raise ArchcalcError(f"--fit answers the batch itself; drop --batch {batch}")
    if fit is not None:
        from archcalc.training.fit import parse_budget
        from archcalc.training.memory import largest_fitting

        answer = largest_fitting(entry, size, parse_budget(fit), optimizer, dtype, kind, amp, channels_last,
                                 input_dtype, measure)
        emit(answer.report(), fmt, output, force)
        return

    batch = batch or 1
    result = estimate(entry, size, batch, optimizer, dtype, kind, amp, channels_last, input_dtype)
    measured = (measure_peak(entry, size, batch, optimizer, dtype, measure, amp=amp, channels_last=channels_last,
                             input_dtypes=input_dtype) if measure else None)
    emit(memory_report(result, measured), fmt, output, force)


@app.command()
def roofline(
    model: ModelName,
    input: InputSize = None,
    arg: Args = None,
    batch: Batch = 1,
    dtype: Dtype = "float32",
    peak_gflops: Annotated[Optional[float], typer.Option("--peak-gflops", min=0.001, help="The device's peak GFLOP/s.")] = None,
    peak_gbs: Annotated[Optional[float], typer.Option("--peak-gbs", min=0.001, help="The device's peak memory bandwidth, GB/s.")] = None,
    measure: Annotated[Optional[str], typer.Option("--measure", help="Measure the peaks on this device (cpu or cuda): a large matmul and a large copy.")] = None,
    time: Annotated[Optional[str], typer.Option("--time", help="Also time every layer on this device (cpu or cuda) and place it against the roof.")] = None,
    input_dtype: InputDtype = None,
    format: Format = None,
    output: Output = None,
    plot: Plot = None,
    force: Force = False,
) -> None:
    """Arithmetic intensity of every layer and, with peaks, whether it is compute- or memory-bound."""
    fmt, size, (entry,) = _models(format, output, input, [model], arg, input_dtype)
    if (peak_gflops is None) != (peak_gbs is None):
        raise typer.BadParameter("give both --peak-gflops and --peak-gbs, or --measure")
    if plot and peak_gflops is None and not measure:
        raise typer.BadParameter("--plot needs the peaks: --peak-gflops and --peak-gbs, or --measure")
    if peak_gflops is not None and measure:
        raise ArchcalcError("give the peaks (--peak-gflops and --peak-gbs) or --measure them, not both")
    _check_plot(plot, force)
    from dataclasses import replace

    from archcalc.analysis.engine import analyse, build, entry_inputs, resolve_dtype
    from archcalc.analysis.roofline import points as roofline_points
    from archcalc.output.roofline_report import roofline_report
    from archcalc.timing.measure import resolve_timing_device

    result = analyse(entry, size, batch=batch, dtype=dtype, input_dtypes=input_dtype)
    pts = roofline_points(result)
    flops_peak, bytes_peak, how = (peak_gflops and peak_gflops * 1e9), (peak_gbs and peak_gbs * 1e9), "given"
    if measure:
        from archcalc.timing.peaks import measure_peaks

        flops_peak, bytes_peak, how = measure_peaks(resolve_timing_device(measure, "measure"), resolve_dtype(dtype))
    if time:
        from archcalc.timing.layers import layer_times

        device = resolve_timing_device(time, "time")
        net = build(entry, device, resolve_dtype(dtype))
        args, kwargs = entry_inputs(entry, size, batch, input_dtype).make(device, resolve_dtype(dtype))
        if kwargs or len(args) != 1:
            raise ArchcalcError("--time times a model of one input tensor; this one takes "
                                f"{len(args) + len(kwargs)}: leave out --time")
        seconds = layer_times(net, args[0])
        pts = [replace(p, time_s=seconds.get(p.name)) for p in pts]
    emit(roofline_report(result.model, result.dtype, pts, flops_peak, bytes_peak, how), fmt, output, force)
    if plot:
        from archcalc.output.plots import plot_roofline

        _wrote(plot_roofline(result.model, pts, flops_peak, bytes_peak, plot))


@app.command()
def reconcile(
    model: ModelName,
    input: InputSize = None,
    arg: Args = None,
    batch: Batch = 1,
    input_dtype: InputDtype = None,
    format: Format = None,
    output: Output = None,
    force: Force = False,
) -> None:
    """Each counting convention's total beside fvcore's, torchinfo's, thop's, ptflops's and torch.utils.flop_counter's own, with every difference explained."""
    fmt, size, (entry,) = _models(format, output, input, [model], arg, input_dtype)
    from archcalc.analysis.reconcile import reconcile as run
    from archcalc.output.reconcile_report import reconcile_report

    result, tools = run(entry, size, batch, input_dtype)
    emit(reconcile_report(result, tools), fmt, output, force)


@app.command()
def compare(
    models: Annotated[list[str], typer.Argument(help="Two or more models: registered names (see `archcalc models`) or your own, path/to/net.py:Net; NAME@key=value[,key=value] gives one model its own builder arguments: se_resnet50 se_resnet50@reduction=8.")],
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="The model the others are measured against (default: the first).")] = None,
    input: InputSize = None,
    arg: Args = None,
    batch: Batch = 1,
    device: Device = "auto",
    dtype: Dtype = "float32",
    time: Annotated[bool, typer.Option("--time", help="Also measure forward latency (on --device cpu/cuda; meta and auto measure on the cpu).")] = False,
    input_dtype: InputDtype = None,
    format: Format = None,
    output: Output = None,
    plot: Plot = None,
    force: Force = False,
) -> None:
    """Params, MACs, FLOPs and memory of several models, each against a baseline: `compare vgg_base vgg_skip vgg_dense vgg_ca`."""
    fmt, size, _ = _models(format, output, input, models, arg, input_dtype)  # (every name checked before any work)
    _check_plot(plot, force)
    from archcalc.api import compare as compared
    from archcalc.models.arguments import parse

    rows = compared(models, _full_sizes(size, batch), baseline=baseline, batch=batch, device=device, dtype=dtype,
                    timed=time, args=parse(arg or []), input_dtypes=input_dtype)
    emit(rows.report(), fmt, output, force)
    if plot:
        from archcalc.output.plots import plot_comparison

        _wrote(plot_comparison([r.model for r in rows], [r.values["params"] for r in rows],
                               [r.values["macs"] for r in rows], [r.values["activation_bytes"] for r in rows], plot))


@app.command()
def models(format: Format = None, output: Output = None, force: Force = False) -> None:
    """The registry: name, family, default input and the seed each model comes from."""
    from archcalc.models.catalog import REGISTRY
    from archcalc.output.arithmetic_report import models_report

    emit(models_report(REGISTRY), choose_format(format, output), output, force)


@app.command()
def outsize(
    size: Annotated[int, typer.Argument(metavar="IN", help="Input size (one spatial dimension).")],
    kernel: Annotated[int, typer.Argument(metavar="K", help="Kernel size.")],
    stride: Annotated[int, typer.Option("--stride", "-s")] = 1,
    padding: Annotated[int, typer.Option("--padding", "-p")] = 0,
    dilation: Annotated[int, typer.Option("--dilation")] = 1,
    ceil: Annotated[bool, typer.Option("--ceil", help="Round up, as pooling with ceil_mode=True.")] = False,
    format: Format = None,
    output: Output = None,
    force: Force = False,
) -> None:
    """Output size (in + 2p - k)/s + 1 with its arithmetic: `outsize 7 3` -> 5, `outsize 7 3 --stride 2` -> 3."""
    from archcalc.formulas.outsize import conv_out_size
    from archcalc.output.arithmetic_report import outsize_report

    fmt = choose_format(format, output)
    emit(outsize_report(conv_out_size(size, kernel, stride, padding, dilation, ceil)), fmt, output, force)


@app.command()
def bottleneck(
    c_in: Annotated[int, typer.Argument(metavar="C_IN", help="Input channels (480 in the lecture).")],
    c_mid: Annotated[int, typer.Argument(metavar="C_MID", help="Channels after the 1x1 reduction (16).")],
    c_out: Annotated[int, typer.Argument(metavar="C_OUT", help="Output channels of the KxK conv (48).")],
    size: Annotated[int, typer.Option("--size", help="Spatial size S of the S x S input (kept).")] = 14,
    kernel: Annotated[int, typer.Option("--kernel", help="Kernel size K of the main conv.")] = 5,
    format: Format = None,
    output: Output = None,
    force: Force = False,
) -> None:
    """Direct KxK conv against a 1x1 reduction then the KxK conv: memory and multiplications, term by term."""
    from archcalc.formulas.bottleneck import compare
    from archcalc.output.arithmetic_report import bottleneck_report

    fmt = choose_format(format, output)
    emit(bottleneck_report(compare(c_in, c_mid, c_out, size, kernel)), fmt, output, force)


@app.command()
def check(
    files: Annotated[Optional[list[str]], typer.Argument(help="CSV tables to check; default: every table in tables/.")] = None,
    format: Format = None,
    output: Output = None,
    force: Force = False,
) -> None:
    """Recompute every number the papers print (tables/*.csv) and compare; exit 1 if any row fails."""
    from archcalc.checking.runner import check as run_check
    from archcalc.output.check_report import check_report

    fmt = choose_format(format, output)
    verdicts = run_check([Path(f) for f in files] if files else None)
    emit(check_report(verdicts), fmt, output, force)
    if not all(v.passed for v in verdicts):
        raise typer.Exit(1)


@app.command()
def report(
    out: Annotated[str, typer.Option("--out", help="Folder to write the answer tables to.")] = "reports",
) -> None:
    """Write the answer tables (markdown and CSV) for the seed networks, LeNet-5, the quiz, the bottleneck,
    the lab's VGG variants and the papers' tables: same bytes on every run."""
    from archcalc.reporting.answers import write

    if Path(out).exists() and not Path(out).is_dir():
        raise ArchcalcError(f"--out {out!r} is a file; give a folder (it is made if missing), e.g. --out reports")
    paths = write(Path(out))
    print(f"wrote {len(paths)} files to {out}/", file=sys.stderr)


@app.command()
def homework(
    kind: Annotated[str, typer.Argument(metavar="KIND", help="outsize, params, macs, receptive, memory, network, attention, recurrent, "
                                                            "quantize, training or backward.")],
    count: Annotated[int, typer.Option("--count", "-n", help="How many questions (1 to 500).")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="The draw: the same seed gives the same files.")] = 0,
    level: Annotated[int, typer.Option("--level", help="1 (exact, one layer), 2, or 3 (floor, ceil_mode, "
                                                      "dilation, groups, deeper stacks).")] = 1,
    lang: Annotated[str, typer.Option("--lang", help="en, or ko (the lectures' Korean terms).")] = "en",
    out: Annotated[Optional[str], typer.Option("--out", help="Folder for questions.md, answers.md and answers.csv; "
                                                             "default homework/KIND-seedS-levelL.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the files of an earlier set in --out.")] = False,
) -> None:
    """A homework set: new questions with answer keys that show the lecture's arithmetic, every answer checked
    by building the layer in PyTorch on the meta device."""
    from archcalc.homework.generate import generate, validate
    from archcalc.homework.write import write

    validate(kind, count, seed, level, lang)
    folder = Path(out) if out else Path("homework") / (f"{kind}-seed{seed}-level{level}" +
                                                      ("" if lang == "en" else f"-{lang}"))
    made = generate(kind, count, seed, level, lang)
    paths = write(made, folder, force)
    print(f"wrote {', '.join(p.name for p in paths)} to {folder}/ ({count} {kind} questions, level {level}, "
          f"seed {seed}; every answer checked in PyTorch)", file=sys.stderr)


def _check_plot(plot: str | None, force: bool) -> None:
    """A --plot file checked before the work, as --output is."""
    if plot:
        from archcalc.output.plots import check_target

        check_target(plot, force)


def _full_sizes(given, batch: int):
    """The command line's sizes (without the batch) as the Python API takes them: (N, ...) each."""
    if given is None:
        return None
    return (batch, *given) if given and isinstance(given[0], int) else [(batch, *g) for g in given]


def _wrote(path) -> None:
    print(f"wrote {path}", file=sys.stderr)


def _error(message: str) -> None:
    print(f"archcalc: error: {message}", file=sys.stderr)


def _negative(error: Exception, args: list[str]) -> str:
    """Where a negative number was given as an argument (``bottleneck 480 -16 48``), which the parser reads as the
    short options -1 and -6 ("No such option: -1"), what it was; else ''."""
    name = getattr(error, "option_name", None)
    if type(error).__name__ != "NoSuchOption" or not name:
        return ""
    given = next((a for a in args if re.fullmatch(r"-\d+(\.\d*)?", a) and a.startswith(name)), None)
    return f"{given} reads as an option: a negative number is no size, count or channel number here; give one of " \
           f"at least 1" if given else ""


def main(argv: list[str] | None = None) -> None:
    """The one error boundary: library errors exit 1, bad arguments exit 2, each as one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("ARCHCALC_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    command = typer.main.get_command(app)
    token = COMMAND_LINE.set(True)  # (its --input sizes may be shorthands: api._full_shape)
    try:
        _run(command, args, debug)
    finally:  # (main called in a Python session, as the tests do, leaves the API's calls after it as they were)
        COMMAND_LINE.reset(token)


def _run(command, args: list[str], debug: bool) -> None:
    """The command run, each error turned into its line and exit code."""
    try:
        code = command.main(args=args, prog_name="archcalc", standalone_mode=False)
    except ArchcalcError as error:
        if debug:
            raise
        _error(str(error))
        sys.exit(1)
    except typer.Abort:
        _error("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        _error("interrupted")
        sys.exit(130)
    except typer.TyperException as error:  # bad arguments: Typer's usage errors
        if debug:
            raise
        context = getattr(error, "ctx", None)
        if type(error).__name__ == "NoArgsIsHelpError" and context is not None:
            print(context.get_help())
            sys.exit(2)
        where = f"archcalc {context.info_name}" if context is not None and context.parent else "archcalc"
        _error(f"{_negative(error, args) or error.format_message()} (see `{where} --help`)".replace("\n", " "))
        sys.exit(getattr(error, "exit_code", 2))
    except BrokenPipeError:
        sys.exit(0)
    except Exception as error:  # a bug in archcalc: one line unless asked for the traceback
        if debug:
            raise
        _error(f"internal error: {type(error).__name__}: {error} (run again with --debug for the traceback)")
        sys.exit(3)
    sys.exit(code if isinstance(code, int) else 0)
