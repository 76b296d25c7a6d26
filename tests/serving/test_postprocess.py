"""Checks of lgg_core.serving.postprocess: connected components and flip TTA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgg_core.models import LGGModel
from lgg_core.serving.inference import predict, predict_plain_and_tta
from lgg_core.serving.postprocess import (POSTPROCESSING, fill_holes, flip_tta, largest_component, postprocess,
                                        remove_small_components)


def test_largest_component_keeps_bigger_blob() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[1:3, 1:3] = True  # 4 px
    mask[5:8, 5:8] = True  # 9 px
    original = mask.copy()
    out = largest_component(mask)
    expected = np.zeros_like(mask)
    expected[5:8, 5:8] = True
    assert out.dtype == bool
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(mask, original)


def test_largest_component_2d_uses_8_connectivity() -> None:
    mask = np.zeros((6, 6), dtype=bool)
    mask[1, 1] = mask[2, 2] = mask[3, 3] = True  # diagonal chain: one component
    mask[0, 5] = mask[1, 5] = True
    expected = np.zeros_like(mask)
    expected[1, 1] = expected[2, 2] = expected[3, 3] = True
    np.testing.assert_array_equal(largest_component(mask), expected)


def test_largest_component_3d_is_volumetric() -> None:
    volume = np.zeros((4, 10, 10), dtype=bool)
    volume[:3, 1:3, 1:3] = True  # 12 voxels spanning slices 0-2
    volume[1, 5:8, 5:8] = True  # 9 voxels, the largest blob within slice 1
    volume[3, 3, 3] = True  # touches voxel (2, 2, 2) by a corner only: 26-connected
    out = largest_component(volume)
    expected = np.zeros_like(volume)
    expected[:3, 1:3, 1:3] = True
    expected[3, 3, 3] = True
    np.testing.assert_array_equal(out, expected)


def test_largest_component_empty_and_bad_shape() -> None:
    assert not largest_component(np.zeros((4, 4), dtype=bool)).any()
    assert not largest_component(np.zeros((2, 4, 4), dtype=bool)).any()
    with pytest.raises(ValueError):
        largest_component(np.zeros(4, dtype=bool))


def test_flip_tta_equivariant_model_unchanged() -> None:
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 1, kernel_size=1)
    x = torch.randn(2, 3, 5, 7)
    out = flip_tta(model, x)
    assert out.shape == (2, 1, 5, 7)
    assert not out.requires_grad
    torch.testing.assert_close(out, model(x).detach())


class RampSegmenter(torch.nn.Module):
    """Weights each column by its index, so it is not flip-equivariant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.arange(x.shape[-1], dtype=x.dtype)
        return (x * ramp).sum(dim=1, keepdim=True)


class RampClassifier(torch.nn.Module):
    """Sums RampSegmenter's output to one logit per image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return RampSegmenter()(x).sum(dim=(2, 3)).reshape(-1, 1)


def test_flip_tta_segmenter_averages_flipped_back() -> None:
    # Column j is weighted j on x and (W-1-j) on the flipped-back pass, so the
    # average weights every column by (W-1)/2.
    x = torch.randn(2, 1, 3, 5)
    out = flip_tta(RampSegmenter(), x)
    torch.testing.assert_close(out, x * 2.0)


def test_flip_tta_classifier_not_flipped_back() -> None:
    x = torch.randn(4, 1, 3, 5)
    out = flip_tta(RampClassifier(), x)
    assert out.shape == (4, 1)
    torch.testing.assert_close(out, (x * 2.0).sum(dim=(1, 2, 3)).reshape(-1, 1))


@pytest.mark.parametrize(("arch", "task", "size"), [("unet-mini", "segment", 128), ("resnet18", "classify", 64)])
def test_plain_and_tta_in_one_sweep_equal_two_predicts(arch: str, task: str, size: int) -> None:
    model = LGGModel(arch, {"base_width": 4} if arch == "unet-mini" else {}).eval()
    images = np.random.default_rng(0).integers(0, 256, (5, 256, 256, 3), dtype=np.uint8)
    plain, tta = predict_plain_and_tta(model, images, task, batch_size=2, input_size=size)
    np.testing.assert_array_equal(plain, predict(model, images, task, 2, size))
    np.testing.assert_array_equal(tta, predict(model, images, task, 2, size, tta=True))
    assert not np.array_equal(plain, tta)



def _blobs() -> np.ndarray:
    """A volume with a 3x3x3 tumor (27 voxels), a 2-voxel speck and a ring with a hole in one slice."""
    volume = np.zeros((4, 12, 12), dtype=bool)
    volume[0:3, 1:4, 1:4] = True
    volume[3, 10, 10:12] = True
    volume[3, 5:9, 5:9] = True
    volume[3, 6:8, 6:8] = False
    return volume


def test_small_components_go_and_the_rest_stay_whole() -> None:
    volume = _blobs()
    kept = remove_small_components(volume, 10)
    assert kept.sum() == 27 + 12  # the tumor and the ring; the speck is gone
    assert not kept[3, 10].any()
    assert remove_small_components(volume, 1).sum() == volume.sum()


def test_fill_holes_closes_a_ring_slice_by_slice() -> None:
    filled = fill_holes(_blobs())
    assert filled[3, 6:8, 6:8].all() and filled.sum() == _blobs().sum() + 4


@pytest.mark.parametrize("name", list(POSTPROCESSING))
def test_every_postprocessing_keeps_shape_and_empty_masks_and_is_idempotent(name: str) -> None:
    once = postprocess(_blobs(), name)
    assert once.dtype == bool and once.shape == _blobs().shape
    np.testing.assert_array_equal(postprocess(once, name), once)
    assert not postprocess(np.zeros((2, 5, 5), bool), name).any()
    assert not (once & ~fill_holes(_blobs())).any()  # nothing is added beyond filled holes


def test_an_unknown_postprocessing_lists_the_valid_ones() -> None:
    with pytest.raises(KeyError, match="valid: none, lcc"):
        postprocess(_blobs(), "dilate")
