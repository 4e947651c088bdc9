"""Time a model's forward pass, or a whole training step, soundly.

Method: the model is built on the device with its weights there; the input is made once; warm-up
runs are excluded; every forward run is under torch.inference_mode(); a training step (Options.training)
is the model in train mode, ``zero_grad(set_to_none=True)``, the forward, a loss (the mean of each
output that needs a gradient, in float32, added up: the loss's own cost is negligible beside the
network's), ``backward()`` and the optimizer's ``step()``, its state made by the warm-up steps; CPU runs are timed with
time.perf_counter, CUDA runs with CUDA events recorded around the call and a synchronize after
each run (so asynchronous launches are not mistaken for work done). Reported: the median and the
interquartile range of the per-run times, their min and max, images per second (batch / median)
and achieved GFLOP/s (the analysed FLOPs = 2 x MACs at this batch, divided by the median; for a
training step, 2 x the forward and backward MACs, `--pass train`).
benchmarks/timing_agreement.py shows that this loop agrees with torch.utils.benchmark.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace
from math import prod
from typing import Any, Callable, Sequence

import torch

from archcalc.analysis.diagnosis import unbatched_input, with_hint
from archcalc.analysis.engine import build, entry_inputs, out_of_memory, placed, resolve_dtype
from archcalc.analysis.packed import quantized
from archcalc.analysis.placement import free_memory
from archcalc.errors import ArchcalcError, InputError, choices, option
from archcalc.models.registry import ModelEntry
from archcalc.shown import Shown
from archcalc.training.batch import Batch, loss_of, made as made_batch
from archcalc.training.optimizers import check as check_optimizer, optimizer_for


@dataclass(frozen=True)
class Timing:
    model: str
    device: str
    dtype: str
    batch: int
    input_shape: tuple[int, ...]
    times_ms: tuple[float, ...] = ()
    flops: int = 0
    error: str = ""
    inputs: str = ""  # every input, as Inputs.text() writes them, where there are several or integer ones
    integer: bool = False  # a quantized network: its multiply-accumulates are int8 ones (GFLOP/s: integer operations)
    note: str = ""  # what the batch is where the inputs share none (Inputs.batch_note)

    @property
    def runs(self) -> int:
        return len(self.times_ms)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def iqr_ms(self) -> float:
        if len(self.times_ms) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.times_ms, n=4, method="inclusive")
        return q3 - q1

    @property
    def images_per_s(self) -> float:
        return self.batch / (self.median_ms / 1000)

    @property
    def gflops_per_s(self) -> float:
        return self.flops / (self.median_ms / 1000) / 1e9


@dataclass(frozen=True)
class Options:
    warmup: int = 3
    repeat: int = 20
    min_time: float = 0.0
    threads: int | None = None
    channels_last: bool = False
    compile: bool = False
    training: bool = False  # time a whole training step rather than the forward pass
    optimizer: str = "sgd"  # the step's optimizer: one of training/optimizers.py's
    amp: str | None = None  # float16 or bfloat16: the forward (and the loss) under torch.autocast

    def __post_init__(self):
        for name, least in (("warmup", 0), ("repeat", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InputError(f"{name} must be a whole number >= {least}, got {value!r}")
        if not self.min_time >= 0:  # (NaN too)
            raise InputError(f"min_time must be a number of seconds >= 0, got {self.min_time!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise InputError(f"threads must be a whole number >= 1, got {self.threads!r}")
        check_optimizer(self.optimizer)
        if self.amp not in (None, "float16", "bfloat16"):
            raise InputError(f"unknown amp {self.amp!r}; use float16 or bfloat16")

    def method(self) -> str:
        """How the times were taken, as the report says it."""
        what = (f"training steps ({self.optimizer}; zero_grad(set_to_none=True), forward, mean of the outputs as "
                f"the loss, backward, step)" if self.training else "runs under torch.inference_mode()")
        return (f"{self.warmup} warm-up runs excluded, then at least {self.repeat} timed {what}"
                + (f" for at least {self.min_time:g} s" if self.min_time else "")
                + (f", {self.threads} CPU threads" if self.threads else "")
                + (", channels-last" if self.channels_last else "") + (", torch.compile" if self.compile else "")
                + (f", under torch.autocast({self.amp})" if self.amp else "")
                + "; CPU: perf_counter, CUDA: events + synchronize; GFLOP/s from the analysed FLOPs (2 x MACs"
                + (" of the forward and backward passes)" if self.training else ")"))


class Timings(list, Shown):
    """time()'s results (Timing, a list) with the Options they were taken under, shown as `archcalc time`
    prints them; report(samples, epochs) adds each model's run estimate."""

    def __init__(self, timings: list[Timing], options: Options):
        super().__init__(timings)
        self.options = options

    def report(self, samples: int | None = None, epochs: int | None = None):
        from archcalc.output.time_report import time_report

        return time_report(self, self.options.method(), self.options.training, samples, epochs)


