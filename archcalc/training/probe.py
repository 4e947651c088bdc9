"""Measure the peak memory of one real training step, in a fresh process (LayerDrop keeping every layer, as
the simulation does: draws.py).

    python -m archcalc.training.probe MODEL BATCH OPTIMIZER DTYPE DEVICE [CxHxW] [--limit BYTES] [--amp DTYPE]
        [--channels-last] [--tensors]
    python -m archcalc.training.probe - < REQUEST      (archcalc's own call: a pickled Request on stdin)

The second form is how archcalc memory --measure runs it (memory.measure_peak): the entry as the command
built it (its --arg values included), and its inputs (several, token ids, masks: engine.entry_inputs).

Prints one JSON object: {"peak_bytes", "steps", "method"}. Two steps are run as a training loop runs them
(zero_grad(set_to_none=True), forward, loss, backward, optimizer step; the output and loss then dropped):
the first makes the optimizer's state, the second is the steady state. "steps" holds each step's peak
beyond what was allocated before the first (the model and the input), "peak_bytes" the larger. On CUDA the
peak is torch.cuda.max_memory_allocated over the step. On CPU it is the growth of the process's peak
resident set size: its VmHWM, reset just before each step through /proc/self/clear_refs (getrusage's
ru_maxrss would carry over the peak of the parent the probe was forked from). "before_bytes" is what was
allocated before the first step: on CUDA the allocator's count, on CPU the model's and the input's bytes (the
process's own resident set, its libraries included, is not the model's).

--limit BYTES (CUDA) caps the caching allocator at that much of the GPU
(torch.cuda.set_per_process_memory_fraction), as on a GPU of that size; a step that runs out of memory then
prints {"oom": true, "message"} instead of a peak. On the CPU "held_bytes" is what the first step left
resident that no tensor holds (at the second step's start: the resident set less what it was before the
first step, the gradients and the optimizer's state): the math libraries' memory made at the first use of
these shapes (oneDNN's primitive cache, MKL's buffers). --amp float16|bfloat16 runs the forward and the loss under
torch.autocast(DEVICE, DTYPE), backward and step outside it (GradScaler's few scalars are left out);
--channels-last puts the model and the input in torch.channels_last. On CUDA (and on the CPU with --tensors)
the steps are also followed tensor by tensor with the simulation's tracker (peak.py): "tensors" says the
real tensors' peak and its terms, so that what the allocator holds beyond them (a workspace inside an
operation) is the difference.
"""

from __future__ import annotations

import ctypes
import gc
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
import json
import pickle
import resource
import sys
from typing import Any

import torch
from torch.autograd.graph import saved_tensors_hooks

from archcalc.analysis.diagnosis import refuses_saved_hooks
from archcalc.analysis.engine import build, entry_inputs, resolve_dtype
from archcalc.analysis.storages import storages
from archcalc.errors import COMMAND_LINE
from archcalc.models.registry import ModelEntry
from archcalc.models.user import lookup
from archcalc.training.batch import loss_of, made as made_batch
from archcalc.analysis.draws import every_layer_kept
from archcalc.training.optimizers import check as check_optimizer, optimizer_for
from archcalc.training.peak import follow, terms_at_peak, tracker


@dataclass(frozen=True)
class Request:
    """One measurement: the entry, its inputs (engine.entry_inputs's size, batch and dtypes) and the step."""

    entry: ModelEntry
    size: Any
    batch: int
    optimizer: str
    dtype: str
    device: str
    limit: int | None = None  # CUDA: the allocator capped at this many bytes
    amp: str | None = None
    channels_last: bool = False
    tensors: bool = False  # follow the real tensors too (always on CUDA)
    input_dtypes: Any = None
    command_line: bool = False  # errors.COMMAND_LINE of the caller: the errors name options as it gave them


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    """The process's own high-water mark (VmHWM). Unlike getrusage's ru_maxrss, which a child
    inherits from the parent it was forked from, it starts afresh with the process."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> None:
    """Lower the high-water mark to the current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def _kept_bytes(model, opt) -> int:
    """The bytes of the tensors one step leaves for the next: the gradients and the optimizer's state."""
    kept = [p.grad for p in model.parameters() if p.grad is not None]
    kept += [t for state in opt.state.values() for t in state.values() if isinstance(t, torch.Tensor)]
    return sum({s._cdata: s.nbytes() for t in kept for s in storages(t)}.values())


def _step(model, make_optimizer, batch, amp=None) -> None:
    opt = make_optimizer(model.parameters())
    with torch.autocast(batch.device.type, dtype=amp or torch.float16, enabled=amp is not None):
        loss = loss_of(batch.into(model))
    loss.backward()
    opt.step()


