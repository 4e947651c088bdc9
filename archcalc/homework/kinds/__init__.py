"""One file a kind of question: how its numbers are drawn, its answer worked out with archcalc's formulas,
and checked in PyTorch (homework.meta). Each has COLUMNS (its answers.csv columns after the first five),
ask(rng, level, lang) -> Question and check(question) -> the disagreements found (none: right)."""

from archcalc.homework.kinds import (attention, backward, macs, memory, network, outsize, params, quantize,
                                     receptive, recurrent, training)

KINDS = {"outsize": outsize, "params": params, "macs": macs, "receptive": receptive, "memory": memory,
         "network": network, "attention": attention, "recurrent": recurrent, "quantize": quantize,
         "training": training, "backward": backward}
