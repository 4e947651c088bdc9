"""Estimate the memory of one training step, layer by layer, on the meta device.

  parameters   sum of numel * bytes per element
  gradients    one per trainable parameter element
  optimizer    its state for each trainable parameter (training/optimizers.py): sgd none; momentum and
               nesterov a buffer per element; adam and adamw two (exp_avg, exp_avg_sq), rmsprop and adagrad one,
               each with a 4-byte step counter per parameter tensor
  activations  every tensor autograd saves for backward during the forward pass, as autograd
               itself reports it (torch.autograd.graph.saved_tensors_hooks), each storage counted
               once and put on the row of the layer or functional operation that saved it, as the
               other views name them (relu, relu (2), layer1.0.add); parameters excluded
  input        the input batch, which stays alive for the step
  backward     the gradients flowing through the largest layer while backward runs: 2 x the largest
               saved activation (the gradient arriving and the one leaving); an approximation

That sum takes every part as alive at once, with each part's arithmetic: an upper bound where the backward keeps
no more in flight than the two gradients of its largest saved activation (the report says when it is below the
peak). The prediction is the peak of two training steps simulated tensor by tensor on the meta device
(training/peak.py), as the device's allocator counts it: ``device="cpu"`` (64-byte alignment, the optimizer's loop
over tensors) or ``"cuda"`` (the caching allocator's 512-byte blocks, foreach optimizers); with ``amp``, the forward
under autocast.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks

from archcalc.analysis.counting import op_name
from archcalc.analysis.diagnosis import refuses_saved_hooks, unbatched_input, with_hint
from archcalc.analysis.engine import build, entry_inputs, make_lazy_parameters, resolve_dtype
from archcalc.analysis.meta_autocast import meta_autocast
from archcalc.analysis.storages import keys as storage_keys, nbytes as storage_nbytes
from archcalc.analysis.tracer import Tracer
from archcalc.errors import COMMAND_LINE, ForwardError, InputError, option
from archcalc.models.registry import ModelEntry
from archcalc.shown import Shown
from archcalc.training.batch import Batch, input_arithmetic, input_bytes, made as made_batch
from archcalc.training.optimizers import check as check_optimizer, state_bytes
from archcalc.training.peak import alive_after_forward, made, meta_else_cpu, simulate


@dataclass(frozen=True)
class LayerMemory:
    name: str
    type: str
    saved_tensors: int
    saved_bytes: int


@dataclass(frozen=True)
class MemoryEstimate(Shown):
    model: str
    batch: int
    input_shape: tuple[int, ...]
    optimizer: str
    dtype: str
    params_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    input_bytes: int
    backward_bytes: int
    layers: tuple[LayerMemory, ...]
    arithmetic: dict
    device: str = "cpu"  # whose allocator the peak is simulated for: cpu or cuda
    peak: object = None  # training.peak.Peak: the prediction

    @property
    def total_bytes(self) -> int:
        return (self.params_bytes + self.grads_bytes + self.optimizer_bytes + self.activations_bytes
                + self.input_bytes + self.backward_bytes)

    @property
    def predicted_bytes(self) -> int:
        """The peak of a training step on the device, model and input included: the simulated one."""
        return self.peak.allocated

    @property
    def predicted_step_bytes(self) -> int:
        """What the step adds to the model and input at its peak: what --measure measures."""
        return self.peak.step

    def report(self):
        """The Report `archcalc memory` renders (a notebook, rich.print and show() show it: archcalc/shown.py)."""
        from archcalc.output.memory_report import memory_report

        return memory_report(self)


class _SavingTracer(Tracer):
    """The analysis' tracer, which also knows the operation being run, so that each tensor saved for
    backward is put on the row every other view shows: the counted layer that saved it, or the
    functional operation (F.relu, torch.cat, ``x + identity``) of a module's own forward, a row per call
    (relu, relu (2), ...)."""

    counts_autograd = False  # (a torch.autograd.grad in the forward runs, its saved tensors labelled as its)

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.running = None  # the torch function being run, outside counted layers

    def __torch_function__(self, func, types, args=(), kwargs=None):
        outer, self.running = self.running, func
        try:
            return super().__torch_function__(func, types, args, kwargs)
        finally:
            self.running = outer

    def row(self) -> tuple[str, str]:
        """(row label, type) of what is running now."""
        if self.layer is not None:  # a counted layer's own work: the mode stands aside inside it
            frame = self.layer
            return _label(frame.name, frame.call), type(frame.module).__name__
        parent = self.current
        if parent is None:
            return "(model)", ""
        if self.running is None:
            return _label(parent.name or type(parent.module).__name__, parent.call), type(parent.module).__name__
        name = op_name(self.running)
        qualified = f"{parent.name}.{name}" if parent.name else name
        return _label(qualified, self.op_calls[qualified] + 1), name  # counted once it returns


class _KeptRecorder:
    """Where the forward runs torch.func's grad, which refuses saved-tensor hooks: what autograd keeps for the
    backward, read as the storages the forward's operations made that are alive when it ends (the output, the
    parameters, buffers and input left out), on one row, the layers that saved them not told apart."""

    ROW = "(the forward, through torch.func: by layer not told)"

    def __init__(self, model: nn.Module, batch: Batch, on: torch.device):
        sizes = alive_after_forward(model, batch, on)
        self.layers = OrderedDict({self.ROW: ["", len(sizes), sum(sizes)]})
        self.largest = max(sizes, default=0)


def _label(name: str, call: int) -> str:
    return name if call == 1 else f"{name} ({call})"


class _SavedRecorder:
    def __init__(self, model: nn.Module, tracer: _SavingTracer, batch: Batch):
        self.tracer = tracer
        self.param_storages = {key for p in made(model.parameters()) for key in storage_keys(p)}
        self.input_storages = {key for t in batch.tensors() for key in storage_keys(t)}
        self.seen: set[int] = set()
        self.keep: list[torch.Tensor] = []  # holds saved tensors so storage ids cannot be reused
        self.layers: OrderedDict[str, list] = OrderedDict()
        self.largest = 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = storage_keys(t)[0]  # (a sparse tensor's first: its indices)
        if storage in self.param_storages or storage in self.seen or storage in self.input_storages:
            return t
        self.seen.add(storage)
        self.keep.append(t)
        name, type_name = self.tracer.row()
        entry = self.layers.setdefault(name, [type_name, 0, 0])
        entry[1] += 1
        size = storage_nbytes(t)
        entry[2] += size
        self.largest = max(self.largest, size)
        return t


def device_kind(device: str) -> str:
    """cpu or cuda, the two memory models; anything else is one line naming them."""
    kind = device.split(":", 1)[0]
    if kind not in ("cpu", "cuda"):
        raise InputError(f"unknown {option('device', repr(device))} for memory; use cpu or cuda (a GPU need not be "
                         f"present: the CUDA peak is simulated on the meta device)")
    return kind


def estimate(entry: ModelEntry, size: Sequence[int] | None, batch: int, optimizer: str = "sgd",
             dtype: str = "float32", device: str = "cpu", amp: str | None = None,
             channels_last: bool = False, input_dtypes: Sequence[Any] | None = None) -> MemoryEstimate:
    """The parts of one training step and its simulated peak (peak.simulate), the model given what
    engine.entry_inputs makes of ``size`` (one size without the batch, or several) and ``input_dtypes``."""
    check_optimizer(optimizer)
    kind = device_kind(device)
    torch_dtype = resolve_dtype(dtype)
    inputs = entry_inputs(entry, size, batch, input_dtypes)
    model_input = inputs.shapes[0] if inputs.shapes else ()

    def forward_on(on: torch.device):
        model = build(entry, on, torch_dtype).train()
        given = made_batch(inputs, on, torch_dtype)
        make_lazy_parameters(model, given.args, given.kwargs)
        tracer = _SavingTracer(model)
        recorder = _SavedRecorder(model, tracer, given)
        try:
            with saved_tensors_hooks(recorder.pack, lambda t: t), \
                    meta_autocast() if on.type == "meta" else nullcontext(), tracer:
                given.into(model)
        except Exception as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            if refuses_saved_hooks(first):  # (torch.func's grad in the forward: what it leaves alive, unlabelled)
                del recorder, tracer
                return model, given, _KeptRecorder(model, given, on)
            alone = unbatched_input(tracer.ordered(), model_input)  # (the mistake the failure follows from)
            raise ForwardError(f"training forward pass of {entry.name} failed: {alone or with_hint(first)}") \
                from error
        alone = unbatched_input(tracer.ordered(), model_input)
        if alone:  # (a step of one sample, read as the batch's: every part of it would be the batch's)
            raise InputError(alone)
        return model, given, recorder

    (model, given, recorder), _ = meta_else_cpu(forward_on, entry.name, kind, inputs.elements())
    params = list(made(model.parameters()))  # a lazy layer that never ran has no size yet
    params_bytes = sum(p.numel() * p.element_size() for p in params)
    grads_bytes = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    optimizer_bytes, optimizer_text = state_bytes([p for p in params if p.requires_grad], optimizer)
    layers = tuple(LayerMemory(name, t, n, b) for name, (t, n, b) in recorder.layers.items())
    activations = sum(layer.saved_bytes for layer in layers)
    itemsize = torch_dtype.itemsize
    arithmetic = {
        "params": f"{sum(p.numel() for p in params):,} elements * {itemsize} bytes = {params_bytes:,}",
        "grads": f"{sum(p.numel() for p in params if p.requires_grad):,} trainable elements * {itemsize} bytes = "
                 f"{grads_bytes:,}",
        "optimizer": optimizer_text,
        "activations": f"{sum(layer.saved_tensors for layer in layers)} tensors saved for backward = {activations:,}",
        "input": input_arithmetic(given),
        "backward": f"2 * largest saved activation {recorder.largest:,} = {2 * recorder.largest:,}",
    }
    peak = simulate(entry, size, batch, optimizer, dtype, kind, amp, channels_last, input_dtypes)
    return MemoryEstimate(entry.name, inputs.batch, peak.input_shape, optimizer, dtype, params_bytes, grads_bytes,
                          optimizer_bytes, activations, input_bytes(given), 2 * recorder.largest, layers, arithmetic,
                          kind, peak)


def measurable(device: str) -> str:
    """cpu or cuda, where a real step can run here; anything else is one line saying what to type."""
    kind = device.split(":", 1)[0]
    if kind not in ("cpu", "cuda"):
        raise InputError(f"unknown {option('measure', repr(device))}; use cpu or cuda")
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError(f"CUDA is not available on this machine; use {option('measure', 'cpu')}")
    return kind


def measure_peak(entry: ModelEntry, size: Sequence[int] | None, batch: int, optimizer: str, dtype: str,
                 device: str, limit: int | None = None, amp: str | None = None,
                 channels_last: bool = False, input_dtypes: Sequence[Any] | None = None) -> dict:
    """The peak memory of two real training steps, measured in a fresh process (see probe.py); with ``limit``
    (bytes, CUDA), on a GPU capped at that size, where running out of memory is an answer ({"oom": True})."""
    import json
    import os
    import pickle
    import subprocess
    import sys

    from archcalc.training.probe import Request

    measurable(device)
    if entry.module is not None:
        raise InputError(f"measuring runs two real steps in a fresh process, which builds the model itself: give "
                         f"{entry.name} as a registered name or path/to/net.py:{entry.name}, not a module object")
    request = Request(entry, size, batch, optimizer, dtype, device, limit, amp, channels_last, False, input_dtypes,
                      COMMAND_LINE.get())
    command = [sys.executable, "-m", "archcalc.training.probe", "-"]
    # glibc's mmap threshold fixed at its initial 128 KiB: a freed tensor's pages go back to the system at once.
    # By default glibc raises the threshold after each large free, and later tensors come from its heap, which
    # keeps freed memory resident: on CPU the second step would then measure up to 45 MiB more (cnnet, 256).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    done = subprocess.run(command, input=pickle.dumps(request), capture_output=True, timeout=600, env=env)
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or [f"exit {done.returncode}, no output"])[-1]
        raise InputError(f"the measured training step failed: {last}")
    return json.loads(done.stdout)


def measured_run(entry: ModelEntry, size: Sequence[int] | None, batch: int, optimizer: str, dtype: str,
                 device: str, budget: int, amp: str | None = None, channels_last: bool = False,
                 input_dtypes: Sequence[Any] | None = None):
    """fit.Run at one batch: two real steps, on CUDA within an allocator capped at the budget."""
    from archcalc.training.fit import Run

    cuda = device.startswith("cuda")
    got = measure_peak(entry, size, batch, optimizer, dtype, device, budget if cuda else None, amp, channels_last,
                       input_dtypes)
    if got.get("oom"):
        return Run(batch, None, f"ran out of memory within the cap ({got['message']})")
    return Run(batch, got["before_bytes"] + got["peak_bytes"])


def largest_fitting(entry: ModelEntry, size: Sequence[int] | None, budget: int, optimizer: str = "sgd",
                    dtype: str = "float32", device: str = "cpu", amp: str | None = None,
                    channels_last: bool = False, input_dtypes: Sequence[Any] | None = None,
                    measure: str | None = None):
    """fit.Fit: the largest batch whose simulated step (peak.FitTotal) fits in ``budget`` bytes, with the
    setting it was found for and, with ``measure`` (cpu or cuda), its confirmation by real steps
    (fit.confirm)."""
    from dataclasses import replace

    from archcalc.training.fit import Setting, confirm, largest_batch
    from archcalc.training.peak import FitTotal

    setting = Setting(optimizer, dtype, entry_inputs(entry, size, 1, input_dtypes).text(batch=False), device, amp,
                      channels_last)
    answer = largest_batch(entry.name, FitTotal(entry, size, optimizer, dtype, device, amp, channels_last,
                                                input_dtypes, budget), budget)
    confirmed = confirm(lambda b: measured_run(entry, size, b, optimizer, dtype, measure, budget, amp, channels_last,
                                               input_dtypes), budget, answer.batch, answer.slope) if measure else None
    return replace(answer, setting=setting, confirmed=confirmed)
