"""Classic U-Net (Ronneberger et al., 2015) written from scratch.

Differences from the paper, as in most modern re-implementations: 'same' padding so the output
matches the input size, and BatchNorm after every convolution. Upsampling uses 2x2 transposed
convolutions ("up-convolutions") as in the paper.
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import conv_stack
from .registry import register_model


class Up(nn.Module):
    """Decoder step: 2x2 transposed conv (halves channels), concatenate the skip, two 3x3 convs."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = conv_stack(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """U-Net with ``depth`` down/up levels; channel widths ``base_width * 2**level``.

    Args:
        in_channels: Input channels.
        classes: Output logit channels.
        base_width: Channels of the first level (64 in the paper).
        depth: Number of down-sampling (and up-sampling) steps.
    """

    up_block: type[Up] = Up

    def __init__(self, in_channels: int = 3, classes: int = 1, base_width: int = 64, depth: int = 4) -> None:
        super().__init__()
        widths = [base_width * 2**level for level in range(depth + 1)]
        pairs = list(zip(widths, widths[1:]))
        self.stem = conv_stack(in_channels, widths[0])
        self.down = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), conv_stack(a, b)) for a, b in pairs)
        self.up = nn.ModuleList(self.up_block(b, a) for a, b in reversed(pairs))
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.up:
            x = up(x, skips.pop())
        return self.head(x)


@register_model(
    "unet", "segment", "Classic U-Net from scratch (Ronneberger 2015), 4 levels, BatchNorm, transposed-conv up"
)
def unet(base_width: int = 64) -> UNet:
    return UNet(base_width=base_width)


@register_model("unet-mini", "segment", "Small from-scratch U-Net (base width 16, ~1.9M params) for fast CPU training")
def unet_mini(base_width: int = 16) -> UNet:
    return UNet(base_width=base_width)