def mixed(device: torch.device, amp: str | None):
    """torch.autocast on ``device`` in ``amp`` (float16 or bfloat16), or nothing."""
    if amp not in (None, "float16", "bfloat16"):
        raise InputError(f"unknown {option('amp', repr(amp))}; use float16 or bfloat16")
    return torch.autocast(device.type, dtype=getattr(torch, amp or "float16"), enabled=amp is not None)


def training_step(model: torch.nn.Module, x: torch.Tensor | Batch, optimizer: torch.optim.Optimizer,
                  amp: str | None = None) -> Callable[[], None]:
    """One step as a training loop runs it: zero_grad(set_to_none=True), forward, loss (the means of the
    trained outputs, batch.py), backward, step; with ``amp``, the forward and the loss under autocast, as the
    mixed-precision recipe runs them. ``x``: one input tensor, or the Batch of several."""
    batch = _as_batch(x)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with mixed(batch.device, amp):
            loss = loss_of(batch.into(model), "mean")
        loss.backward()
        optimizer.step()

    return step


def forward_pass(model: torch.nn.Module, x: torch.Tensor | Batch, amp: str | None = None) -> Callable[[], object]:
    batch = _as_batch(x)

    def run():
        with mixed(batch.device, amp):
            return batch.into(model)

    return run



def _as_batch(x: torch.Tensor | Batch) -> Batch:
    return x if isinstance(x, Batch) else Batch.of(x)


def resolve_timing_device(name: str, flag: str = "device") -> torch.device:
    """The device to time (or measure) on; ``flag`` names the option in the errors (roofline's --measure
    and --time take cpu or cuda, time's --device auto as well)."""
    values = ("cpu", "cuda", "auto") if flag == "device" else ("cpu", "cuda")
    if name == "auto" and flag == "device":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.split(":")[0] == "meta":
        raise InputError(f"the meta device has no time to measure; use {choices(flag, values)}")
    if name.split(":")[0] == "cuda" and not torch.cuda.is_available():
        raise InputError(f"CUDA is not available on this machine; use {option(flag, 'cpu')}")
    if name.split(":")[0] not in ("cpu", "cuda"):
        raise InputError(f"unknown {option(flag, repr(name))}; use {choices(flag, values, named=False)}")
    return torch.device(name)


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    free = free_memory()
    return 2**62 if free is None else free  # (unknown: no refusal)


def _timed_runs(run: Callable[[], object], device: torch.device, options: Options, tick: Callable[[], None],
                grad: bool = False) -> list[float]:
    """The times of ``run()`` in ms after the warm-up runs, under inference_mode unless ``grad``."""
    times: list[float] = []
    with torch.inference_mode(not grad):
        for _ in range(options.warmup):
            run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        while len(times) < options.repeat or time.perf_counter() - started < options.min_time:
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                run()
                end.record()
                torch.cuda.synchronize(device)
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                run()
                times.append((time.perf_counter() - t0) * 1000)
            tick()
    return times