def main(argv: list[str]) -> None:
    request = pickle.load(sys.stdin.buffer) if argv == ["-"] else _from_words(argv)
    COMMAND_LINE.set(request.command_line)
    torch_device = torch.device(request.device)
    if request.limit is not None and torch_device.type == "cuda":
        total = torch.cuda.get_device_properties(torch_device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, request.limit / total), torch_device)
    try:
        print(json.dumps(_measure(request)))
    except torch.OutOfMemoryError as error:
        print(json.dumps({"oom": True, "message": str(error).strip().splitlines()[0]}))


def _from_words(argv: list[str]) -> Request:
    """The Request of the command line's first form."""
    options = {}
    for flag in ("--limit", "--amp"):
        if flag in argv:
            at = argv.index(flag)
            options[flag], argv = argv[at + 1], argv[:at] + argv[at + 2:]
    channels_last, tensors = "--channels-last" in argv, "--tensors" in argv
    argv = [a for a in argv if a not in ("--channels-last", "--tensors")]
    name, batch, optimizer, dtype, device = argv[:5]
    size = tuple(int(s) for s in argv[5].split("x")) if len(argv) > 5 else None
    limit = int(options["--limit"]) if "--limit" in options else None
    return Request(lookup(name, size), size, int(batch), optimizer, dtype, device, limit, options.get("--amp"),
                   channels_last, tensors, command_line=True)


def _measure(request: Request) -> dict:
    entry, size, batch, channels_last = request.entry, request.size, request.batch, request.channels_last
    torch_device, torch_dtype = torch.device(request.device), resolve_dtype(request.dtype)
    amp = getattr(torch, request.amp) if request.amp else None
    make_optimizer = partial(optimizer_for, name=check_optimizer(request.optimizer))  # PyTorch's own implementation

    def inputs(n: int):
        return made_batch(entry_inputs(entry, size, n, request.input_dtypes), torch_device, torch_dtype,
                          channels_last, entry.name)

    # A one-sample step on a throw-away copy loads the backward kernels' code and workspaces, which
    # would otherwise be counted; the measured model then allocates its own gradients and state.
    layout = torch.channels_last if channels_last else torch.contiguous_format
    hooks = True  # (and whether the forward takes the saved-tensor hooks the tracker follows: torch.func refuses them)
    try:
        with saved_tensors_hooks(lambda t: t, lambda t: t):
            _step(build(entry, torch_device, torch_dtype).train().to(memory_format=layout), make_optimizer, inputs(1),
                  amp)
    except Exception as error:
        if not refuses_saved_hooks(str(error)):
            raise
        hooks = False
        _step(build(entry, torch_device, torch_dtype).train().to(memory_format=layout), make_optimizer, inputs(1), amp)
    gc.collect()
    if torch_device.type == "cpu":  # hand the copy's freed memory back, so the step cannot hide in it
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    model = build(entry, torch_device, torch_dtype).train().to(memory_format=layout)
    x = inputs(batch)
    opt = make_optimizer(model.parameters())
    if torch_device.type == "cuda":
        torch.cuda.synchronize()
        before = allocated = torch.cuda.memory_allocated()
    else:
        before = _rss_bytes()
        allocated = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers(), *x.tensors()])
    cuda = torch_device.type == "cuda"
    steps = []

    held = []

    @contextmanager
    def measured():  # one step: the first makes the optimizer's state; the second is the steady state
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            if steps:  # what the first step left resident that no tensor holds
                held.append(_rss_bytes() - before - _kept_bytes(model, opt))
            _reset_peak()
        yield
        if cuda:
            torch.cuda.synchronize()
            steps.append(torch.cuda.max_memory_allocated() - before)
        else:
            steps.append(_peak_rss_bytes() - before)

    # the tensors too, on CUDA (on the CPU only when asked: the tracker's own objects are resident memory)
    live = tracker(model, x, opt, torch_device.type, frozenset({torch_device.type})) if cuda or request.tensors \
        else None
    with every_layer_kept():  # (the step the simulation predicts: LayerDrop keeps every layer)
        follow(model, x, opt, live, lambda: torch.autocast(torch_device.type, dtype=amp or torch.float16,
                                                          enabled=amp is not None), measured, entry.name, hooks)
    peak = max(steps)
    method = ("torch.cuda.max_memory_allocated - allocated before" if cuda
              else "peak RSS (VmHWM, reset before each step) - RSS before the first")
    result = {"peak_bytes": peak, "steps": steps, "before_bytes": allocated, "method": method}
    if held:
        result["held_bytes"] = max(0, held[0])
    if live is not None:
        result["tensors"] = {"peak_bytes": live.peak, "phase": live.at_phase, "op": live.op,
                             "terms": {t.name: t.bytes for t in terms_at_peak(live)}}
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
