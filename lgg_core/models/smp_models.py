"""Segmenters from segmentation-models-pytorch (smp).

Every builder takes ``encoder_name`` and ``encoder_weights`` (``None`` = random init, so nothing is
downloaded; pass ``"imagenet"`` when online); extra kwargs go to the smp constructor.
"""
from __future__ import annotations

import segmentation_models_pytorch as smp
from torch import nn

from .registry import register_model


def _smp(arch: str, encoder_name: str, encoder_weights: str | None, **kwargs) -> nn.Module:
    return smp.create_model(
        arch, encoder_name=encoder_name, encoder_weights=encoder_weights, in_channels=3, classes=1, **kwargs
    )


@register_model("deeplabv3plus", "segment", "DeepLabV3+ (smp) with a ResNet-101 encoder, as in the reference work")
def deeplabv3plus(encoder_name: str = "resnet101", encoder_weights: str | None = None, **kwargs) -> nn.Module:
    return _smp("deeplabv3plus", encoder_name, encoder_weights, **kwargs)


@register_model("unet-vgg16", "segment", "U-Net (smp) with a VGG-16-BN encoder")
def unet_vgg16(encoder_name: str = "vgg16_bn", encoder_weights: str | None = None, **kwargs) -> nn.Module:
    return _smp("unet", encoder_name, encoder_weights, **kwargs)


@register_model("unet-resnet34", "segment", "U-Net (smp) with a ResNet-34 encoder")
def unet_resnet34(encoder_name: str = "resnet34", encoder_weights: str | None = None, **kwargs) -> nn.Module:
    return _smp("unet", encoder_name, encoder_weights, **kwargs)


@register_model("unet-mobilenetv2", "segment", "U-Net (smp) with a MobileNetV2 encoder: light enough for CPU hosts")
def unet_mobilenetv2(encoder_name: str = "mobilenet_v2", encoder_weights: str | None = None, **kwargs) -> nn.Module:
    return _smp("unet", encoder_name, encoder_weights, **kwargs)


@register_model("unet-resnet50", "segment", "U-Net (smp) with a ResNet-50 encoder, all layers trainable")
def unet_resnet50(encoder_name: str = "resnet50", encoder_weights: str | None = None, **kwargs) -> nn.Module:
    return _smp("unet", encoder_name, encoder_weights, **kwargs)


class StemFrozenUnet(smp.Unet):
    """smp U-Net whose ResNet encoder stem (conv1, bn1) and layer1 are frozen.

    Frozen means no gradients and BatchNorm running statistics that stay fixed: :meth:`train`
    keeps the frozen part in eval mode, which is what fine-tuning from ImageNet weights expects.
    """

    frozen_modules = ("conv1", "bn1", "layer1")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in self.frozen_modules:
            getattr(self.encoder, name).requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> StemFrozenUnet:
        super().train(mode)
        for name in self.frozen_modules:
            getattr(self.encoder, name).eval()
        return self


@register_model(
    "unet-resnet50-frozen", "segment", "U-Net (smp) with a ResNet-50 encoder whose stem and layer1 are frozen"
)
def unet_resnet50_frozen(encoder_name: str = "resnet50", encoder_weights: str | None = None, **kwargs) -> nn.Module:
    return StemFrozenUnet(
        encoder_name=encoder_name, encoder_weights=encoder_weights, in_channels=3, classes=1, **kwargs
    )


@register_model("unetplusplus", "segment", "U-Net++ (smp, nested dense skips) with a ResNet-34 encoder")
def unetplusplus(encoder_name: str = "resnet34", encoder_weights: str | None = None, **kwargs) -> nn.Module:
    return _smp("unetplusplus", encoder_name, encoder_weights, **kwargs)


@register_model("fpn", "segment", "Feature Pyramid Network (smp) with a ResNet-34 encoder")
def fpn(encoder_name: str = "resnet34", encoder_weights: str | None = None, **kwargs) -> nn.Module:
    return _smp("fpn", encoder_name, encoder_weights, **kwargs)


@register_model("segformer", "segment", "SegFormer (smp) with a MiT-B0 transformer encoder")
def segformer(encoder_name: str = "mit_b0", encoder_weights: str | None = None, **kwargs) -> nn.Module:
    return _smp("segformer", encoder_name, encoder_weights, **kwargs)
