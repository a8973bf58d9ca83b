"""Every registered decoder, from its defaults, behind every backbone: a full-resolution map that
a segmenter and a reconstructor read, at even and odd sizes."""

from __future__ import annotations

import itertools

import pytest

from tests.registered import REGISTERED, check_learns, small_params

SIZES = [(16, 16, 16), (17, 19, 21)]
CASES = list(itertools.product(REGISTERED.decoder, REGISTERED.backbone))


@pytest.mark.parametrize("decoder,backbone", CASES, ids=[f"{d.name}-{b.name}" for d, b in CASES])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_decoder_gives_full_resolution_and_trains(decoder, backbone, size):
    seg, rec = REGISTERED.head.get("segmenter"), REGISTERED.head.get("reconstructor")
    spec = {
        "name": "d",
        "input": {"shape": list(size)},
        "backbone": small_params(backbone),
        "decoder": small_params(decoder),
        "heads": {"seg": small_params(seg), "rec": small_params(rec)},
        "losses": {"seg": {"type": "cross_entropy"}, "rec": {"type": "mse"}},
    }
    out = check_learns(spec, size)
    assert out["seg"].shape[2:] == size and out["rec"].shape == (2, 1, *size)
