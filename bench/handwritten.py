"""DSM-Net written by hand in plain PyTorch, with no dsmnet import: the engine's twin.

It is what a person would write from the paper (§2.1–2.2) and serves two checks: the
spec-built network must have exactly its parameter count (tests/core/test_paper_network.py),
and must run its forward pass as fast (bench/engine_overhead.py).
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)
    )


class Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = conv_bn_relu(c, c)
        self.conv2 = nn.Sequential(nn.Conv3d(c, c, 3, padding=1, bias=False), nn.BatchNorm3d(c))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + x)


class Up(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.deconv = nn.ConvTranspose3d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return self.relu(self.bn(self.deconv(x, output_size=list(size))))


class HandDSMNet(nn.Module):
    """DSM-Net: 3D ResNet encoder (32, 64, 128), FC 1024 classifier, shared deconv decoder."""

    def __init__(self, classes: int = 22, seg_classes: int = 2):
        super().__init__()
        self.stem = conv_bn_relu(1, 32)
        self.pool = nn.MaxPool3d(2, 2, ceil_mode=True)
        self.res1 = Residual(32)
        self.down2, self.res2 = conv_bn_relu(32, 64, 2), Residual(64)
        self.down3, self.res3 = conv_bn_relu(64, 128, 2), Residual(128)
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(128, 1024), nn.ReLU(inplace=True), nn.Dropout(0.7)
        )
        self.cls = nn.Linear(1024, classes)
        self.up1, self.up2 = Up(128, 64), Up(64, 32)
        self.dres = Residual(32)
        self.up3 = Up(32, 32)
        self.seg = nn.Conv3d(32, seg_classes, 1)
        self.rec = nn.Conv3d(32, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s1 = self.stem(x)
        s2 = self.res1(self.pool(s1))
        s4 = self.res2(self.down2(s2))
        s8 = self.res3(self.down3(s4))
        logits = self.cls(self.fc(s8))
        d = self.up1(s8, s4.shape[2:]) + s4
        d = self.dres(self.up2(d, s2.shape[2:]) + s2)
        d = self.up3(d, s1.shape[2:]) + s1
        return logits, self.seg(d), self.rec(d)
