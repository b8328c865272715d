"""CPU speed machinery for the models: drop-in layers, the fused GELU kernel and its cache."""
