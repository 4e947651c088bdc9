"""What archcalc's receptive fields over token ids (archcalc/analysis/token_fields.py) read on the language models of
benchmarks/hf_zoo.py (its environment: transformers installed; nothing downloaded):

    python benchmarks/token_fields_zoo.py [NAME ...]

For each model fed token ids: how many rows carry a token field, how many of them read the whole input and how many
"tokens: not tracked", what its last row reads, and the first row not tracked (an operation without a rule, a write
in place, a concatenation along the tokens).
"""

from __future__ import annotations

import sys
import warnings

import torch

import archcalc
from archcalc.analysis.token_fields import Tokens


def main(names: list[str]) -> None:
    import hf_zoo

    warnings.filterwarnings("ignore")
    zoo = hf_zoo._zoo()
    for name, (build, sizes, dtypes) in zoo.items():
        if names and name not in names or not dtypes or not any(str(d).startswith("int") for d in dtypes):
            continue
        try:
            torch.manual_seed(0)
            a = archcalc.analyze(build().eval(), sizes, input_dtypes=dtypes)
        except Exception as error:  # (a model this environment cannot build)
            print(f"{name:18s} not analysed: {type(error).__name__}: {str(error)[:80]}")
            continue
        fields = [r.receptive for r in a.records if isinstance(r.receptive, Tokens)]
        lost = next((r for r in a.records if r.kind != "module" and isinstance(r.receptive, Tokens)
                     and r.receptive.part), None)
        last = a.records[-1].receptive
        print(f"{name:18s} token fields {len(fields):5d}  whole {sum(f.whole for f in fields):5d}  not tracked "
              f"{sum(f.part for f in fields):5d}  last: {last.text() if last else 'not computed':20s}  first not "
              f"tracked: {f'{lost.name} ({lost.type})' if lost else '-'}")


if __name__ == "__main__":
    main(sys.argv[1:])
