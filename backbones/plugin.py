"""The built-in backbones plugin (listed in plugins.toml)."""

from __future__ import annotations

from dsmnet.registry.hookspecs import hookimpl


@hookimpl
def register_backbones(register):
    from dsmnet.backbones.resnet3d import ResNet3d
    from dsmnet.backbones.vgg3d import VGG3d

    register("resnet3d", ResNet3d)
    register("vgg3d", VGG3d)
