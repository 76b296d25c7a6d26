"""Attention U-Net (Oktay et al., 2018): a U-Net whose skip connections pass through attention gates."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model
from .unet import UNet, Up


class AttentionGate(nn.Module):
    """Additive attention gate that rescales a skip feature map by a learned [0, 1] map.

    As in the paper, the gating signal is the coarser decoder feature (half the skip's resolution):
    the skip is projected with a stride-2 conv to meet it, and the attention map is upsampled back.

    Args:
        skip_channels: Channels of the skip (encoder) feature.
        gate_channels: Channels of the gating (decoder) feature.
        inter_channels: Channels of the intermediate projection.
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.theta = nn.Conv2d(skip_channels, inter_channels, 2, stride=2, bias=False)
        self.phi = nn.Conv2d(gate_channels, inter_channels, 1)
        self.psi = nn.Conv2d(inter_channels, 1, 1)

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        attention = torch.sigmoid(self.psi(F.relu(self.theta(skip) + self.phi(gate))))
        attention = F.interpolate(attention, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return skip * attention


class AttentionUp(Up):
    """U-Net decoder step whose skip is first filtered by an :class:`AttentionGate`."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels)
        self.gate = AttentionGate(out_channels, in_channels, max(out_channels // 2, 1))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return super().forward(x, self.gate(skip, x))


class AttentionUNet(UNet):
    """:class:`UNet` with attention-gated skip connections; same arguments."""

    up_block = AttentionUp


@register_model("attention-unet", "segment", "Attention U-Net from scratch (Oktay 2018): attention gates on the skips")
def attention_unet(base_width: int = 24) -> AttentionUNet:
    return AttentionUNet(base_width=base_width)
