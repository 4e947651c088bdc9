"""Memory for training: parameters, gradients, optimizer state and the activations kept for backward."""
