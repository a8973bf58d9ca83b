"""Imaging a tomogram: CTF, detector MTF, missing wedge and noise at a target SNR.

Two modes (paper §3.1, after the Xu-lab simulator):

- ``fourier`` (default, fast): the clean tomogram's 3D transform is multiplied by the CTF and MTF
  (radial: a central slice holds the full 3D frequency) and by the wedge of measured frequencies;
  noise is white noise through the same wedge and MTF.
- ``projection``: a real tilt series — a projection at every tilt (torch-fourier-slice), the 2D
  CTF and MTF applied to each, noise added per projection — reconstructed by direct Fourier
  inversion with per-frequency weights (the Fourier equivalent of weighted back-projection).

SNR follows the Xu lab's own simulator (AITom, ``reconstruction__simple_convolution``): the
**nominal** SNR is the variance of the *unfiltered* clean tomogram over the variance of the noise
added; half of that noise is added before the CTF (it goes through CTF, MTF, wedge and band limit
with the signal: structural and shot noise of the specimen), half after (through the wedge and band
limit only: detector and reconstruction noise). The CTF carries an envelope (``b_factor``) and
everything is band-limited to ``1/band_limit_nm`` (4 nm), as in that simulator. With a ``dose``,
radiation damage fades each tilt's signal by the exposure recorded before it in a dose-symmetric
scheme (Grant & Grigorieff's critical exposure; the noise is left as it is). Because CTF,
wedge and band limit remove most of the noise's power but less of the signal's, the SNR the
network meets is higher than the nominal one: both are measured and recorded — the **total** SNR
(filtered signal variance over final noise variance) and the **in-band** SNR (the same over
frequencies below 1/(4 nm)).

Geometry: arrays are ``[z, y, x]``, the beam along z at 0°, the tilt axis along y (``tilt_axis``
"y", as RELION-5, Warp and IMOD reconstruct). A projection at tilt θ measures the central slice
containing ``k_y`` and ``(cos θ, 0, −sin θ)`` in (x, z), so the measured frequencies are those
whose (x, z) direction is within the tilt range. With ``tilt_axis`` "x" the whole acquisition is
turned by 90° about the beam (x → y): the slice at θ contains ``k_x`` and ``(0, cos θ, −sin θ)``
in (x, y, z).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
import torch
from torch_ctf.ctf_utils import calculate_total_phase_shift

from dsmnet.simulate.exposure import exposure_filter, tilt_exposures

Mode = Literal["fourier", "projection"]


@dataclass(frozen=True)
class Microscope:
    """Acquisition parameters (defaults: the paper's simulation)."""

    voltage_kv: float = 300.0
    cs_mm: float = 2.0
    defocus_um: float = 5.0  # underfocus (positive), i.e. −5 µm defocus
    amplitude_contrast: float = 0.07
    b_factor: float = 400.0  # Å², CTF envelope exp(−B k²/4) (0.94 at 1/(4 nm))
    band_limit_nm: float = 4.0  # signal and noise are band-limited to 1/(this) (0: none)
    mtf: Literal["sinc", "none"] = "sinc"  # detector MTF sinc(πω/2), ω = k/Nyquist
    tilt_min: float = -60.0
    tilt_max: float = 60.0
    tilt_step: float = 1.0
    # underfocus drawn per tomogram, uniformly in [min, max] µm (None: ``defocus_um`` for every one)
    defocus_range_um: tuple[float, float] | None = None
    # the tomogram axis the tilt axis lies along: y (RELION-5, Warp, IMOD) or x (the acquisition
    # turned 90° about the beam)
    tilt_axis: Literal["y", "x"] = "y"
    # total exposure of the tilt series (e⁻/Å²), collected dose-symmetrically from 0°: each tilt's
    # signal fades with the exposure before it (radiation damage, exposure_filter); 0: no damage
    dose: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    def problems(self) -> list[str]:
        """What is wrong with these settings, each as the flag and what is allowed (empty: fine)."""
        out = []
        if not 20.0 <= self.voltage_kv <= 1000.0:
            out.append(f"--voltage must be between 20 and 1000 kV, got {self.voltage_kv:g}")
        if not 0.0 <= self.cs_mm <= 20.0:
            out.append(f"--cs must be between 0 and 20 mm, got {self.cs_mm:g}")
        if not 0.0 <= self.amplitude_contrast < 1.0:
            out.append(f"--amplitude-contrast must be in [0, 1), got {self.amplitude_contrast:g}")
        if not self.b_factor >= 0.0:
            out.append(f"--b-factor must be ≥ 0 Å², got {self.b_factor:g}")
        low, high = self.defocus_range_um or (self.defocus_um, self.defocus_um)
        if not 0.0 < low <= high <= 20.0:
            out.append(f"--defocus must be an underfocus in µm, 0 < MIN ≤ MAX ≤ 20 (e.g. 2,6), got {low:g},{high:g}")
        if self.tilt_axis not in ("y", "x"):
            axis = self.tilt_axis
            out.append(f"--tilt-axis must be y or x (the tomogram axis the tilt axis lies along), got {axis!r}")
        if not 0.0 <= self.dose <= 1000.0:
            out.append(f"--dose must be the tilt series' total exposure, 0 to 1000 e/Å², got {self.dose:g}")
        if not -90.0 <= self.tilt_min < self.tilt_max <= 90.0:
            got = f"{self.tilt_min:g},{self.tilt_max:g}"
            out.append(f"--tilt-range must be MIN,MAX degrees with −90 ≤ MIN < MAX ≤ 90, got {got}")
        elif not 0.0 < self.tilt_step <= self.tilt_max - self.tilt_min:
            out.append(
                f"--tilt-step must be > 0 and at most the tilt range ({self.tilt_max - self.tilt_min:g}°), "
                f"got {self.tilt_step:g}"
            )
        return out

    def for_tomogram(self, rng: np.random.Generator) -> Microscope:
        """The settings one tomogram is imaged with: its own defocus drawn from the range when there
        is one (the random stream is untouched without one, so default datasets keep their bytes)."""
        if self.defocus_range_um is None:
            return self
        low, high = self.defocus_range_um
        return replace(self, defocus_um=float(rng.uniform(low, high)))

    def band(self, k_cycles: torch.Tensor, voxel_size: float) -> torch.Tensor:
        """The band limit at spatial frequencies ``k_cycles`` (cycles/voxel): 1 below it, 0 above."""
        if not self.band_limit_nm:
            return torch.ones_like(k_cycles)
        return (k_cycles <= voxel_size / (10.0 * self.band_limit_nm)).to(k_cycles.dtype)

    @property
    def tilts(self) -> np.ndarray:
        n = int(round((self.tilt_max - self.tilt_min) / self.tilt_step)) + 1
        return np.linspace(self.tilt_min, self.tilt_max, n)

    def exposures(self) -> np.ndarray:
        """Each tilt's mean exposure (e⁻/Å², in :attr:`tilts` order; :func:`tilt_exposures`)."""
        return tilt_exposures(self.tilts, self.dose)


def ctf_mtf(k_cycles: torch.Tensor, voxel_size: float, scope: Microscope) -> torch.Tensor:
    """CTF × MTF × envelope at spatial frequencies ``k_cycles`` (cycles/voxel), via torch-ctf."""
    k_angstrom_sq = (k_cycles / voxel_size) ** 2
    phase = calculate_total_phase_shift(
        defocus_um=torch.tensor(scope.defocus_um, dtype=torch.float64),
        voltage_kv=torch.tensor(scope.voltage_kv, dtype=torch.float64),
        spherical_aberration_mm=torch.tensor(scope.cs_mm, dtype=torch.float64),
        phase_shift_degrees=torch.tensor(0.0, dtype=torch.float64),
        amplitude_contrast_fraction=torch.tensor(scope.amplitude_contrast, dtype=torch.float64),
        fftfreq_grid_angstrom_squared=k_angstrom_sq.double(),
    )
    h = -torch.sin(phase)
    if scope.mtf == "sinc":
        h = h * torch.sinc(k_cycles.double())
    if scope.b_factor:
        h = h * torch.exp(-scope.b_factor * k_angstrom_sq.double() / 4)
    return h.float()


def rfft_grid(shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The rFFT grid's frequencies (cycles per voxel) along z, y and x, broadcastable to its shape."""
    kz = torch.fft.fftfreq(shape[0])[:, None, None]
    ky = torch.fft.fftfreq(shape[1])[None, :, None]
    kx = torch.fft.rfftfreq(shape[2])[None, None, :]
    return kz, ky, kx


def _directions(shape: tuple[int, int, int], rfft: bool = True, axis: str = "y"):
    """``kz``, ``ka`` (the frequency across the tilt axis: kx for a tilt axis along y, ky along x)
    and the tilt whose central slice holds each (ka, kz) direction, in degrees folded into
    [−90°, 90°) (a slice holds both ±directions)."""
    kz = torch.fft.fftfreq(shape[0])[:, None, None]
    if axis == "x":
        ka = torch.fft.fftfreq(shape[1])[None, :, None]
    else:
        ka = (torch.fft.rfftfreq(shape[2]) if rfft else torch.fft.fftfreq(shape[2]))[None, None, :]
    angle = torch.rad2deg(torch.atan2(-kz, ka))
    angle = torch.where(angle >= 90, angle - 180, angle)
    angle = torch.where(angle < -90, angle + 180, angle)
    return kz, ka, angle


def wedge_exposure(shape: tuple[int, int, int], k: torch.Tensor, voxel_size: float, scope: Microscope):
    """Per rFFT frequency, the signal radiation damage leaves (``fourier`` mode): each frequency
    was measured by the tilt nearest its direction, after that tilt's exposure; 1 without a dose."""
    if not scope.dose:
        return torch.ones(())
    _, _, angle = _directions(shape, axis=scope.tilt_axis)
    tilts = torch.from_numpy(scope.tilts)
    nearest = (angle[..., None] - tilts).abs().argmin(-1)  # [z, 1, x] (tilt axis y) or [z, y, 1] (x)
    exposure = torch.from_numpy(scope.exposures())[nearest]
    return exposure_filter(k / voxel_size, exposure, scope.voltage_kv)


def wedge_mask(shape: tuple[int, int, int], scope: Microscope, rfft: bool = True) -> torch.Tensor:
    """Boolean mask of the measured frequencies of a ``[z, y, x]`` volume's (r)FFT.

    A frequency is measured when its (x, z) direction lies in the tilt range, or when it lies
    within half a Fourier voxel of the first or last tilt's plane: at low frequencies a measured
    central slice has a finite thickness, as a reconstruction from a real tilt series shows.
    """
    kz, ka, angle = _directions(shape, rfft, scope.tilt_axis)
    across = shape[2] if scope.tilt_axis == "y" else shape[1]
    inside = (angle >= scope.tilt_min) & (angle <= scope.tilt_max)
    outside_by = torch.minimum((angle - scope.tilt_min).abs(), (angle - scope.tilt_max).abs())
    distance = torch.sqrt(ka**2 + kz**2) * torch.sin(torch.deg2rad(outside_by.clamp(max=90)))
    near = distance <= 0.5 / max(shape[0], across)  # half a Fourier voxel, in cycles/voxel
    width = shape[2] // 2 + 1 if rfft else shape[2]
    return (inside | near).expand(shape[0], shape[1], width)


@dataclass
class Imaged:
    """A tomogram as imaged: the noisy volume, its noise-free filtered signal and its SNRs.

    Attributes:
        snr: the measured total SNR (filtered-signal variance / final noise variance).
        snr_in_band: the same over the frequencies below 1/(4 nm).
    """

    noisy: np.ndarray
    signal: np.ndarray
    snr: float
    snr_in_band: float = float("inf")


def rfft_weights(shape: tuple[int, ...]) -> torch.Tensor:
    """How many coefficients of the full spectrum each rFFT coefficient stands for (2, or 1 for
    the columns that have no mirror image), so that sums over the half-spectrum obey Parseval."""
    weight = torch.full((*shape[:-1], shape[-1] // 2 + 1), 2.0)
    weight[..., 0] = 1.0
    if shape[-1] % 2 == 0:
        weight[..., -1] = 1.0
    return weight


def _in_band_power(volume: torch.Tensor, k: torch.Tensor, limit: float) -> float:
    """Power of ``volume`` (zero-mean) at frequencies below ``limit`` cycles/voxel, by Parseval."""
    ft = torch.fft.rfftn(volume - volume.mean())
    return float(((ft.abs() ** 2) * rfft_weights(volume.shape) * (k <= limit)).sum() / volume.numel() ** 2)


def _measured(signal: torch.Tensor, noise: torch.Tensor, k: torch.Tensor, voxel_size: float) -> Imaged:
    limit = voxel_size / 40.0  # 1/(4 nm) in cycles/voxel
    in_band = _in_band_power(signal, k, limit) / _in_band_power(noise, k, limit)
    return Imaged((signal + noise).numpy(), signal.numpy(), float(signal.var() / noise.var()), float(in_band))


def image_fourier(
    clean: np.ndarray, voxel_size: float, snr: float, scope: Microscope, rng: np.random.Generator
) -> Imaged:
    """``fourier`` mode. ``snr`` is nominal (see the module); ``inf`` gives the noise-free tomogram."""
    shape = clean.shape
    kz, ky, kx = rfft_grid(shape)
    k = torch.sqrt(kz**2 + ky**2 + kx**2)
    measured = wedge_mask(shape, scope) * scope.band(k, voxel_size)
    transfer = ctf_mtf(k, voxel_size, scope) * measured
    volume = torch.from_numpy(clean)
    damaged = transfer * wedge_exposure(shape, k, voxel_size, scope)  # radiation damage fades the signal only
    signal = torch.fft.irfftn(torch.fft.rfftn(volume) * damaged, s=shape)
    if not np.isfinite(snr):
        return Imaged(signal.numpy(), signal.numpy(), float("inf"))
    half = float(volume.var()) / snr / 2  # the nominal noise variance, half before and half after the CTF
    before = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)) * half**0.5
    after = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)) * half**0.5
    noise = torch.fft.irfftn(torch.fft.rfftn(before) * transfer + torch.fft.rfftn(after) * measured, s=shape)
    return _measured(signal, noise, k, voxel_size)


