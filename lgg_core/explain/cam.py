"""Class-activation maps (pytorch-grad-cam) for the LGG classifiers and segmenters, and how much of them hits the tumor.

Classifiers are explained for their single tumor logit; segmenters with ``SemanticSegmentationTarget``: the sum of
the tumor logits inside a mask (the model's own prediction or the ground truth).

Each map also gets a faithfulness score (ROAD, Rong et al. 2022, as pytorch-grad-cam ships it): the share
:data:`ROAD_REMOVED` of pixels the map ranks highest, and separately the same share it ranks lowest, are removed
(filled in by linear imputation from their neighbours, so the model sees no sharp holes; ROAD's 0.01 noise
is left out, so the same map always gets the same score) and the model's tumor score is read again.
Faithfulness = score with the least relevant pixels removed − score with the most relevant removed, in [-1, 1]:
above 0 the pixels the map points at matter more to the model than the ones it ignores; about 0 for a map no better
than a random ranking; below 0 the map points away from the evidence.
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
from pytorch_grad_cam.metrics.perturbation_confidence import (PerturbationConfidenceMetric, RemoveLeastRelevantFirst,
                                                             RemoveMostRelevantFirst)
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
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
# What each entry of _LAYERS and _SMP_LAYERS is, in words; every name there occurs in one architecture family only.
_LAYER_WORDS = {
    "layer4": "backbone, deepest (1/32 resolution)",
    "layer3": "backbone, 1/16 resolution",
    "layer2": "backbone, 1/8 resolution",
    "down.3": "encoder, deepest",
    "down.2": "encoder, second deepest",
    "up.0": "decoder, first (coarsest) stage",
    "up.2": "decoder, third stage",
    "up.3": "decoder, last (finest) stage",
    "encoder.4": "encoder, deepest",
    "encoder.3": "encoder, second deepest",
    "decoder.0": "decoder, first (coarsest) stage",
    "decoder.2": "decoder, middle stage",
    "decoder.4": "decoder, last (finest) stage",
    "4": "encoder, deepest (second conv)",
    "1": "encoder, first conv",
    "7": "decoder, first transposed conv",
    "encoder": "encoder, deepest (its output)",
    "decoder": "decoder, last (its output)",
    "encoder.layer4": "encoder, deepest (ResNet)",
    "encoder.features.18": "encoder, deepest (VGG)",
    "decoder.blocks.0": "decoder, first (coarsest) block",
    "decoder.blocks.2": "decoder, middle block",
    "decoder.blocks.4": "decoder, last (finest) block",
}
# Share of pixels ROAD removes from each end of the map's ranking. A fifth covers a typical tumor with its rim on a
# map that finds it, and costs two imputations (about 0.3 s each at 256² on one CPU core) and two forward passes.
ROAD_REMOVED = 0.2

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
        faithfulness: ROAD score in [-1, 1] (see the module docstring): that ``score`` with the least relevant
            pixels removed minus with the most relevant removed; None when the map is zero everywhere or not asked.
    """

    cam: np.ndarray
    inside_share: float | None
    area_share: float | None
    score: float
    faithfulness: float | None = None

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


def describe_layer(model: LGGModel, name: str) -> str:
    """``name`` with what it is in ``model`` (for a layer picker), e.g. ``"down.3 · encoder, deepest"``."""
    words = _LAYER_WORDS.get(name) or type(dict(model.net.named_modules())[name]).__name__
    return f"{name} · {words}"


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
    faithfulness: bool = True,
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
        faithfulness: whether to compute :attr:`Explanation.faithfulness` (two more forward passes).

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
        target, region = ClassifierOutputTarget(0), None
    elif target_mask is None or not np.asarray(target_mask).any():
        raise ExplainError("the target mask is empty: a segmenter's CAM explains the tumor logits inside a mask; "
                           "pick a slice where the model (or the ground truth) shows tumor")
    else:
        target = _segmentation_target(x, np.asarray(target_mask, bool))
        region = target.mask.bool()
    lock, private = _private_copy(model)
    with lock:
        target_layer = dict(private.net.named_modules())[layer]
        with CAM_METHODS[method](model=private, target_layers=[target_layer]) as cam_method:
            cam = cam_method(input_tensor=x, targets=[target])[0]
            output = cam_method.outputs.detach()
        private.zero_grad(set_to_none=True)
        # After the CAM's context exits its hooks are gone, so these plain forward passes record nothing.
        road = road_faithfulness(private, x, cam, region) if faithfulness and cam.max() > 0 else None
    cam = _to_slice_size(cam, image.shape[:2])
    score = _score(output, model.task, target_mask)
    if true_mask is None or not np.asarray(true_mask).any():
        return Explanation(cam, None, None, score, road)
    true_mask = np.asarray(true_mask, bool)
    return Explanation(cam, energy_inside(cam, true_mask), float(true_mask.mean()), score, road)


class _TumorScore:
    """ROAD's target: tumor probability (classifier) or mean tumor probability inside ``region`` (segmenter).

    Probabilities rather than the CAM's logit sums keep the score in [0, 1] whatever the size of the region.
    """

    def __init__(self, region: torch.Tensor | None) -> None:
        self.region = region

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        prob = torch.sigmoid(output.float())
        return prob[0] if self.region is None else prob[0][self.region.to(prob.device)].mean()


def road_faithfulness(model: nn.Module, x: torch.Tensor, cam: np.ndarray, region: torch.Tensor | None) -> float:
    """ROAD faithfulness of ``cam`` for ``model`` on one normalized input (see the module docstring).

    Args:
        model: the classifier or segmenter (eval mode, no CAM hooks attached).
        x: (1, 3, h, w) model input.
        cam: (h, w) map at the input's resolution.
        region: segmenters: (h, w) bool mask whose mean tumor probability is scored; None for classifiers.

    Returns:
        Score with the least relevant ``ROAD_REMOVED`` of pixels removed minus with the most relevant removed.
    """
    # ROAD thresholds at a percentile, so ties (a map that is 0 on most pixels) would remove far more than the
    # share asked for. Ranks make the share exact; ties are broken at random, a fixed seed keeps reruns equal.
    rng = np.random.default_rng(0)
    order = np.lexsort((rng.random(cam.size), cam.ravel()))
    ranks = np.empty(cam.size, np.float32)
    ranks[order] = np.arange(cam.size) / (cam.size - 1)
    ranks = ranks.reshape(cam.shape)[None]
    # Both keep the pixels below this percentile of their ranking: MoRF ranks by the map, LeRF by its inverse.
    percentile = 100 * (1 - ROAD_REMOVED)
    targets, imputer = [_TumorScore(region)], NoisyLinearImputer(noise=0.0)
    scores = [PerturbationConfidenceMetric(removal(percentile, imputer))(x, ranks, targets, model, return_diff=False)
              for removal in (RemoveLeastRelevantFirst, RemoveMostRelevantFirst)]
    return float(scores[0][0] - scores[1][0])


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
