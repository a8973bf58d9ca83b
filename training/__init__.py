"""Training and evaluation: the paper's protocol, its loop, checkpoints and metrics."""
