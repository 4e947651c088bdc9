"""Layer types of the lectures that PyTorch does not ship; the models and the counters share them."""
