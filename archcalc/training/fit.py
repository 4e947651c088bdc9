"""The largest batch whose predicted training step fits in a memory budget (`archcalc memory --fit`).

The prediction at each batch tried is the simulated peak of two training steps for the device's allocator
(peak.py: the CPU's or CUDA's), on the meta device, so that a batch of thousands costs no memory. It grows
with the batch almost exactly linearly (everything but the parameters, their gradients and the optimizer
state is per sample): the first guess extrapolates from batches 1 and 2, and the answer is then found
between a batch that fits and one that does not by interpolation (a bisection after any step that does not
halve the gap), so that the batch fits and the next one up does not, by the prediction itself: five
simulations for ResNet-50 in 8 GiB, where bisection took ten.

confirm() checks an answer by measurement (`--fit ... --measure cpu|cuda`): two real training steps at the
answered batch, each run in a fresh process, on CUDA with the allocator capped at the budget so that a step
over it runs out of memory as on a GPU of that size; then up or down from there, and bisection, until a batch
that fits sits beside one that does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from archcalc.errors import InputError, option
from archcalc.formulas.numbers import human_bytes
from archcalc.shown import Shown

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
LARGEST = 2**24  # no batch beyond this is tried


def parse_budget(text: str) -> int:
    """Bytes from '16GiB', '16 GB', '512MiB', '1.5TiB' (binary units for KiB-TiB and K, M, G, T; decimal
    for kB-TB), or 'device' for the memory the GPU present has free: its total less what the CUDA context (made
    by asking) and other processes hold, which the caching allocator can never have."""
    if text.strip().lower() == "device":
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"{option('fit', 'device')} needs a GPU, and this machine has none; give a size, e.g. "
                             f"{option('fit', '16GiB')}")
        return torch.cuda.mem_get_info()[0]
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise InputError(f"{option('fit', repr(text))} is not a memory size; use e.g. 16GiB, 512MiB, 24GB or device")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1:
        raise InputError(f"{option('fit', repr(text))} is no memory at all; give a positive size")
    return size


@dataclass(frozen=True)
class Setting:
    """The training step a fit was found for, as its report words it."""
    optimizer: str
    dtype: str
    per_sample: str  # one sample's input (Inputs.text(batch=False)): '3x32x32', '128 (int64)'
    device: str = "cpu"  # whose allocator: cpu or cuda
    amp: str | None = None
    channels_last: bool = False

    def text(self) -> str:
        words = f"{self.optimizer} training steps, {self.dtype}"
        if self.amp:
            words += f", the forward and the loss under torch.autocast({self.device!r}, {self.amp})"
        if self.channels_last:
            words += ", channels-last"
        return f"{words}, input {self.per_sample} per sample"


@dataclass(frozen=True)
class Fit(Shown):
    """The answer of ``archcalc memory --fit`` (and ``archcalc.memory(..., fit=...)``): it shows as that
    command's table in a notebook, in rich.print and with .show()."""
    model: str
    budget: int
    batch: int  # the largest batch that fits; 0 when not even one sample does
    tried: tuple[tuple[int, int], ...]  # (batch, predicted bytes), in the order tried
    real: bool = False  # each batch's steps ran on real CPU tensors (a forward that reads values), not simulated
    setting: Setting | None = None  # what was simulated at each batch (None: a bare search, as in the tests)
    confirmed: Confirmation | None = None  # with --measure: the batches run for real

    def report(self):
        from archcalc.output.fit_report import fit_report

        return fit_report(self)

    def predicted(self, batch: int) -> int | None:
        return next((b for n, b in self.tried if n == batch), None)

    @property
    def slope(self) -> int | None:
        """The predicted bytes one more sample adds at the answer (for confirm()), where both are known."""
        at, above = self.predicted(self.batch), self.predicted(self.batch + 1)
        return None if at is None or above is None or above <= at else above - at

    def text(self) -> str:
        if self.batch == 0:
            one = self.predicted(1)
            return (f"not even batch 1 fits in {human_bytes(self.budget)}: one step is predicted at "
                    f"{human_bytes(one)} ({one:,} bytes)")
        peak, above = self.predicted(self.batch), self.predicted(self.batch + 1)
        if self.batch >= LARGEST:  # the search's limit, not the answer
            return (f"every batch up to {LARGEST:,} (the most archcalc tries) fits in {human_bytes(self.budget)}: "
                    f"batch {self.batch:,} is predicted at {human_bytes(peak)} ({peak:,} bytes), margin "
                    f"{human_bytes(self.budget - peak)}")
        line = (f"largest batch that fits in {human_bytes(self.budget)}: {self.batch:,}, predicted peak "
                f"{human_bytes(peak)} ({peak:,} bytes), margin {human_bytes(self.budget - peak)}")
        if above is not None:
            line += (f"; batch {self.batch + 1:,} is predicted at {human_bytes(above)}, over by "
                     f"{above - self.budget:,} bytes")
        return line


