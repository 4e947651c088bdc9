"""The peak of training, as a device's allocator counts it (CUDA's caching allocator, or the CPU's),
simulated on the meta device: every tensor the step makes is followed from the operation that allocates it
to the moment its storage is freed, so what is alive at the worst moment is known tensor by tensor.

  allocated   max over the steps of the sum of the live blocks (on CUDA torch.cuda.max_memory_allocated):
              each storage takes a block of its size rounded up to 512 bytes, the caching allocator's
              smallest (on the CPU, to the 64 bytes PyTorch aligns a storage to)
  terms       what is alive at that moment: the parameters (and buffers), the input, the gradients made so
              far, the optimizer's state, the activations autograd saved and has not yet released, and
              the gradients in flight with the other temporaries of the operation running then
  reserved    at least the live blocks packed into the allocator's segments: blocks of up to 1 MiB in 2 MiB
              segments, up to 10 MiB in 20 MiB ones, larger ones in their own, rounded up to 2 MiB
              (fragmentation adds to it: not modelled)

The step is the probe's (probe.py): forward, loss = the outputs' sum (batch.py), backward, optimizer.step(), with the
optimizer's implementation PyTorch picks on the device (foreach on CUDA); and it is simulated twice, with
zero_grad(set_to_none=True) between, as a training loop runs it. The first step makes the optimizer's state
(momentum buffers, Adam's moments) at its end; from the second on, that state is alive through the forward
and the backward: the steady state, whose peak is what a run needs (for Adam or momentum it is the larger).
Attention runs the fused kernel the device would (fused.py), not the meta device's math path, and
convolutions and GroupNorm give the device's memory layout (layout.py); with ``amp``
the forward and the loss run under autocast (autocast.py). Not modelled: the workspaces cuDNN and cuBLAS take
inside an operation (the simulation sees only the tensors the operations return), GradScaler's few scalars,
and cuDNN's fused RNN kernel (on CUDA recurrent layers are simulated as the meta device decomposes them; on
the CPU as the CPU runs them: oneDNN's LSTM with its workspace, onednn.py, the others native_rnn.py).
"""

from __future__ import annotations

import weakref
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, Sequence

import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks
from torch.nn.parameter import UninitializedTensorMixin
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from archcalc.analysis.diagnosis import refuses_saved_hooks, with_hint
from archcalc.analysis.engine import build, entry_inputs, make_lazy_parameters, out_of_memory, resolve_dtype
from archcalc.analysis.meta_autocast import meta_autocast
from archcalc.analysis.placement import CPU_INPUT, free_memory, refuses_meta, user_line
from archcalc.analysis.stand_ins import meta_fills, meta_refusal
from archcalc.analysis.storages import keys as storage_keys, storages
from archcalc.errors import ForwardError, InputError, option
from archcalc.formulas.numbers import human_bytes
from archcalc.models.registry import ModelEntry
from archcalc.training.autocast import DTYPES as AMP_DTYPES, autocast
from archcalc.analysis import draws
from archcalc.training.batch import Batch, loss_of, made as made_batch
from archcalc.training.layout import layouts
from archcalc.training.fused import fused_attention
from archcalc.training.native_rnn import cpu_recurrence
from archcalc.training.onednn import runs as runs_onednn
from archcalc.training.optimizers import check as check_optimizer, optimizer_for

BLOCK = 512  # the caching allocator's smallest block and its rounding (kMinBlockSize)
CPU_ALIGNMENT = 64  # PyTorch's CPU allocator aligns every storage to 64 bytes (c10 gAlignment)
SMALL, SMALL_SEGMENT = 2**20, 2 * 2**20  # blocks up to 1 MiB come from 2 MiB segments (kSmallSize, kSmallBuffer)
MEDIUM, MEDIUM_SEGMENT = 10 * 2**20, 20 * 2**20  # up to 10 MiB from 20 MiB segments (kMinLargeAlloc, kLargeBuffer)
LARGE_ROUND = 2 * 2**20  # larger ones: their own segment, rounded up to 2 MiB (kRoundLarge)
TERMS = ("parameters", "input", "gradients", "optimizer state", "autocast copies", "saved activations",
         "in flight")


