"""Built-in task heads.

A head is a plain ``nn.Module`` whose first argument is the :class:`~dsmnet.core.shapes.ShapeSpec`
of what it reads, with three class attributes the builder checks a spec against:

- ``target``: the ground truth it is trained on (``class``, ``mask`` or ``density``);
- ``source``: what it reads unless the spec says otherwise (``backbone`` or ``decoder``);
- ``dense``: whether it predicts per voxel (it then needs a full-resolution input).
"""
