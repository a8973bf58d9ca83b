"""How hard is the class set? An ideal observer's distance between every pair of classes.

For two classes ``a`` and ``b`` imaged at a nominal SNR (the Xu-lab convention of
:mod:`dsmnet.simulate.imaging`), the ideal observer that knows both structures and the noise's
spectrum tells one centred, noisy box from the other with the **noise-whitened distance**

    d′(a, b) = min over rotations R of ‖ W·(F a − F R b) ‖ / σ

where ``F`` is the imaging transfer (CTF with envelope, detector MTF, band limit at 1/(4 nm)),
``W`` whitens the noise (half of it through the CTF, half not) and ``σ`` is the white noise's
standard deviation. A pair with d′ ≲ 2 is confused in a sizeable share of single boxes even by
this observer (error rate Φ(−d′/2) for two equally likely classes: 31 % at d′ = 1, 16 % at 2,
7 % at 3); a CNN, which must also cope with neighbours, unknown orientation and the wedge, can
only do worse. The wedge is left out (it depends on the orientation), so d′ is an upper bound in
that respect; the minimum over a finite set of rotations is an upper bound too.

Run: ``dsmnet separability [--snr 0.06] [--box 34] [--rotations 600]``
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from dsmnet.simulate.imaging import Microscope, ctf_mtf, rfft_grid
from dsmnet.simulate.library import Structure

CROWDING_VARIANCE_BOX = (160, 320, 320)


def centred_map(density: np.ndarray, box: int) -> torch.Tensor:
    """A library map placed in (or cropped to) a ``box``³ volume, its centre voxel at index box // 2."""
    out = torch.zeros(box, box, box)
    n = density.shape[0]
    lo = (box - n) // 2
    src = slice(max(0, -lo), max(0, -lo) + min(n, box))
    dst = slice(max(0, lo), max(0, lo) + min(n, box))
    out[dst, dst, dst] = torch.from_numpy(density[src, src, src])
    return out


def rotated_maps(volume: torch.Tensor, rotations: np.ndarray) -> torch.Tensor:
    """``volume`` ``[D, H, W]`` turned by each of ``rotations`` ``[R, 3, 3]`` (xyz, active) about the
    voxel at index n // 2, as the simulator turns a molecule (:func:`dsmnet.simulate.crowding.rotate`)."""
    from dsmnet.core.rotations import rotate_volumes

    m = torch.from_numpy(rotations).float().transpose(1, 2)  # out(p) = in(Rᵀ p)
    return rotate_volumes(volume.expand(len(m), 1, *volume.shape), m)[:, 0]


def whitening(box: int, voxel_size: float, scope: Microscope) -> torch.Tensor:
    """``W·F`` on the rFFT grid: the transfer divided by the noise's amplitude spectrum (in units
    of the white noise's), inside the band limit."""
    kz, ky, kx = rfft_grid((box, box, box))
    k = torch.sqrt(kz**2 + ky**2 + kx**2)
    transfer = ctf_mtf(k, voxel_size, scope)
    noise = torch.sqrt((transfer**2 + 1) / 2)  # half the noise through the CTF, half not
    return transfer / noise * scope.band(k, voxel_size)


def separability(
    structures: list[Structure],
    snr: float = 0.06,
    box: int = 34,
    rotations: int = 600,
    seed: int = 0,
    tomogram: tuple[int, int, int] = CROWDING_VARIANCE_BOX,
) -> list[dict]:
    """For each class: its nearest other class by d′ and that d′ (see the module)."""
    scope = Microscope()
    voxel = structures[0].voxel_size
    filt = whitening(box, voxel, scope)
    # σ² of the white noise: the nominal SNR is relative to the clean tomogram's variance, which
    # the crowding sets (5 % of the volume inside molecules): estimated from the maps themselves
    from dsmnet.simulate.crowding import crowd

    tomo = crowd(tomogram, structures, 0.05, np.random.default_rng(seed))
    sigma = math.sqrt(float(tomo.clean.var()) / snr)
    del tomo

    def imaged(v: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfftn(torch.fft.rfftn(v, dim=(-3, -2, -1)) * filt, s=(box,) * 3, dim=(-3, -2, -1))

    refs = torch.stack([imaged(centred_map(s.density, box)) for s in structures]).flatten(1)
    rots = Rotation.random(rotations, random_state=seed).as_matrix()
    rots[0] = np.eye(3)  # the maps' own orientation is always among those tried
    n = len(structures)
    d = torch.full((n, n), float("inf"))
    for j, s in enumerate(structures):
        turned = imaged(rotated_maps(centred_map(s.density, box), rots)).flatten(1)  # [R, V]
        dist = torch.cdist(refs, turned)  # [n, R]
        d[:, j] = dist.min(1).values / sigma
    d = torch.minimum(d, d.T)  # the same measure both ways: keep the better rotation found
    out = []
    for i, s in enumerate(structures):
        row = d[i].clone()
        row[i] = float("inf")
        j = int(row.argmin())
        out.append({"name": s.name, "nearest": structures[j].name, "d_prime": float(row[j])})
    return out


if __name__ == "__main__":  # the old entry point: an alias of ``dsmnet separability``
    import sys

    from dsmnet.cli import main

    raise SystemExit(main(["separability", *sys.argv[1:]]))
