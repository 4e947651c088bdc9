"""archcalc: architecture analysis and cost calculator for PyTorch CNNs.

Importing the package imports no torch: the pure-arithmetic parts (``archcalc.formulas``)
answer in a blink, and the analysis engine (``archcalc.analysis``) loads torch when used.
"""

__version__ = "0.1.0"
