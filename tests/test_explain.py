"""CAMs: every method and offered layer runs for a classifier and a segmenter; the energy share means what it says."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from lgg_core.explain.cam import CAM_METHODS, ExplainError, energy_inside, explain, layer_options
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
    serial = [explain(model, image, method, target_mask=mask, true_mask=mask).cam for image, method in jobs]
    reference = predict(model, images, "segment")
    with ThreadPoolExecutor(max_workers=6) as pool:
        cams = [pool.submit(explain, model, image, method, None, mask, mask) for image, method in jobs * 3]
        predictions = [pool.submit(predict, model, images, "segment") for _ in range(6)]
        for future, want in zip(cams, serial * 3):
            np.testing.assert_allclose(future.result().cam, want, atol=1e-5)
        for future in predictions:
            np.testing.assert_allclose(future.result(), reference, atol=1e-5)
    # The shared model itself is left as it was: no hooks, no gradients, still in eval mode.
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters()) and not model.training
