"""``input.bin``: the network works on the box Fourier-cropped and answers at the box's voxels."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dsmnet
from dsmnet.core.resample import fourier_resize, upsample_linear


def _band_limited(n: int, keep: int, seed: int) -> torch.Tensor:
    """A real n³ volume whose frequencies all lie strictly inside a keep³ grid's band."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n, n, generator=g)
    k = torch.fft.fftfreq(n) * n
    inside = (k.abs() < keep / 2)[:, None, None] & (k.abs() < keep / 2)[None, :, None] & (k.abs() < keep / 2)
    return torch.fft.ifftn(torch.fft.fftn(x) * inside).real


@settings(max_examples=25, deadline=None)
@given(n=st.integers(6, 24), m=st.integers(3, 24), seed=st.integers(0, 9))
def test_resize_keeps_the_centre_the_mean_and_a_band_limited_volume(n, m, seed):
    x = _band_limited(n, min(n, m), seed)
    y = fourier_resize(x, (m, m, m))
    assert y.shape == (m, m, m)
    assert torch.allclose(y.mean(), x.mean(), atol=1e-5)
    assert torch.allclose(fourier_resize(y, (n, n, n)), x, atol=1e-4)  # nothing in the band is lost
    # a band-limited bump at the box's centre voxel stays at the centre voxel m // 2
    r2 = sum((torch.arange(n).float() - n // 2).view(*s) ** 2 for s in ((-1, 1, 1), (1, -1, 1), (1, 1, -1)))
    bump = fourier_resize(fourier_resize(torch.exp(-r2 / (2 * (n / 4) ** 2)), (3, 3, 3)), (n, n, n))
    small = fourier_resize(bump, (m, m, m))
    assert (small == small.max()).nonzero()[0].tolist() == [m // 2] * 3


def _spec(bin: int, box: int) -> dsmnet.Spec:
    spec = dsmnet.load_spec("dsmnet").to_dict()
    spec["input"].update(shape=[box] * 3, bin=bin)
    spec["backbone"]["widths"] = [4, 8, 8]
    spec["heads"]["cls"]["hidden"] = [16]
    return dsmnet.load_spec(spec)


def test_a_binned_network_is_the_network_on_the_cropped_box_with_outputs_resized_back():
    torch.manual_seed(0)
    binned, plain = dsmnet.build_model(_spec(2, 34)).eval(), dsmnet.build_model(_spec(1, 17)).eval()
    plain.load_state_dict(binned.state_dict())
    x = torch.randn(2, 1, 34, 34, 34)
    with torch.no_grad():
        got, want = binned(x), plain(fourier_resize(x, (17, 17, 17)))
    assert got["cls"].shape == (2, 22) and torch.allclose(got["cls"], want["cls"], atol=1e-5)
    for head in ("seg", "rec"):
        assert got[head].shape[-3:] == (34, 34, 34)
        assert torch.allclose(got[head], upsample_linear(want[head], 2, (34, 34, 34)), atol=1e-5)
    assert torch.allclose(binned.features(x, "cls"), plain.features(fourier_resize(x, (17, 17, 17)), "cls"), atol=1e-5)


def test_bin_is_written_only_when_set():
    assert "bin" not in _spec(1, 40).to_dict()["input"]
    spec = _spec(2, 40)
    assert spec.to_dict()["input"]["bin"] == 2 and dsmnet.load_spec(spec.to_dict()) == spec


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 12), factor=st.integers(2, 4), seed=st.integers(0, 9))
def test_linear_upsampling_passes_through_the_coarse_voxels_on_fourier_resizes_grid(m, factor, seed):
    n = m * factor
    coarse = torch.randn(1, 2, m, m, m, generator=torch.Generator().manual_seed(seed))
    fine = upsample_linear(coarse, factor, (n, n, n))
    assert fine.shape == (1, 2, n, n, n)
    on = [(j, n // 2 + factor * (j - m // 2)) for j in range(m)]
    on = [(j, i) for j, i in on if 0 <= i < n]
    js, ids = [j for j, _ in on], [i for _, i in on]
    assert torch.equal(fine[..., ids, :, :][..., ids, :][..., ids], coarse[..., js, :, :][..., js, :][..., js])
    # a constant stays constant, the faces beyond the coarse grid included
    assert torch.allclose(upsample_linear(torch.ones(1, 1, m, m, m), factor, (n, n, n)), torch.ones(1, 1, n, n, n))