def largest_batch(model: str, total: Callable[[int], int], budget: int) -> Fit:
    """The largest batch b with total(b) <= budget (total: the predicted bytes of a step at batch b; its
    ``real``, where it has one, says whether they were measured on real CPU tensors)."""
    tried: dict[int, int] = {}

    def at(batch: int) -> int:
        if batch not in tried:
            tried[batch] = total(batch)
        return tried[batch]

    if at(1) > budget:
        return Fit(model, budget, 0, tuple(tried.items()), getattr(total, "real", False))
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
    halve = False  # after an interpolation that did not halve the bracket, a bisection
    while high is not None and high - low > 1:
        middle = (low + high) // 2 if halve else _interpolated(low, high, at(low), at(high), budget)
        width = high - low
        if at(middle) <= budget:
            low = middle
        else:
            high = middle
        halve = not halve and 2 * (high - low) > width
    if high is not None:
        at(low + 1)  # the one above, for the margin line (already known when high == low + 1)
    return Fit(model, budget, low, tuple(tried.items()), getattr(total, "real", False))


def _interpolated(low: int, high: int, at_low: int, at_high: int, budget: int) -> int:
    """The batch where the line through (low, at_low) and (high, at_high) meets the budget, strictly inside
    (low, high): the answer itself where the total is linear in the batch, one step from it where nearly."""
    if at_high <= at_low:
        return (low + high) // 2
    return min(max(low + (budget - at_low) * (high - low) // (at_high - at_low), low + 1), high - 1)


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


def confirm(run: Callable[[int], Run], budget: int, predicted: int, slope: int | None = None) -> Confirmation:
    """The largest batch that runs within the budget, found by running from the predicted one until a batch
    measured to fit sits beside the one above measured not to. Each run's measured bytes aim the next: the
    batch where the total, growing by the bytes a sample adds (measured between the last two runs, or at
    first ``slope``, the prediction's), meets the budget; one run from the answer where the measurement grows
    as the prediction does. Where there is no aim (no slope yet, or the run ran out of memory and has no
    total): up while the next fits (doubling the step), down while it does not, then bisection. After three
    one-sided moves the step doubles whatever the aim, and after an aimed run that did not halve the gap
    comes a bisection, so that the runs stay about 2 log2 of the distance."""
    runs: dict[int, Run] = {}
    low, high = 0, None  # fits(low) (0: nothing yet); not fits(high)
    probe, step, moves, aimed = max(1, predicted), 1, 0, False
    while True:
        if probe not in runs:
            runs[probe] = run(probe)
        width = None if high is None or low == 0 else high - low
        if runs[probe].fits(budget):
            low = probe
        else:
            high = probe
        if high is not None and high - low <= 1 or high is None and low >= LARGEST:
            break
        if high is None or low == 0:  # one side so far: up from the last that fits, or down
            aim = _aimed(list(runs.values()), budget, slope)
            least = step if aim is None or moves >= 3 else 1  # the shortest move
            up = high is None
            probe = min(max(aim or 0, low + least), LARGEST) if up else max(min(aim or high, high - least), 1)
            step, moves = step * 2, moves + 1
        else:  # between the two: the line through their totals, or aimed from the last run, else bisection
            halve = aimed and width is not None and 2 * (high - low) > width  # the last aim did not halve it
            ends = runs[low].total, runs[high].total
            aim = _aimed(list(runs.values()), budget, slope) if None in ends else \
                _interpolated(low, high, *ends, budget)
            aimed = not halve and aim is not None
            probe = min(max(aim, low + 1), high - 1) if aimed else (low + high) // 2
    return Confirmation(budget, predicted, low, tuple(runs.values()))


def _aimed(runs: list[Run], budget: int, slope: int | None) -> int | None:
    """The batch at which the last run's measured total, growing by a slope a sample, meets the budget: the
    slope measured between the last two runs with totals where it is positive, else ``slope``."""
    measured = [r for r in runs if r.total is not None]
    if not measured or measured[-1] is not runs[-1]:
        return None
    last = measured[-1]
    if len(measured) > 1:
        secant = (last.total - measured[-2].total) // (last.batch - measured[-2].batch)
        slope = secant if secant > 0 else slope
    if not slope or slope <= 0:
        return None
    return max(1, last.batch + (budget - last.total) // slope)
