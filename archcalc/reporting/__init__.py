"""archcalc report: the answer tables a student hands in, written deterministically to reports/."""
