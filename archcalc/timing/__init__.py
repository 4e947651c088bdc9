"""Measured forward-pass time: weights on the device, warm-up excluded, inference mode, many repeats."""
