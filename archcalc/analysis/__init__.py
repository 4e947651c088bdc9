"""The analysis engine: trace one forward pass and return immutable per-layer records."""
