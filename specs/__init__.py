"""The bundled specs (``dsmnet.specs``: one YAML file each, read by ``core.spec.load_spec`` by name)
and :func:`three_task`, DSM-Net's layout at a chosen size for tests and benchmarks."""

from __future__ import annotations


def three_task(name: str, box: int, widths: list[int], hidden: int, classes: int, batch: int, epochs: int) -> dict:
    """A spec dict with DSM-Net's layout — ResNet encoder, deconvolution decoder, classifier,
    segmenter and reconstructor, losses 1:10:1 — at ``box``³ with the given widths, classifier
    width, classes, batch and epochs (patience 5); no dropout."""
    return {
        "name": name,
        "input": {"shape": [box] * 3},
        "backbone": {"type": "resnet3d", "widths": list(widths)},
        "decoder": {"type": "deconv3d"},
        "heads": {
            "cls": {"type": "classifier", "hidden": [hidden], "classes": classes},
            "seg": {"type": "segmenter"},
            "rec": {"type": "reconstructor"},
        },
        "losses": {
            "cls": {"type": "cross_entropy", "weight": 1},
            "seg": {"type": "cross_entropy", "weight": 10},
            "rec": {"type": "mse", "weight": 1},
        },
        "training": {"batch_size": batch, "epochs": epochs, "patience": 5},
    }
