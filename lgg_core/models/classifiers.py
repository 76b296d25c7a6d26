"""Tumor-present classifiers (one logit per slice) from torchvision and timm.

``pretrained=True`` asks for ImageNet weights, which needs internet access; the default is random init.
"""
from __future__ import annotations

import timm
import torchvision.models as tvm
from torch import nn

from .registry import register_model


def _single_logit_resnet(model: tvm.ResNet) -> tvm.ResNet:
    model.fc = nn.Linear(model.fc.in_features, 1)
    return model


@register_model("resnet18", "classify", "ResNet-18 (torchvision) tumor-present classifier")
def resnet18(pretrained: bool = False) -> tvm.ResNet:
    return _single_logit_resnet(tvm.resnet18(weights="DEFAULT" if pretrained else None))


@register_model("resnet50", "classify", "ResNet-50 (torchvision) tumor-present classifier")
def resnet50(pretrained: bool = False) -> tvm.ResNet:
    return _single_logit_resnet(tvm.resnet50(weights="DEFAULT" if pretrained else None))


@register_model("inception-v3", "classify", "Inception-v3 (torchvision, no auxiliary head) tumor-present classifier")
def inception_v3(pretrained: bool = False) -> tvm.Inception3:
    if pretrained:
        # torchvision only loads these weights with the aux head present, and they expect its
        # transform_input re-normalisation of ImageNet-normalised inputs; drop the head afterwards.
        model = tvm.inception_v3(weights="DEFAULT")
        model.aux_logits, model.AuxLogits = False, None
    else:
        model = tvm.inception_v3(weights=None, aux_logits=False, transform_input=False, init_weights=True)
    model.fc = nn.Linear(model.fc.in_features, 1)
    return model


@register_model("inception-resnet-v2", "classify", "Inception-ResNet-v2 (timm) tumor-present classifier")
def inception_resnet_v2(pretrained: bool = False) -> nn.Module:
    return timm.create_model("inception_resnet_v2", pretrained=pretrained, num_classes=1)
