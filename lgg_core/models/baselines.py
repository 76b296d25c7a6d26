"""Small baseline segmenters: a plain conv encoder-decoder and a residual encoder-decoder (no skips)."""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from .blocks import conv_bn_relu
from .registry import register_model


@register_model("cnn-encdec", "segment", "Baseline CNN: two conv+pool layers, then two transposed-conv layers")
def cnn_encdec(base_width: int = 32) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, base_width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(base_width, 2 * base_width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.ConvTranspose2d(2 * base_width, base_width, 2, stride=2),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(base_width, 1, 2, stride=2),
    )


def residual_block(in_channels: int, out_channels: int, stride: int = 1) -> BasicBlock:
    """torchvision's ResNet basic block, with the 1x1 projection shortcut it needs when the shape changes."""
    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
        )
    return BasicBlock(in_channels, out_channels, stride=stride, downsample=shortcut)


class ResidualEncoderDecoder(nn.Module):
    """Encoder of strided residual blocks, decoder of (bilinear x2 upsample + residual block); no skips.

    Args:
        in_channels: Input channels.
        classes: Output logit channels.
        base_width: Channels after the stem; each of the ``depth`` stages doubles them.
        depth: Number of stride-2 stages (output stride ``2**depth``).
    """

    def __init__(self, in_channels: int = 3, classes: int = 1, base_width: int = 16, depth: int = 4) -> None:
        super().__init__()
        widths = [base_width * 2**level for level in range(depth + 1)]
        pairs = list(zip(widths, widths[1:]))
        self.stem = conv_bn_relu(in_channels, widths[0])
        self.encoder = nn.Sequential(*(residual_block(a, b, stride=2) for a, b in pairs))
        self.decoder = nn.Sequential(
            *(
                nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), residual_block(b, a))
                for a, b in reversed(pairs)
            )
        )
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.encoder(self.stem(x))))


@register_model("resnet-encdec", "segment", "Residual encoder-decoder from scratch: 4 strided ResNet stages, no skips")
def resnet_encdec(base_width: int = 16) -> ResidualEncoderDecoder:
    return ResidualEncoderDecoder(base_width=base_width)
