"""Class-activation maps (pytorch-grad-cam) for the LGG classifiers and segmenters, and how much of them hits the tumor.

Classifiers are explained for their single tumor logit; segmenters with ``SemanticSegmentationTarget``: the sum of
the tumor logits inside a mask (the model's own prediction or the ground truth).
"""
from __future__ import annotations

import copy
import threading
import weakref
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, SemanticSegmentationTarget
from torch import nn

from lgg_core.models import LGGModel
from lgg_core.data.transforms import normalize, resize_input

CAM_METHODS = {"Grad-CAM": GradCAM, "Grad-CAM++": GradCAMPlusPlus, "HiResCAM": HiResCAM}

# Per architecture, sensible layers first: deep encoder features (what the model "sees"), then decoder stages
# (where those features become the mask, sharper but less semantic). Names are relative to ``LGGModel.net``.
_LAYERS = {
    "resnet18": ["layer4", "layer3", "layer2"],
    "resnet50": ["layer4", "layer3", "layer2"],
    "unet": ["down.3", "down.2", "up.0", "up.2", "up.3"],
    "unet-mini": ["down.3", "down.2", "up.0", "up.2", "up.3"],
    "attention-unet": ["down.3", "down.2", "up.0", "up.2", "up.3"],
    "segnet": ["encoder.4", "encoder.3", "decoder.0", "decoder.2", "decoder.4"],
    "cnn-encdec": ["4", "1", "7"],
    "resnet-encdec": ["encoder", "decoder"],
}
# smp models share one layout whatever the encoder.
_SMP_LAYERS = ["encoder.layer4", "encoder.features.18", "decoder.blocks.0", "decoder.blocks.2", "decoder.blocks.4"]

# pytorch-grad-cam hooks the model it is given and runs backward through it. The app shares one model object
# between sessions (st.cache_resource), where those hooks would record other sessions' forward passes (wrong maps,
# even aborts). So each model gets one private copy for CAMs, used by one explanation at a time; predictions on
# the shared model never see a hook.
_PRIVATE: weakref.WeakKeyDictionary[LGGModel, tuple[threading.Lock, LGGModel]] = weakref.WeakKeyDictionary()
_PRIVATE_LOCK = threading.Lock()


class ExplainError(ValueError):
    """The explanation cannot be computed for this input; the message says why."""


@dataclass(frozen=True)
class Explanation:
    """A CAM at slice resolution with the numbers that say whether it points at the tumor.

    Attributes:
        cam: (H, W) float map in [0, 1].
        inside_share: share of CAM energy inside the ground-truth mask (None when the slice has no tumor).
        area_share: share of the slice covered by that mask: what a CAM spread evenly would score.
        score: the model's tumor probability (classifier) or mean probability inside the target mask (segmenter).
    """

    cam: np.ndarray
    inside_share: float | None
    area_share: float | None
    score: float

    @property
    def lift(self) -> float | None:
        """``inside_share / area_share``: above 1 means the CAM concentrates on the tumor."""
        if self.inside_share is None or not self.area_share:
            return None
        return self.inside_share / self.area_share


def layer_options(model: LGGModel) -> list[str]:
    """Target layers to offer for ``model``, best first (the last few conv blocks for unknown architectures)."""
    names = dict(model.net.named_modules())
    preferred = _LAYERS.get(model.arch) or (_SMP_LAYERS if "decoder.blocks.0" in names else [])
    found = [n for n in preferred if n in names]
    if found:
        return found
    convs = [n for n, m in names.items() if isinstance(m, nn.Conv2d)]
    return convs[-4:-1][::-1] or convs[-1:]


def energy_inside(cam: np.ndarray, mask: np.ndarray) -> float | None:
    """Share of the CAM's total energy that falls inside ``mask`` (None for an empty mask or a zero CAM)."""
    cam = np.asarray(cam, np.float64)
    total = float(cam.sum())
    if not mask.any() or total <= 0:
        return None
    # Summation order differs between the two sums, so rounding alone could push the share past 1.
    return min(1.0, float(cam[mask].sum()) / total)


