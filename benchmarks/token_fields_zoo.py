"""What archcalc's receptive fields over token ids (archcalc/analysis/token_fields.py) read on the language models of
benchmarks/hf_zoo.py (its environment: transformers installed; nothing downloaded), and how it reads the networks
of that zoo fed a float input of three axes (N, A, B) (archcalc/analysis/sequence_input.py):

    python benchmarks/token_fields_zoo.py [NAME ...]

For each model fed token ids: how many rows carry a token field, how many of them read the whole input and how many
"tokens: not tracked", what its last row reads, and the first row not tracked (an operation without a rule, a write
in place, a concatenation along the tokens). For each fed (N, A, B): whether it is read as a sequence, an image or a
signal, the row that decided, and what its last row reads.
"""

from __future__ import annotations

import sys
import warnings

import torch

import archcalc
from archcalc.analysis.sequence_input import NOTE_START
from archcalc.analysis.token_fields import Tokens


def _analysed(name: str, build, sizes, dtypes):
    """The analysis of one of the zoo's networks; None (and a line saying why) where this environment cannot."""
    try:
        torch.manual_seed(0)
        return archcalc.analyze(build().eval(), sizes, input_dtypes=dtypes)
    except Exception as error:  # (a model this environment cannot build)
        print(f"{name:18s} not analysed: {type(error).__name__}: {str(error)[:80]}")
        return None


def main(names: list[str]) -> None:
    import hf_zoo

    warnings.filterwarnings("ignore")
    zoo = hf_zoo._zoo()
    for name, (build, sizes, dtypes) in zoo.items():
        if names and name not in names or not dtypes or not any(str(d).startswith("int") for d in dtypes):
            continue
        a = _analysed(name, build, sizes, dtypes)
        if a is None:
            continue
        fields = [r.receptive for r in a.records if isinstance(r.receptive, Tokens)]
        lost = next((r for r in a.records if r.kind != "module" and isinstance(r.receptive, Tokens)
                     and r.receptive.part), None)
        last = a.records[-1].receptive
        print(f"{name:18s} token fields {len(fields):5d}  whole {sum(f.whole for f in fields):5d}  not tracked "
              f"{sum(f.part for f in fields):5d}  last: {last.text() if last else 'not computed':20s}  first not "
              f"tracked: {f'{lost.name} ({lost.type})' if lost else '-'}")


def float_inputs(names: list[str]) -> None:
    """The zoo's networks fed a float (N, A, B) first: how its fields are read."""
    import hf_zoo

    zoo = {**hf_zoo._zoo(), **hf_zoo._torchaudio(), **hf_zoo._speechbrain()}
    for name, (build, sizes, dtypes) in zoo.items():
        if names and name not in names or dtypes and not str(dtypes[0]).startswith("float") or len(sizes[0]) != 3:
            continue
        a = _analysed(name, build, sizes, dtypes)
        if a is None:
            continue
        note = next((n for n in a.notes if n.startswith(NOTE_START)), "")
        read = "an image" if "as an image" in note else "a sequence" if note else "a signal"
        by = note.split(", as ")[1].split(" reads it")[0] if note else "-"
        last = next((r.receptive for r in reversed(a.records) if r.receptive is not None), None)
        print(f"{name:18s} {'x'.join(map(str, sizes[0])):14s} read as {read:10s} by {by:55s} last: "
              f"{last.text() if last else 'not computed'}")


if __name__ == "__main__":
    main(sys.argv[1:])
    float_inputs(sys.argv[1:])
