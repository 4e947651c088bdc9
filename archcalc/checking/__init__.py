"""archcalc check: the numbers the papers and lectures print, as data in tables/, recomputed."""