def _tilt_matrices(scope: Microscope) -> torch.Tensor:
    """Rotations about the tilt axis (xyz convention, left-multiplying column vectors) for every
    tilt: about y, or for a tilt axis along x the same turned by 90° about the beam."""
    t = torch.deg2rad(torch.tensor(scope.tilts, dtype=torch.float32))
    c, s = torch.cos(t), torch.sin(t)
    zero, one = torch.zeros_like(t), torch.ones_like(t)
    about_y = torch.stack(
        [torch.stack([c, zero, s], -1), torch.stack([zero, one, zero], -1), torch.stack([-s, zero, c], -1)], -2
    )
    if scope.tilt_axis == "y":
        return about_y
    quarter = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90° about z: x → y
    return quarter @ about_y @ quarter.T


def _filter_2d(images: torch.Tensor, transfer) -> torch.Tensor:
    n = images.shape[-1]
    ky = torch.fft.fftfreq(n)[:, None]
    kx = torch.fft.rfftfreq(n)[None, :]
    k = torch.sqrt(ky**2 + kx**2)
    return torch.fft.irfftn(torch.fft.rfftn(images, dim=(-2, -1)) * transfer(k), dim=(-2, -1), s=(n, n))


def image_projection(
    clean: np.ndarray, voxel_size: float, snr: float, scope: Microscope, rng: np.random.Generator
) -> Imaged:
    """``projection`` mode: tilt series, per-projection CTF/MTF and noise, Fourier reconstruction.
    Same seed, same bytes on any number of threads: the back-projection's scatter-add runs in
    torch's deterministic mode (on several threads its sums otherwise differ in the last bit)."""
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return _image_projection(clean, voxel_size, snr, scope, rng)
    finally:
        torch.use_deterministic_algorithms(was)


