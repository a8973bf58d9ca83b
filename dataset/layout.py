"""The dataset format the simulator writes and training reads (users can bring their own in it).

A dataset folder holds:

- ``particles.star``: data block ``particles``, one row per subtomogram, RELION column names —
  ``rlnTomoName``, ``rlnCoordinateX/Y/Z`` (the box centre, 0-based voxel index in the tomogram),
  ``rlnAngleRot/Tilt/Psi`` (ZYZ degrees: the particle is the reference actively rotated by
  ``Rotation.from_euler("ZYZ", (rot, tilt, psi), degrees=True)``), ``rlnClassNumber`` (1-based),
  ``rlnImageName`` (the subtomogram, relative path) — and dsmnet's ``dsmClassName``,
  ``dsmMaskName`` and ``dsmDensityName`` (relative paths; empty where a particle has none) and,
  in simulated data, ``dsmTargetShare`` (the target's share of its noise-free box's density; the
  rest is its neighbours');
- ``classes.json``: the class names in class-number order, with descriptions;
- ``subtomograms/``, ``masks/``, ``densities/``: one MRC per particle, ``voxel_size`` set;
  masks are int8 (1 = the target, 0 = solvent and neighbours), densities float32;
- ``simulation.json`` (simulated data): every parameter, the measured SNR, each class's median
  ``dsmTargetShare``, the library checksums;
- ``tomograms/``: the whole tomograms (noisy, clean and class-label maps) for IMOD or napari.
"""

from __future__ import annotations

PARTICLES = "particles.star"
CLASSES = "classes.json"
SIMULATION = "simulation.json"
IMAGE = "rlnImageName"
MASK = "dsmMaskName"
DENSITY = "dsmDensityName"
CLASS_NAME = "dsmClassName"
TARGET_SHARE = "dsmTargetShare"  # simulated data: the target's share of the clean box's density
CLASS_NUMBER = "rlnClassNumber"
COORDS = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")
ANGLES = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
TOMO = "rlnTomoName"
