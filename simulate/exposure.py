"""Radiation damage of a tilt series: the dose-symmetric order its tilts are recorded in and how
much signal each keeps after the exposure before it (Grant & Grigorieff 2015)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["critical_exposure", "dose_symmetric", "exposure_filter", "tilt_exposures"]


def dose_symmetric(angles: np.ndarray) -> np.ndarray:
    """The order a dose-symmetric scheme records ``angles`` in (Hagen et al. 2017): 0° (the angle
    nearest it), then alternately the next one up and the next one down, as indices."""
    angles = np.asarray(angles, dtype=float)
    return np.lexsort((-angles, np.abs(angles)))


def tilt_exposures(tilts: np.ndarray, dose: float) -> np.ndarray:
    """Each tilt's mean exposure (e⁻/Å², in the order of ``tilts``) in a series of total ``dose``
    shared evenly: what the tilts recorded before it in the dose-symmetric order, plus half its own."""
    rank = np.empty(len(tilts))
    rank[dose_symmetric(tilts)] = np.arange(len(tilts))
    return (rank + 0.5) * dose / len(tilts)


def critical_exposure(k_angstrom: torch.Tensor, voltage_kv: float) -> torch.Tensor:
    """The exposure (e⁻/Å²) at which the signal at ``k_angstrom`` (1/Å) falls to 1/√e by radiation
    damage: Grant & Grigorieff (2015) at 300 kV, 0.245 k^−1.665 + 2.81, scaled by 0.8 at 200 kV
    (linearly in between, held beyond)."""
    scale = float(np.clip(0.8 + 0.2 * (voltage_kv - 200.0) / 100.0, 0.8, 1.0))
    k = k_angstrom.double().clamp(min=1e-6)
    return scale * (0.245 * k.pow(-1.665) + 2.81)


def exposure_filter(k_angstrom: torch.Tensor, exposure, voltage_kv: float) -> torch.Tensor:
    """The signal left after ``exposure`` e⁻/Å² (a number, or a tensor broadcast with the
    frequencies): exp(−N / 2N_e(k)), the amplitude attenuation of Grant & Grigorieff (2015)."""
    exposure = torch.as_tensor(exposure, dtype=torch.float64)
    return torch.exp(-exposure / (2 * critical_exposure(k_angstrom, voltage_kv))).float()
