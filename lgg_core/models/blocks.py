"""Conv building blocks shared by the hand-written architectures."""
from __future__ import annotations

from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 'same' convolution -> BatchNorm -> ReLU (the conv has no bias since BatchNorm adds one)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def conv_stack(in_channels: int, out_channels: int, depth: int = 2) -> nn.Sequential:
    """``depth`` chained :func:`conv_bn_relu`; the first one changes the channel count."""
    return nn.Sequential(
        conv_bn_relu(in_channels, out_channels),
        *(conv_bn_relu(out_channels, out_channels) for _ in range(depth - 1)),
    )
