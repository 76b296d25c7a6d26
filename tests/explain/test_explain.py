"""CAMs: every method and offered layer runs for a classifier and a segmenter; the energy share and the ROAD
faithfulness mean what they say; every offered layer has a description."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch import nn

from lgg_core.explain import cam as cam_module
from lgg_core.explain.cam import (CAM_METHODS, ExplainError, describe_layer, energy_inside, explain, layer_options,
                                  road_faithfulness)
from lgg_core.models import LGGModel
from lgg_core.serving.inference import predict


@pytest.fixture(scope="module")
def slice_and_mask() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    mask = np.zeros((256, 256), bool)
    mask[100:140, 90:150] = True
    return rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), mask


def test_energy_inside() -> None:
    cam, mask = np.zeros((4, 4)), np.zeros((4, 4), bool)
    cam[0, :2], mask[0, 0] = 1.0, True
    assert energy_inside(cam, mask) == 0.5
    assert energy_inside(cam, np.zeros((4, 4), bool)) is None and energy_inside(np.zeros((4, 4)), mask) is None


@pytest.mark.parametrize("arch,kwargs,size", [("resnet18", {}, 64), ("unet-mini", {"base_width": 4}, None)])
def test_every_method_and_layer(arch: str, kwargs: dict, size: int | None, slice_and_mask) -> None:
    image, mask = slice_and_mask
    model = LGGModel(arch, kwargs).eval()
    layers = layer_options(model)
    assert len(layers) >= 2
    for method in CAM_METHODS:
        for layer in layers:
            result = explain(model, image, method, layer, target_mask=mask, true_mask=mask, input_size=size)
            assert result.cam.shape == (256, 256) and 0 <= result.cam.min() and result.cam.max() <= 1
            assert result.inside_share is None or 0 <= result.inside_share <= 1
            assert result.area_share == pytest.approx(mask.mean())
            assert 0 <= result.score <= 1
            assert result.faithfulness is None or -1 <= result.faithfulness <= 1


def test_segmenter_needs_a_target_and_layers_are_checked(slice_and_mask) -> None:
    image, mask = slice_and_mask
    model = LGGModel("cnn-encdec", {"base_width": 4}).eval()
    with pytest.raises(ExplainError, match="target mask is empty"):
        explain(model, image, target_mask=np.zeros_like(mask))
    with pytest.raises(ExplainError, match="no layer"):
        explain(model, image, layer="nope", target_mask=mask)
    with pytest.raises(ExplainError, match="unknown CAM method"):
        explain(model, image, method="magic", target_mask=mask)


def test_concurrent_explanations_match_serial(slice_and_mask) -> None:
    # The app shares one model object between sessions: CAMs and plain predictions run on it from many threads.
    _, mask = slice_and_mask
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (6, 256, 256, 3), dtype=np.uint8)
    model = LGGModel("unet-mini", {"base_width": 8}).eval()
    jobs = [(image, method) for image in images for method in CAM_METHODS]
    serial = [explain(model, image, method, target_mask=mask, true_mask=mask) for image, method in jobs]
    reference = predict(model, images, "segment")
    with ThreadPoolExecutor(max_workers=6) as pool:
        cams = [pool.submit(explain, model, image, method, None, mask, mask) for image, method in jobs * 3]
        predictions = [pool.submit(predict, model, images, "segment") for _ in range(6)]
        for future, want in zip(cams, serial * 3):
            np.testing.assert_allclose(future.result().cam, want.cam, atol=1e-5)
            assert future.result().faithfulness == pytest.approx(want.faithfulness, abs=1e-5)
        for future in predictions:
            np.testing.assert_allclose(future.result(), reference, atol=1e-5)
    # The shared model itself is left as it was: no hooks, no gradients, still in eval mode.
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters()) and not model.training


class SquareMean(nn.Module):
    """A classifier whose tumor logit is the mean of a fixed square of the input: the only evidence it uses."""

    task = "classify"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 4 * x[:, :, 8:24, 8:24].mean(dim=(1, 2, 3))[:, None]


@pytest.mark.parametrize("region", [None, "segmenter"])
def test_road_scores_the_map_the_model_uses_above_its_inverse_and_random(region: str | None) -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64) * 0.3
    x[:, :, 8:24, 8:24] += 1.0  # the square carries the evidence; imputing it from its neighbours removes it
    model: nn.Module = SquareMean().eval()
    target = None
    if region:
        # A segmenter whose every logit is that square's mean; explained inside a region away from the square.
        model = nn.Sequential(SquareMean(), nn.Unflatten(1, (1, 1, 1)), nn.Upsample(size=(64, 64))).eval()
        target = torch.zeros(64, 64, dtype=torch.bool)
        target[40:56, 40:56] = True
    good = np.zeros((64, 64), np.float32)
    good[8:24, 8:24] = 1.0
    random = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    scores = {name: road_faithfulness(model, x, cam, target)
              for name, cam in (("good", good), ("inverse", 1 - good), ("random", random))}
    assert all(-1 <= v <= 1 for v in scores.values())
    assert scores["good"] > 0.3 and scores["good"] > scores["random"] > scores["inverse"], scores
    assert scores["good"] == road_faithfulness(model, x, good, target)  # deterministic


def test_faithfulness_is_optional(slice_and_mask) -> None:
    image, _ = slice_and_mask
    model = LGGModel("resnet18", {}).eval()
    assert explain(model, image, input_size=64, faithfulness=False).faithfulness is None
    assert isinstance(explain(model, image, input_size=64).faithfulness, float)


def test_every_offered_layer_is_described() -> None:
    names = {name for layers in cam_module._LAYERS.values() for name in layers} | set(cam_module._SMP_LAYERS)
    assert names <= set(cam_module._LAYER_WORDS)
    model = LGGModel("unet-mini", {"base_width": 4})
    assert describe_layer(model, "down.3") == "down.3 · encoder, deepest"
    assert describe_layer(model, "head") == "head · Conv2d"  # not offered by default: its module type