def _image_projection(
    clean: np.ndarray, voxel_size: float, snr: float, scope: Microscope, rng: np.random.Generator
) -> Imaged:
    from torch_fourier_slice import backproject_2d_to_3d, project_3d_to_2d

    shape = clean.shape
    n = max(shape) + max(shape) % 2
    pads = [(n - s) // 2 for s in shape]
    cube = torch.zeros(n, n, n)
    cube[pads[0] : pads[0] + shape[0], pads[1] : pads[1] + shape[1], pads[2] : pads[2] + shape[2]] = torch.from_numpy(
        clean
    )
    rots = _tilt_matrices(scope)
    crop = (slice(pads[0], pads[0] + shape[0]), slice(pads[1], pads[1] + shape[1]), slice(pads[2], pads[2] + shape[2]))
    with torch.no_grad():
        projections = project_3d_to_2d(cube, rots)
        del cube
        exposure = torch.from_numpy(scope.exposures())[:, None, None]  # each projection after its own
        damage = lambda k: exposure_filter(k / voxel_size, exposure, scope.voltage_kv)  # noqa: E731
        projections = _filter_2d(projections, lambda k: ctf_mtf(k, voxel_size, scope) * damage(k))
        signal = backproject_2d_to_3d(projections, rots)[crop].contiguous()
        del projections
        if not np.isfinite(snr):
            kz, ky, kx = rfft_grid(shape)
            band = scope.band(torch.sqrt(kz**2 + ky**2 + kx**2), voxel_size)
            signal = torch.fft.irfftn(torch.fft.rfftn(signal) * band, s=shape)
            return Imaged(signal.numpy(), signal.numpy(), float("inf"))
        before = _filter_2d(
            torch.from_numpy(rng.standard_normal((len(rots), n, n), dtype=np.float32)),
            lambda k: ctf_mtf(k, voxel_size, scope),
        )
        before = backproject_2d_to_3d(before, rots)[crop].contiguous()
        after = torch.from_numpy(rng.standard_normal((len(rots), n, n), dtype=np.float32))
        after = backproject_2d_to_3d(after, rots)[crop].contiguous()
    # band-limit the reconstructions, and give each noise part the variance it has in fourier mode
    kz, ky, kx = rfft_grid(shape)
    k = torch.sqrt(kz**2 + ky**2 + kx**2)
    band = scope.band(k, voxel_size)
    signal, before, after = (torch.fft.irfftn(torch.fft.rfftn(v) * band, s=shape) for v in (signal, before, after))
    measured = wedge_mask(shape, scope) * band
    half = float(torch.from_numpy(clean).var()) / snr / 2
    before = before * (half * _gain(ctf_mtf(k, voxel_size, scope) * measured, shape) / before.var()) ** 0.5
    after = after * (half * _gain(measured, shape) / after.var()) ** 0.5
    return _measured(signal, before + after, k, voxel_size)


def _gain(transfer: torch.Tensor, shape: tuple[int, ...]) -> float:
    """The variance of unit white noise after an rFFT-domain filter ``transfer``."""
    return float((transfer.abs() ** 2 * rfft_weights(shape)).sum() / np.prod(shape))


def image(
    clean: np.ndarray, voxel_size: float, snr: float, scope: Microscope, rng: np.random.Generator, mode: Mode
) -> Imaged:
    """Image a clean tomogram in the given mode."""
    fn = image_fourier if mode == "fourier" else image_projection
    return fn(np.ascontiguousarray(clean, dtype=np.float32), voxel_size, snr, scope, rng)
