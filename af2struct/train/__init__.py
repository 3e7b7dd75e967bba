"""Training: losses, the training loop (single process or torchrun DDP), checkpoints."""
