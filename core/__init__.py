"""The engine's core: spec models, shared 3D blocks, model assembly, losses and ablations."""
