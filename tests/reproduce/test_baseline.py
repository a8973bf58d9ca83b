"""The classical baseline (shrinkage LDA on rotation-invariant features): its features are the
boxes' signal, not floating-point rounding, and the study makes a kept record again when the
features it was fitted on have changed."""

from __future__ import annotations

import json

import numpy as np

from dsmnet.reproduce.baseline import FEATURES, classical_baseline, features


def _normalised_boxes(n: int = 4, side: int = 34, seed: int = 0) -> np.ndarray:
    """Noisy boxes with a centred blob, each normalised to zero mean and unit s.d. as the data are."""
    rng = np.random.default_rng(seed)
    grid = np.indices((side,) * 3) - side // 2
    blob = np.exp(-(grid**2).sum(0) / (2 * 4.0**2))
    v = blob + 0.5 * rng.standard_normal((n, side, side, side))
    v = (v - v.mean(axis=(1, 2, 3), keepdims=True)) / v.std(axis=(1, 2, 3), keepdims=True)
    return v.astype(np.float32)


def test_no_feature_is_rounding():
    # a change at the level of float32 rounding (what another CPU's FFT or BLAS path makes) moves
    # no feature: the spectrum's zeroth shell, the power of the zero mean, was nothing but rounding
    # (its log moved by units between CPUs) and is not a feature
    v = _normalised_boxes()
    jitter = 1 + 2e-7 * np.random.default_rng(1).standard_normal(v.shape).astype(np.float32)
    a, b = features(v), features(v * jitter)
    assert a.shape == (4, 17 + 17 + 16)
    assert np.abs(a - b).max() < 1e-3


def test_a_record_fitted_on_other_features_is_made_again(small_data, tmp_path, monkeypatch):
    from dsmnet.reproduce import baseline, jobs

    calls = []
    monkeypatch.setattr(baseline, "classical_baseline", lambda *a: calls.append(a) or classical_baseline(*a))
    first = jobs.baseline(small_data, 0, small_data, tmp_path)
    assert first["features"] == FEATURES and first["per_particle"]["label"]
    assert jobs.baseline(small_data, 0, small_data, tmp_path) == json.loads(json.dumps(first)) and len(calls) == 1
    kept = tmp_path / "seed0.json"
    old = {k: v for k, v in first.items() if k != "features"}  # as kept before the features were named
    kept.write_text(json.dumps(old))
    assert jobs.baseline(small_data, 0, small_data, tmp_path)["features"] == FEATURES and len(calls) == 2
    # without the data to fit on, the kept record stands in (a report redrawn in a clean clone)
    kept.write_text(json.dumps(old))
    gone = tmp_path / "elsewhere" / small_data.name
    assert "features" not in jobs.baseline(small_data, 0, gone, tmp_path) and len(calls) == 2