def _segmentation_target(x: torch.Tensor, target_mask: np.ndarray) -> SemanticSegmentationTarget:
    # Segmenters return logits at their input's size (a registry test guarantees it), which is below 256² for
    # models trained on downsized slices: the mask must match.
    mask = torch.as_tensor(target_mask, dtype=torch.float32)[None, None]
    mask = F.interpolate(mask, size=tuple(x.shape[-2:]), mode="nearest")[0, 0].numpy()
    return SemanticSegmentationTarget(0, mask)


def explain(
    model: LGGModel,
    image: np.ndarray,
    method: str = "Grad-CAM",
    layer: str | None = None,
    target_mask: np.ndarray | None = None,
    true_mask: np.ndarray | None = None,
    input_size: int | None = None,
) -> Explanation:
    """CAM of one uint8 slice (H, W, 3); safe to call from many threads on one shared model.

    Args:
        model: classifier or segmenter in eval mode.
        image: the slice.
        method: a key of ``CAM_METHODS``.
        layer: a name from :func:`layer_options` (default: its first).
        target_mask: segmenters only: the (H, W) region whose tumor logits are explained (prediction or truth).
        true_mask: ground truth, for ``inside_share``; None when unknown (uploads).
        input_size: the size the model was trained at.

    Raises:
        ExplainError: unknown method or layer, or a segmenter target mask that is missing or empty.
    """
    if method not in CAM_METHODS:
        raise ExplainError(f"unknown CAM method {method!r}; choose one of {', '.join(CAM_METHODS)}")
    layer = layer or layer_options(model)[0]
    if layer not in dict(model.net.named_modules()):
        raise ExplainError(f"{model.arch} has no layer {layer!r}; choose one of {', '.join(layer_options(model))}")
    device = next(model.parameters()).device
    x = resize_input(normalize(image[None]).to(device), input_size)
    if model.task == "classify":
        target = ClassifierOutputTarget(0)
    elif target_mask is None or not np.asarray(target_mask).any():
        raise ExplainError("the target mask is empty: a segmenter's CAM explains the tumor logits inside a mask; "
                           "pick a slice where the model (or the ground truth) shows tumor")
    else:
        target = _segmentation_target(x, np.asarray(target_mask, bool))
    lock, private = _private_copy(model)
    with lock:
        target_layer = dict(private.net.named_modules())[layer]
        with CAM_METHODS[method](model=private, target_layers=[target_layer]) as cam_method:
            cam = cam_method(input_tensor=x, targets=[target])[0]
            output = cam_method.outputs.detach()
        private.zero_grad(set_to_none=True)
    cam = _to_slice_size(cam, image.shape[:2])
    score = _score(output, model.task, target_mask)
    if true_mask is None or not np.asarray(true_mask).any():
        return Explanation(cam, None, None, score)
    true_mask = np.asarray(true_mask, bool)
    return Explanation(cam, energy_inside(cam, true_mask), float(true_mask.mean()), score)


def _private_copy(model: LGGModel) -> tuple[threading.Lock, LGGModel]:
    """The lock and the CAM-only copy of ``model`` (made on first use; it costs one more copy of the weights)."""
    with _PRIVATE_LOCK:
        entry = _PRIVATE.get(model)
        if entry is None:
            entry = _PRIVATE[model] = (threading.Lock(), copy.deepcopy(model).eval())
        return entry


def _to_slice_size(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if cam.shape != shape:
        cam = F.interpolate(torch.as_tensor(cam)[None, None], size=shape, mode="bilinear", align_corners=False)[0, 0]
        cam = cam.numpy()
    return np.clip(np.nan_to_num(cam), 0, 1).astype(np.float32)


def _score(output: torch.Tensor, task: str, target_mask: np.ndarray | None) -> float:
    prob = torch.sigmoid(output.float())
    if task == "classify":
        return float(prob.flatten()[0])
    prob = F.interpolate(prob, size=np.asarray(target_mask).shape, mode="bilinear", align_corners=False)[0, 0]
    return float(prob.cpu().numpy()[np.asarray(target_mask, bool)].mean())
