"""The largest batch whose predicted training step fits in a memory budget (`archcalc memory --fit`).

The prediction is memory.estimate's for one step at each batch tried: the CPU's sum of parts (parameters,
gradients, optimizer state, the activations autograd saves, the input, the gradients in flight), or for
cuda the simulated allocator's peak (peak.py); both on the meta device, so a batch of thousands costs no
memory. The total grows with the batch almost exactly
linearly (everything but the parameters, their gradients and the optimizer state is per sample): the
first guess extrapolates from batches 1 and 2, and the answer is then confirmed, and if need be
found by bisection, so that the batch fits and the next one up does not, by the estimate itself.

confirm() checks an answer by measurement (`--fit ... --measure cpu|cuda`): two real training steps at the
answered batch, each run in a fresh process, on CUDA with the allocator capped at the budget so that a step
over it runs out of memory as on a GPU of that size; then up or down from there, and bisection, until a batch
that fits sits beside one that does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from archcalc.errors import InputError
from archcalc.formulas.numbers import human_bytes

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
LARGEST = 2**24  # no batch beyond this is tried


def parse_budget(text: str) -> int:
    """Bytes from '16GiB', '16 GB', '512MiB', '1.5TiB' (binary units for KiB-TiB and K, M, G, T; decimal
    for kB-TB), or 'device' for the memory of the GPU present."""
    if text.strip().lower() == "device":
        import torch

        if not torch.cuda.is_available():
            raise InputError("--fit device needs a GPU, and this machine has none; give a size, e.g. --fit 16GiB")
        return torch.cuda.mem_get_info()[1]
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise InputError(f"--fit {text!r} is not a memory size; use e.g. 16GiB, 512MiB, 24GB or device")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1:
        raise InputError(f"--fit {text!r} is no memory at all; give a positive size")
    return size


@dataclass(frozen=True)
class Fit:
    model: str
    budget: int
    batch: int  # the largest batch that fits; 0 when not even one sample does
    tried: tuple[tuple[int, int], ...]  # (batch, predicted bytes), in the order tried

    def predicted(self, batch: int) -> int | None:
        return next((b for n, b in self.tried if n == batch), None)

    def text(self) -> str:
        if self.batch == 0:
            one = self.predicted(1)
            return (f"not even batch 1 fits in {human_bytes(self.budget)}: one step is predicted at "
                    f"{human_bytes(one)} ({one:,} bytes)")
        peak, above = self.predicted(self.batch), self.predicted(self.batch + 1)
        line = (f"largest batch that fits in {human_bytes(self.budget)}: {self.batch:,}, predicted peak "
                f"{human_bytes(peak)} ({peak:,} bytes), margin {human_bytes(self.budget - peak)}")
        if above is not None:
            line += (f"; batch {self.batch + 1:,} is predicted at {human_bytes(above)}, over by "
                     f"{above - self.budget:,} bytes")
        return line


def largest_batch(model: str, total: Callable[[int], int], budget: int) -> Fit:
    """The largest batch b with total(b) <= budget (total: the predicted bytes of a step at batch b)."""
    tried: dict[int, int] = {}

    def at(batch: int) -> int:
        if batch not in tried:
            tried[batch] = total(batch)
        return tried[batch]

    if at(1) > budget:
        return Fit(model, budget, 0, tuple(tried.items()))
    slope = at(2) - at(1)
    guess = 1 + (budget - at(1)) // slope if slope > 0 else 2
    low, high = 1, None  # total(low) fits; total(high) does not
    guess = max(1, min(guess, LARGEST))
    if at(guess) <= budget:
        low = guess
        step = 1
        while high is None and low < LARGEST:  # up from the guess: usually the next batch is already over
            probe = min(low + step, LARGEST)
            if at(probe) <= budget:
                low, step = probe, step * 2
            else:
                high = probe
    else:
        high = guess
    while high is not None and high - low > 1:
        middle = (low + high) // 2
        if at(middle) <= budget:
            low = middle
        else:
            high = middle
    if high is not None:
        at(low + 1)  # the one above, for the margin line (already known when high == low + 1)
    return Fit(model, budget, low, tuple(tried.items()))


@dataclass(frozen=True)
class Run:
    """Two real training steps at one batch: the bytes they needed at their peak (what was allocated before
    them, the model and the input, plus the steps' own peak), or None where they ran out of memory."""
    batch: int
    total: int | None
    note: str = ""

    def fits(self, budget: int) -> bool:
        return self.total is not None and self.total <= budget

    def text(self, budget: int) -> str:
        if self.total is None:
            return f"batch {self.batch:,} {self.note or 'ran out of memory'}"
        return (f"batch {self.batch:,} needed {human_bytes(self.total)} "
                f"({'fits' if self.fits(budget) else 'over by ' + format(self.total - budget, ',') + ' bytes'})")


@dataclass(frozen=True)
class Confirmation:
    budget: int
    predicted: int  # the batch the prediction answered
    batch: int  # the largest batch measured to fit (0: not even one)
    runs: tuple[Run, ...]  # in the order run

    def text(self) -> str:
        runs = {r.batch: r for r in self.runs}
        said = "; ".join(runs[b].text(self.budget) for b in sorted(runs))
        if self.batch == self.predicted:
            verdict = f"the prediction is confirmed: {self.batch:,} fits and {self.batch + 1:,} does not"
        elif self.batch > self.predicted:
            verdict = (f"the prediction is conservative by {self.batch - self.predicted:,} "
                       f"({(self.batch - self.predicted) / max(1, self.predicted):.1%}): {self.batch:,} fits")
        elif self.batch == 0:
            verdict = "the prediction is optimistic: not even batch 1 fits"
        else:
            verdict = (f"the prediction is optimistic by {self.predicted - self.batch:,}: the largest batch that "
                       f"fits is {self.batch:,}")
        return f"measured: {said}; {verdict}"


def confirm(run: Callable[[int], Run], budget: int, predicted: int) -> Confirmation:
    """The largest batch that runs within the budget, found by running from the predicted one: up while the
    next fits (doubling the step), down while it does not, then bisection between the last that fits and the
    first that does not; so the answer is a batch measured to fit beside the one above measured not to."""
    runs: dict[int, Run] = {}

    def fits(batch: int) -> bool:
        if batch not in runs:
            runs[batch] = run(batch)
        return runs[batch].fits(budget)

    low, high, step = 0, None, 1  # fits(low) (0: nothing yet); not fits(high)
    start = max(1, predicted)
    if fits(start):
        low = start
        while high is None and low < LARGEST:
            if fits(min(low + step, LARGEST)):
                low, step = min(low + step, LARGEST), step * 2
            else:
                high = min(low + step, LARGEST)
    else:
        high = start
        while low == 0 and high > 1:
            below = max(1, high - step)
            if fits(below):
                low = below
            else:
                high, step = below, step * 2
    while high is not None and high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return Confirmation(budget, predicted, low, tuple(runs.values()))
