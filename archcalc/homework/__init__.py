"""Homework sets: new questions every term, with answer keys that show the lecture's arithmetic.

Each kind (kinds/) draws reasonable numbers, writes the question and its working with archcalc's formulas,
and rebuilds the layer or network in PyTorch on the meta device to check the answer (meta.py), so that a key
cannot be wrong. generate.py makes a set; write.py writes questions.md, answers.md and answers.csv.
"""