def measure(entry: ModelEntry, size: Sequence[int] | None, batch: int, device: str, dtype: str,
            options: Options = Options(), tick: Callable[[], None] = lambda: None,
            input_dtypes: Sequence[Any] | None = None) -> Timing:
    """One model's timing, given what engine.entry_inputs makes of ``size`` (one size without the batch, or
    several) and ``input_dtypes``; a failure (no CUDA, out of memory, a model that fails) is returned, not
    raised, so that a run over several models goes on."""
    torch_dtype = resolve_dtype(dtype)
    shape, text = (batch,), ""
    try:
        inputs = entry_inputs(entry, size, batch, input_dtypes)
        shape, text = (inputs.shapes[0] if inputs.shapes else (batch,)), inputs.text()
        built = []

        def make(on: torch.device):
            built.append(quantized(model := build(entry, on, torch_dtype)))
            return model, ""

        plan = placed(make, entry.name, inputs, "meta", torch_dtype,
                      backward=options.training)  # (the CPU where meta cannot run it: a quantized network)
        if options.training:
            check_optimizer(options.optimizer)  # (a bad name: said now)
        mixed(torch.device("cpu"), options.amp)  # (likewise)
        torch_device = _for_integer(resolve_timing_device(device), device, built[0])
    except ArchcalcError as error:
        return Timing(entry.name, device, dtype, batch, shape, (), 0, str(error), text)
    alone = unbatched_input(plan.records, inputs.shapes[0] if inputs.shapes else ())
    if alone:  # (its time would be one sample's, read as the batch's: images/s that many times too high)
        return Timing(entry.name, device, dtype, batch, shape, (), 0, alone, text)
    batch = inputs.batch
    macs = plan.totals.macs + (plan.totals.backward_macs or 0)
    base = Timing(entry.name, str(torch_device), dtype, batch, shape, flops=2 * macs, inputs=text, integer=built[0],
                  note=inputs.batch_note())
    needed = plan.totals.param_bytes + plan.totals.activation_bytes + sum(
        prod(s) * d.itemsize for s, d in zip(inputs.shapes, inputs.dtypes(torch_dtype)))
    if needed > 0.8 * _available_bytes(torch_device):
        gib = 2**30
        return _failed(base, f"batch {batch} does not fit: about {needed / gib:.1f} GiB needed, "
                             f"{_available_bytes(torch_device) / gib:.1f} GiB free on {torch_device}; use a smaller "
                             f"{option('batch')}")
    previous_threads = torch.get_num_threads()
    try:
        if options.threads and torch_device.type == "cpu":
            torch.set_num_threads(options.threads)
        model = build(entry, torch_device, torch_dtype)
        x = made_batch(inputs, torch_device, torch_dtype, options.channels_last, entry.name)
        if options.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if options.compile:
            model = torch.compile(model)
        if options.training:
            model.train()
            trainable = [p for p in model.parameters() if p.requires_grad]
            if not trainable:
                return _failed(base, f"{entry.name} has no trainable parameters: there is no training step to time")
            times = _timed_runs(training_step(model, x, optimizer_for(trainable, options.optimizer), options.amp),
                                torch_device, options, tick, grad=True)
        else:
            times = _timed_runs(forward_pass(model, x, options.amp), torch_device, options, tick)
    except ArchcalcError as error:
        return _failed(base, str(error))
    except Exception as error:  # the model or torch.compile failed on this device
        if out_of_memory(error):
            return _failed(base, f"batch {batch} does not fit in {torch_device} memory; use a smaller "
                                 f"{option('batch')}")
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return _failed(base, f"{entry.name} failed on {torch_device}: {with_hint(first)}")
    finally:
        torch.set_num_threads(previous_threads)
        if torch_device.type == "cuda":
            torch.cuda.empty_cache()
    return replace(base, times_ms=tuple(times))


def run_estimate(t: Timing, samples: int, epochs: int) -> tuple[float, str]:
    """(seconds, arithmetic) of a training run from the median step: ceil(samples / batch) steps an
    epoch (the last one partial, counted whole), times the epochs."""
    steps = -(-samples // t.batch)
    seconds = steps * epochs * t.median_ms / 1000
    return seconds, (f"{t.model}: ceil({samples:,} / {t.batch}) = {steps:,} steps an epoch x {epochs} epochs x "
                     f"{t.median_ms:.2f} ms = {seconds / 60:.1f} min ({seconds:,.0f} s)")


def _for_integer(device: torch.device, asked: str, integer: bool) -> torch.device:
    """A quantized network's int8 kernels (FBGEMM's, QNNPACK's) are the CPU's: auto times it there, CUDA is
    refused in one line."""
    if not integer or device.type == "cpu":
        return device
    if asked == "auto":
        return torch.device("cpu")
    raise InputError("a quantized network runs on the CPU only: its int8 kernels (FBGEMM's, QNNPACK's) have no CUDA "
                     "version; time it on the CPU")


def _failed(base: Timing, message: str) -> Timing:
    return replace(base, times_ms=(), error=message)


def measure_entries(entries: list[ModelEntry], size, batch: int, device: str, dtype: str,
                    options: Options = Options(), input_dtypes: Sequence[Any] | None = None) -> Timings:
    """Several models under one rich progress bar on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    results = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  transient=True, console=_stderr_console()) as progress:
        for entry in entries:
            task = progress.add_task(f"timing {entry.name}", total=options.repeat)
            results.append(measure(entry, size, batch, device, dtype, options,
                                   tick=lambda: progress.advance(task), input_dtypes=input_dtypes))
            progress.remove_task(task)
    return Timings(results, options)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
