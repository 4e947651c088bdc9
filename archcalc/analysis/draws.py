"""The random draws of a training step, simulated or counted, so that its peak is the worst step's and its count
that of every layer, the same every time.

LayerDrop skips a whole layer at random in train mode: Hugging Face's wav2vec 2.0, HuBERT, WavLM, SEW, the
Conformer variant (``torch.rand([]) < config.layerdrop``: skip) and torchaudio's encoders (``torch.rand(1) >
layer_drop``: keep). A step that skips layers keeps fewer activations, so two steps drawn at random gave a peak
that changed from run to run, down to half the peak of a step that runs them all (a 6-layer wav2vec 2.0 with
LayerDrop 0.3: 65 to 120 MB against 121 MB). While the steps are simulated, a draw of one number from
torch.rand is 1.0, which keeps every layer under either test: the peak is that of the step that runs them all,
the one a batch must fit. Other draws (dropout's masks, which cost the same whatever they draw) come from a
generator seeded with 0, the caller's own left as it was.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from archcalc.patching import replaced


@contextmanager
def every_layer_kept():
    """Open around the simulated steps; yields a list with one entry per single-number draw taken as 1.0."""
    taken: list[tuple[int, ...]] = []
    rand = torch.rand

    def drawn(*size, **kwargs):
        out = rand(*size, **kwargs)
        if out.numel() == 1 and out.is_floating_point():
            taken.append(tuple(out.shape))
            out = out.fill_(1.0) if not out.requires_grad else torch.ones_like(out).requires_grad_()
        return out

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with replaced([(torch, "rand", drawn)]):
            yield taken


def note(taken: list, steps: int) -> tuple[str, ...]:
    """What the peak's report says of the draws taken as 1.0 (LayerDrop's), if any."""
    if not taken:
        return ()
    per = len(taken) // max(steps, 1)
    return (f"{per} single-number random draw{'s' if per != 1 else ''} a step (torch.rand, as LayerDrop draws "
            f"whether to skip a layer) taken as 1.0, which keeps every layer: the peak of the step that runs them "
            f"all, the one a batch must fit",)


def counted(taken: list) -> tuple[str, ...]:
    """What a training step's count says of the draws taken as 1.0 (LayerDrop's), if any."""
    if not taken:
        return ()
    return (f"{len(taken)} single-number random draw{'s' if len(taken) != 1 else ''} (torch.rand, as LayerDrop "
            f"draws whether to skip a layer) taken as 1.0: every layer counted, as a step that skips none runs",)
