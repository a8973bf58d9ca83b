"""The spec-built DSM-Net is exactly the network the paper describes."""

from __future__ import annotations

import torch

import dsmnet
from bench.handwritten import HandDSMNet
from dsmnet.core.summary import count_parameters


def conv(cin: int, cout: int) -> int:
    """3×3×3 convolution without bias followed by BatchNorm (γ, β)."""
    return 27 * cin * cout + 2 * cout


def paper_count(widths=(32, 64, 128), hidden=1024, classes=22) -> int:
    """DSM-Net's parameters, counted from the paper's description (§2.1–2.2)."""
    w0, w1, w2 = widths
    residual = lambda c: 2 * conv(c, c)  # noqa: E731
    encoder = conv(1, w0) + residual(w0) + conv(w0, w1) + residual(w1) + conv(w1, w2) + residual(w2)
    decoder = conv(w2, w1) + conv(w1, w0) + residual(w0) + conv(w0, w0)
    classifier = (w2 * hidden + hidden) + (hidden * classes + classes)
    heads = (w0 * 2 + 2) + (w0 * 1 + 1)
    return encoder + decoder + classifier + heads


def test_parameter_count_matches_paper_and_hand_written_twin():
    model = dsmnet.build_model(dsmnet.load_spec("dsmnet"))
    assert count_parameters(model) == paper_count() == count_parameters(HandDSMNet()) == 1_954_457


# hand-written module → spec-built module holding the same layer
TWIN = {
    "stem": "backbone.stem",
    "res1": "backbone.stages.0.0",
    "down2": "backbone.downs.0",
    "res2": "backbone.stages.1.0",
    "down3": "backbone.downs.1",
    "res3": "backbone.stages.2.0",
    "fc.2": "heads.cls.body.0",
    "cls": "heads.cls.fc",
    "up1": "decoder.ups.0",
    "up2": "decoder.ups.1",
    "dres": "decoder.blocks.1.0",
    "up3": "decoder.ups.2",
    "seg": "heads.seg.conv",
    "rec": "heads.rec.conv",
}


def test_same_function_as_hand_written_twin_given_same_weights():
    model = dsmnet.build_model(dsmnet.load_spec("dsmnet")).eval()
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t) * 0.05 + (1.0 if t.dim() == 1 else 0.0))
    engine = model.state_dict()
    hand = HandDSMNet().eval()
    twin_state = {}
    for key in hand.state_dict():
        prefix = max((p for p in TWIN if key.startswith(p + ".")), key=len)
        rest = key[len(prefix) + 1 :].replace("bn.", "norm.")
        twin_state[key] = engine[f"{TWIN[prefix]}.{rest}"]
    hand.load_state_dict(twin_state)
    x = torch.randn(2, 1, 40, 40, 40)
    out = model(x)
    logits, seg, rec = hand(x)
    torch.testing.assert_close(out["cls"], logits)
    torch.testing.assert_close(out["seg"], seg)
    torch.testing.assert_close(out["rec"], rec)


def test_bare_network_count_without_normalisation():
    spec = dsmnet.load_spec("dsmnet").to_dict()
    spec["backbone"]["norm"] = "none"
    spec["decoder"]["norm"] = "none"
    model = dsmnet.build_model(spec)
    # every conv gains a bias (cout) and loses BatchNorm's 2·cout
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    hidden_convs = [c for c in convs if c.kernel_size == (3, 3, 3)]
    expected = paper_count() - sum(c.out_channels for c in hidden_convs)
    assert count_parameters(model) == expected
