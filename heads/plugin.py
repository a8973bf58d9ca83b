"""The built-in heads plugin (listed in plugins.toml)."""

from __future__ import annotations

from dsmnet.registry.hookspecs import hookimpl


@hookimpl
def register_heads(register):
    from dsmnet.heads.classifier import Classifier
    from dsmnet.heads.dense import Reconstructor, Segmenter
    from dsmnet.heads.pose import PoseHead

    register("classifier", Classifier)
    register("segmenter", Segmenter)
    register("reconstructor", Reconstructor)
    register("pose", PoseHead)
