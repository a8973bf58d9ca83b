"""The built-in decoders plugin (listed in plugins.toml)."""

from __future__ import annotations

from dsmnet.registry.hookspecs import hookimpl


@hookimpl
def register_decoders(register):
    from dsmnet.decoders.deconv3d import Deconv3d
    from dsmnet.decoders.upsample3d import Upsample3d

    register("deconv3d", Deconv3d)
    register("upsample3d", Upsample3d)
