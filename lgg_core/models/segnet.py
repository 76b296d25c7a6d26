"""SegNet (Badrinarayanan et al., 2017): VGG-style encoder-decoder that upsamples with max-pooling indices."""
from __future__ import annotations

import torch
from torch import nn

from .blocks import conv_stack
from .registry import register_model

# Convs per stage of the VGG-16 encoder that SegNet mirrors.
_STAGE_DEPTHS = (2, 2, 3, 3, 3)
_STAGE_WIDTH_MULTIPLIERS = (1, 2, 4, 8, 8)


class SegNet(nn.Module):
    """Five-stage SegNet; the decoder reuses the encoder's pooling indices instead of learned upsampling.

    Args:
        in_channels: Input channels.
        classes: Output logit channels.
        base_width: Channels of the first stage (64 in the paper, giving ~29M parameters).
    """

    def __init__(self, in_channels: int = 3, classes: int = 1, base_width: int = 24) -> None:
        super().__init__()
        widths = [base_width * m for m in _STAGE_WIDTH_MULTIPLIERS]
        self.encoder = nn.ModuleList(
            conv_stack(c_in, c_out, depth) for c_in, c_out, depth in zip([in_channels, *widths], widths, _STAGE_DEPTHS)
        )
        # Decoder stage i mirrors encoder stage i and hands the width of stage i-1 on.
        self.decoder = nn.ModuleList(
            conv_stack(c_in, c_out, depth)
            for c_in, c_out, depth in reversed(list(zip(widths, [widths[0], *widths[:-1]], _STAGE_DEPTHS)))
        )
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, stride=2)
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        indices = []
        for stage in self.encoder:
            x, idx = self.pool(stage(x))
            indices.append(idx)
        for stage in self.decoder:
            x = stage(self.unpool(x, indices.pop()))
        return self.head(x)


@register_model(
    "segnet", "segment", "SegNet from scratch (Badrinarayanan 2017): decoder upsamples with pooling indices"
)
def segnet(base_width: int = 24) -> SegNet:
    return SegNet(base_width=base_width)