def block(nbytes: int, device: str = "cuda") -> int:
    """The block the allocator gives a storage of ``nbytes``: on CUDA rounded up to a multiple of 512 bytes,
    on the CPU to 64."""
    unit = BLOCK if device == "cuda" else CPU_ALIGNMENT
    return unit * max(1, -(-nbytes // unit))


def reserved_at_least(blocks: Sequence[int]) -> int:
    """The live blocks packed into segments of the allocator's three kinds, with no fragmentation."""
    small = sum(b for b in blocks if b <= SMALL)
    medium = sum(b for b in blocks if SMALL < b < MEDIUM)
    large = sum(LARGE_ROUND * -(-b // LARGE_ROUND) for b in blocks if b >= MEDIUM)
    return (SMALL_SEGMENT * -(-small // SMALL_SEGMENT) + MEDIUM_SEGMENT * -(-medium // MEDIUM_SEGMENT) + large)


@dataclass(frozen=True)
class Term:
    name: str
    tensors: int
    bytes: int


@dataclass(frozen=True)
class Peak:
    model: str
    batch: int
    input_shape: tuple[int, ...]
    optimizer: str
    dtype: str
    allocated: int  # the predicted torch.cuda.max_memory_allocated over the two steps, model and input included
    reserved: int  # at least this much reserved at that moment
    phase: str  # forward, backward or optimizer step
    op: str  # the operation that had just allocated when the peak was reached
    terms: tuple[Term, ...]
    steps: tuple[int, int] = (0, 0)  # the peak of the first step, and of the second (the steady state)
    device: str = "cuda"  # whose allocator: cuda (512-byte blocks, foreach optimizers) or cpu
    amp: str | None = None  # the autocast dtype of the forward, if any
    notes: tuple[str, ...] = ()  # what the simulation knows it does not model for this network
    channels_last: bool = False
    inputs: str = ""  # every input, as Inputs.text() writes them: '8x3x32x32', '4x128 (int64), 4x128 (bool)'
    real: bool = False  # the steps ran on real CPU tensors (a forward that reads values), not on the meta device

    @property
    def at_step(self) -> int:
        """The step whose peak this is: 1, or 2 where the steady state is higher."""
        return 2 if self.steps[1] > self.steps[0] else 1

    @property
    def before(self) -> int:
        """What is allocated before the step: the parameters, buffers and input."""
        return sum(t.bytes for t in self.terms if t.name in ("parameters", "input"))

    @property
    def step(self) -> int:
        """What the step adds to it at its peak: what the probe measures (peak - allocated before)."""
        return self.allocated - self.before

    def arithmetic(self) -> str:
        parts = [t for t in self.terms if t.bytes]
        return " + ".join(f"{t.name} {t.bytes:,}" for t in parts) + f" = {self.allocated:,}"


class _Keys(set):
    """Storage keys (the saved activations, autocast's copies) that note, while a peak is pending, which were
    added after it (``since``)."""

    def __init__(self):
        super().__init__()
        self.since: set[int] | None = None  # None: no peak pending

    def add(self, key) -> None:
        if self.since is not None and key not in self:
            self.since.add(key)
        super().add(key)


class _Live(TorchDispatchMode):
    """Every storage an operation returns, alive until PyTorch frees it (a weak reference's callback: PyTorch
    keeps one Python object per storage); the blocks' sum after each operation, and at its peak, what each
    live block was (``kinds``, asked then: a freed storage's key can be another's later). The live blocks are
    sorted into terms once, when asked, from the peak's kinds and a journal of what changed after it (blocks
    made and freed, storages saved for backward or cast by autocast): a recurrent layer's forward tops its
    last peak at every step, and a pass over the live blocks each time made a long sequence's simulation
    quadratic in its length."""

    def __init__(self, kinds, device: str, counted: frozenset[str] = frozenset({"meta"})):
        super().__init__()
        self.device = device  # whose allocator: cuda or cpu (the blocks' rounding)
        self.counted = counted  # the device types whose tensors take that memory (a CUDA step's Adam counters
        # are CPU tensors: not the GPU's)
        self.kinds = kinds  # () -> {term: set of storage keys}, as things stand
        self.saved = _Keys()  # storages autograd holds for backward
        self.casts = _Keys()  # autocast's cached casts of the parameters, until freed
        self.blocks: dict[int, int] = {}
        self.refs: dict[int, weakref.ref] = {}
        self.total = self.peak = self.step_peak = 0
        self.phase = self.at_phase = "forward"
        self.op = ""
        self._at_peak: dict[str, list[int]] = {}
        self._pending: dict[str, set[int]] | None = None  # the peak's kinds, its terms not yet sorted
        self._made: set[int] = set()  # the journal since the pending peak: blocks made after it,
        self._freed: dict[int, tuple[int, bool, bool]] = {}  # and those it had that were freed: (size, saved, cast)

    def track(self, t: torch.Tensor) -> None:
        if t.device.type not in self.counted:
            return
        for storage in storages(t):
            key = storage._cdata
            if key not in self.blocks:
                self.blocks[key] = size = block(storage.nbytes(), self.device)
                self.refs[key] = weakref.ref(storage, partial(self._freed_block, key))
                self.total += size
                if self._pending is not None:
                    self._made.add(key)

    def _freed_block(self, key: int, _ref) -> None:
        size = self.blocks.pop(key, 0)
        self.total -= size
        self.refs.pop(key, None)
        if self._pending is not None:
            if key in self._made:  # (made after the peak: not in it)
                self._made.discard(key)
            elif key not in self._freed:
                self._freed[key] = (size, key in self.saved and key not in self.saved.since,
                                    key in self.casts and key not in self.casts.since)
        self.saved.discard(key)
        self.casts.discard(key)

    def note(self, op: str) -> None:
        self.step_peak = max(self.step_peak, self.total)
        if self.total <= self.peak:
            return
        self.peak, self.op, self.at_phase = self.total, op, self.phase
        self._pending = self.kinds()  # (the gradients and optimizer state as they are now, after this operation)
        self._made, self._freed, self.saved.since, self.casts.since = set(), {}, set(), set()

    def kept_for_backward(self, outputs: set[int]) -> None:
        """Where saved-tensor hooks cannot say what autograd saves (torch.func refuses them): the storages alive
        when the forward ends, but the outputs, the loss and those of the other terms, are what its graph keeps for
        the backward, saved since they were made (at a peak before now too)."""
        known = set().union(*self.kinds().values())
        set.update(self.saved, (key for key in self.blocks if key not in known and key not in outputs))

    @property
    def at_peak(self) -> dict[str, list[int]]:
        """Each term's live blocks at the peak: the live blocks now, without those made after it and with those
        freed after it, each of the kind it was then."""
        if self._pending is not None:
            freed = self._freed
            blocks = {k: size for k, size in self.blocks.items() if k not in self._made}
            blocks.update((k, size) for k, (size, _, _) in freed.items())
            kinds = self._pending | {
                "autocast copies": (self.casts - self.casts.since) | {k for k, e in freed.items() if e[2]},
                "saved activations": (self.saved - self.saved.since) | {k for k, e in freed.items() if e[1]}}
            terms: dict[str, list[int]] = {name: [] for name in TERMS}
            for key, size in blocks.items():
                terms[next((n for n, keys in kinds.items() if key in keys), "in flight")].append(size)
            self._at_peak, self._pending = terms, None
            self.saved.since = self.casts.since = None
        return self._at_peak

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for t in tree_leaves(args):  # one made outside any operation (indices from a Python list): from now
            if isinstance(t, torch.Tensor):
                self.track(t)
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.track(t)
        self.note(func.overloadpacket.__name__)
        return out


def made(tensors) -> list[torch.Tensor]:
    """The parameters or buffers that have a size: not a lazy layer's that never ran."""
    return [t for t in tensors if not isinstance(t, UninitializedTensorMixin)]


def _keys(tensors) -> set[int]:
    return {key for t in tensors if isinstance(t, torch.Tensor) for key in storage_keys(t)}


def _optimizer(parameters, name: str, device: str = "cuda") -> torch.optim.Optimizer:
    """The optimizer as PyTorch runs it on ``device``, its default there made explicit (the meta device's
    tensors would not choose CUDA's foreach)."""
    return optimizer_for(parameters, name, foreach=device == "cuda")


def tracker(model: nn.Module, batch: Batch, opt: torch.optim.Optimizer, device: str,
            counted: frozenset[str]) -> _Live:
    """A _Live for a training step of ``model`` on ``batch``, which knows each storage's term as things stand,
    with the parameters, buffers and inputs already counted."""
    params, buffers = made(model.parameters()), made(model.buffers())
    fixed, inputs = _keys(params) | _keys(buffers), batch.tensors()

    def kinds() -> dict[str, set[int]]:
        return {"parameters": fixed, "input": _keys(inputs), "gradients": _keys(p.grad for p in params),
                "optimizer state": _keys(v for state in opt.state.values() for v in state.values()),
                "autocast copies": live.casts}

    live = _Live(kinds, device, counted)
    for t in [*params, *buffers, *inputs]:
        live.track(t)
    live.note("(before the step)")
    return live


def follow(model: nn.Module, batch: Batch, opt: torch.optim.Optimizer, live: _Live | None, forward,
           around=None, name: str = "the model", hooks: bool = True) -> list[int]:
    """Two training steps as a training loop runs them (zero_grad(set_to_none=True), forward, loss = the
    trained outputs' float().sum() added up (batch.py), backward, step; the output and the loss dropped after),
    the forward and the loss
    inside ``forward()``; under ``live`` (None: untracked), whose peak of each step is returned. ``around``
    (a context manager factory, the probe's measurement) wraps each step."""
    steps = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        live.saved.update(storage_keys(t))
        return t

    def phase(name: str) -> None:
        if live is not None:
            live.phase = name

    saving = (lambda: saved_tensors_hooks(pack, lambda t: t)) if live is not None and hooks else nullcontext
    with live if live is not None else nullcontext():
        for _ in range(2):
            with around() if around else nullcontext():
                phase("forward")
                if live is not None:
                    live.step_peak = 0
                opt.zero_grad(set_to_none=True)
                with forward():
                    with saving():
                        out = batch.into(model)
                    loss = loss_of(out, "sum", name)
                if live is not None and not hooks:
                    live.kept_for_backward(_keys(tree_leaves(out)) | _keys([loss]))
                phase("backward")
                loss.backward()
                phase("optimizer step")
                opt.step()
                del out, loss
            steps.append(live.step_peak if live is not None else 0)
    return steps


def _refuse_recurrence(model: nn.Module, device: str, amp: str | None) -> None:
    """On CUDA, recurrent layers under autocast: cuDNN's RNN kernel casts its flat weights inside itself, which
    the simulation does not follow. (On the CPU the native layers and cells run here as there, and an LSTM that
    oneDNN runs in a low precision is refused where it is called: native_rnn.cpu_recurrence.)"""
    recurrent = sorted({type(m).__name__ for m in model.modules() if isinstance(m, (nn.RNNBase, nn.RNNCellBase))})
    if device != "cpu" and amp is not None and recurrent:
        raise InputError(f"autocast is not simulated for recurrent layers on {device} ({', '.join(recurrent)}): "
                         f"cuDNN's RNN kernel casts inside itself; drop {option('amp')}")


def _recurrent_notes(model: nn.Module, device: str) -> tuple[str, ...]:
    """What the simulation says of recurrent layers: on the CPU they run as the CPU runs them (onednn.py,
    native_rnn.py), but for the pages of oneDNN's workspace; on CUDA as the meta device decomposes them."""
    recurrent = [m for m in model.modules() if isinstance(m, (nn.RNNBase, nn.RNNCellBase))]
    if device == "cpu":
        if any(runs_onednn(m) for m in recurrent):
            return ("LSTM layers run by oneDNN: their workspace is counted in full, as allocated; the CPU touches "
                    "only part of it, so the resident set measures less (a 2-layer bidirectional LSTM, hidden "
                    "256: 0.76 of the simulated step)",)
        return ()
    names = sorted({type(m).__name__ for m in recurrent})
    return (f"recurrent layers ({', '.join(names)}) are simulated as the meta device decomposes them, not as "
            f"cuDNN's fused RNN kernel runs them (its reserve space for backward is not simulated)",) if names else ()


def meta_else_cpu(run, name: str, device: str, elements: int):
    """(run(meta), ()); where the forward reads a tensor's value, which the meta device cannot give (a packed
    sequence's indices, ``if x.mean() > 0``), (run(cpu), a note): the steps then run on the CPU with real
    tensors, followed tensor by tensor as on the meta device, which is the CPU's peak itself (its inputs
    random: a branch taken on their values is that input's). The CUDA peak has no such way without a GPU."""
    try:
        return run(torch.device("meta")), ()
    except ForwardError as failure:
        refused, values = meta_refusal(failure.__cause__), " (that needs the values on the meta device)"
        if refused:  # (a meta kernel that refuses what the CPU's runs: the CPU's steps are the answer too)
            reads, values = f"the forward pass of {name} {refused}", ""
        elif not refuses_meta(failure.__cause__):
            raise
        else:
            where = user_line(failure.__cause__)
            reads = f"{where + ': ' if where else ''}the forward pass of {name} reads a tensor's value, which the " \
                    f"meta device cannot give"
    if device != "cpu":
        raise InputError(f"{reads}, so its CUDA peak cannot be simulated{values}; its CPU peak can: "
                         f"{option('device', 'cpu')}")
    if elements > CPU_INPUT:
        raise InputError(f"{reads}, and its input of {elements:,} elements is too large to run its steps on the CPU "
                         f"here (at most {CPU_INPUT:,}): give a smaller {option('batch')} or {option('input')}")
    try:
        result = run(torch.device("cpu"))
    except ForwardError as failure:
        if out_of_memory(failure.__cause__ or failure):
            raise InputError(f"{reads}, and its steps ran out of memory on the CPU here: give a smaller "
                             f"{option('batch')}") \
                from None
        raise
    return result, (f"{reads}: its two steps ran on the CPU with real tensors (a random input), each followed as "
                    f"the simulation follows them",)


def alive_after_forward(model: nn.Module, batch: Batch, on: torch.device) -> list[int]:
    """The bytes of each storage the forward's operations made that is alive when it ends, but the output, the
    parameters, buffers and input (_Live.kept_for_backward): what autograd keeps for the backward, where saved-tensor
    hooks cannot say so (torch.func refuses them)."""
    fixed = _keys([*made(model.parameters()), *model.buffers(), *batch.tensors()])
    live = _Live(lambda: {"parameters": fixed}, "cpu", frozenset({on.type}))
    with live, meta_autocast() if on.type == "meta" else nullcontext():
        out = batch.into(model)
    live.kept_for_backward(_keys(tree_leaves(out)))
    return [live.refs[key]().nbytes() for key in live.saved]


WITHOUT_HOOKS = ("the forward runs torch.func's grad (or vjp, jacrev, hessian), which refuses the saved-tensor hooks "
                 "that tell what autograd saves for the backward: that is read as what is alive when the forward "
                 "ends (the other terms, the output and the loss left out); what an inner gradient's graph held and "
                 "freed within the forward counts in flight")


def terms_at_peak(live: _Live) -> tuple[Term, ...]:
    return tuple(Term(name, len(live.at_peak[name]), sum(live.at_peak[name])) for name in TERMS)


def simulate(entry: ModelEntry, size: Sequence[int] | None, batch: int, optimizer: str = "sgd",
             dtype: str = "float32", device: str = "cuda", amp: str | None = None,
             channels_last: bool = False, input_dtypes: Sequence[Any] | None = None) -> Peak:
    """The peak of two training steps on ``device`` (cuda or cpu), simulated on the meta device, the model
    given what engine.entry_inputs makes of ``size`` (one size without the batch, or several) and
    ``input_dtypes`` (int64 token ids, bool masks); with ``amp``
    (float16 or bfloat16), the forward and the loss under torch.autocast(device, amp), as the mixed-precision
    recipe runs them (the parameters, their gradients and the optimizer's state stay in ``dtype``); with
    ``channels_last``, the model and a 4-d input in torch.channels_last, as `archcalc time --channels-last`."""
    check_optimizer(optimizer)
    if amp is not None and amp not in AMP_DTYPES:
        raise InputError(f"unknown {option('amp', repr(amp))}; use float16 or bfloat16")
    if amp is not None and dtype != "float32":
        raise InputError(f"{option('amp', amp)} runs a float32 model's forward in {amp}; drop "
                         f"{option('dtype', dtype)}")
    torch_dtype = resolve_dtype(dtype)
    inputs = entry_inputs(entry, size, batch, input_dtypes)

    def steps_on(on: torch.device, hooks: bool = True):
        model = build(entry, on, torch_dtype).train()
        given = made_batch(inputs, on, torch_dtype, channels_last, entry.name)
        make_lazy_parameters(model, given.args, given.kwargs)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        _refuse_recurrence(model, device, amp)
        opt = _optimizer(made(model.parameters()), optimizer, device)
        live = tracker(model, given, opt, device, frozenset({"meta", "cpu"} if device == "cpu" else {"meta"}))

        def forward():  # the device's attention kernels; autocast's policy, its cached casts kept in live.casts
            stack = ExitStack()
            if on.type == "meta":  # (a model's torch.autocast("meta"); with amp, autocast's own follows it)
                stack.enter_context(meta_autocast())
                stack.enter_context(meta_fills())
            stack.enter_context(fused_attention(device))
            stack.enter_context(cpu_recurrence(device, amp))
            if amp:
                stack.enter_context(autocast(device, amp, live.casts))
            return stack

        try:
            with layouts(device), draws.every_layer_kept() as taken:  # (under the tracker, which follow opens)
                steps = follow(model, given, opt, live, forward, name=entry.name, hooks=hooks)
        except InputError:
            raise
        except Exception as error:
            if hooks and refuses_saved_hooks(str(error)):  # (torch.func's grad in the forward: follow it without)
                del model, given, opt, live
                live, steps, notes = steps_on(on, hooks=False)
                return live, steps, (WITHOUT_HOOKS, *notes)
            where = user_line(error)
            raise ForwardError(f"the simulated training step of {entry.name} failed{' at ' + where if where else ''}: "
                               f"{with_hint(str(error).splitlines()[0])}") from error
        return live, steps, _recurrent_notes(model, device) + draws.note(taken, len(steps))

    (live, steps, notes), ran = meta_else_cpu(steps_on, entry.name, device, inputs.elements())
    terms = terms_at_peak(live)
    reserved = reserved_at_least([b for blocks in live.at_peak.values() for b in blocks])
    batch_note = inputs.batch_note()
    return Peak(entry.name, inputs.batch, inputs.shapes[0] if inputs.shapes else (), optimizer, dtype, live.peak,
                reserved, live.at_phase, live.op, terms, tuple(steps), device, amp,
                ran + notes + ((batch_note,) if batch_note else ()), channels_last, inputs.text(), bool(ran))


class FitTotal:
    """total(batch) for fit.largest_batch: the simulated peak at that batch. Where the forward reads values, the
    steps of every batch tried run for real on this CPU (``real``), so a budget beyond the memory it has free is
    refused at the first batch, before a larger one could push the machine into swap."""

    def __init__(self, entry: ModelEntry, size, optimizer: str, dtype: str, device: str, amp: str | None,
                 channels_last: bool, input_dtypes, budget: int):
        self.step = partial(simulate, entry, size, optimizer=optimizer, dtype=dtype, device=device, amp=amp,
                            channels_last=channels_last, input_dtypes=input_dtypes)
        self.name, self.budget, self.real = entry.name, budget, False

    def __call__(self, batch: int) -> int:
        peak = self.step(batch=batch)
        self.real = peak.real
        free = free_memory()
        if peak.real and free is not None and self.budget > free:
            raise InputError(f"the forward pass of {self.name} reads a tensor's value, so each batch "
                             f"{option('fit')} tries runs for real on this CPU, and {human_bytes(self.budget)} is "
                             f"more than the {human_bytes(free)} it has free: give a {option('fit')} below that")
        return peak.allocated
