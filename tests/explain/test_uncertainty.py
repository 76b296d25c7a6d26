"""TTA uncertainty: zero when the views agree, positive when they do not, views mapped back exactly, and its
correlation with Dice."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from lgg_core.explain.uncertainty import (FLIP, VIEWS, Correlation, tta_uncertainty, uncertainty_vs_dice,
                                          view_probabilities)
from lgg_core.models import create_model
from lgg_core.serving.inference import predict

ALL_VIEWS = tuple(VIEWS)


def slices(n: int = 3, size: int = 16) -> np.ndarray:
    """Random uint8 slices (N, H, W, 3): no symmetry a wrongly undone view could hide behind."""
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def pixelwise(images: np.ndarray) -> np.ndarray:
    """A model that reads each pixel alone: it commutes with every flip and turn, so its views agree."""
    return images[..., 1].astype(np.float32) / 255


def left_half(images: np.ndarray) -> np.ndarray:
    """A model that calls the left half tumor whatever it sees: its mirrored view disagrees everywhere."""
    out = np.zeros(images.shape[:3], np.float32)
    out[:, :, : images.shape[2] // 2] = 1.0
    return out


@pytest.mark.parametrize("views", [FLIP, ALL_VIEWS], ids=["flip", "dihedral"])
def test_views_that_agree_give_zero(views: tuple[str, ...]) -> None:
    images = slices()
    stack = view_probabilities(pixelwise, images, views)
    assert stack.shape == (len(views), *images.shape[:3])
    for probs in stack:  # every view mapped back onto the slice
        np.testing.assert_array_equal(probs, pixelwise(images))
    result = tta_uncertainty(pixelwise, images, views)
    assert result.pixel.shape == images.shape[:3] and result.slice.shape == (len(images),)
    assert not result.pixel.any() and not result.slice.any()


def test_views_that_disagree_give_the_maximum() -> None:
    result = tta_uncertainty(left_half, slices())
    # The slice says left, its mirror right: every pixel is 1 in one view and 0 in the other.
    np.testing.assert_array_equal(result.pixel, 0.25)
    np.testing.assert_array_equal(result.slice, 0.25)


def test_uncertainty_stays_in_range_and_scores_the_tumor_region() -> None:
    rng = np.random.default_rng(1)
    images = slices(4)

    def noisy(batch: np.ndarray) -> np.ndarray:
        return rng.random(batch.shape[:3]).astype(np.float32)

    result = tta_uncertainty(noisy, images, ALL_VIEWS)
    assert result.pixel.dtype == np.float32 and 0 <= result.pixel.min() and result.pixel.max() <= 0.25
    assert np.all(result.slice > 0) and np.all(result.slice <= 0.25)

    def two_spots(batch: np.ndarray) -> np.ndarray:
        """Certain background but at (5, 5) and its mirror pixel (5, 10), whatever the input: 0.9 and 0.1."""
        out = np.zeros(batch.shape[:3], np.float32)
        out[:, 5, 5], out[:, 5, 10] = 0.9, 0.1
        return out

    spots = tta_uncertainty(two_spots, images)
    assert spots.pixel[:, 5, [5, 10]] == pytest.approx(0.16)  # variance of (0.9, 0.1)
    assert spots.pixel.sum() == pytest.approx(len(images) * 2 * 0.16)  # and 0 everywhere else
    # Mean over the two pixels some view calls tumor, not over the 256 of the slice.
    assert spots.slice == pytest.approx(0.16)
    quiet = tta_uncertainty(lambda batch: np.zeros(batch.shape[:3], np.float32), images)
    assert not quiet.slice.any()  # no view sees tumor: the views agree the slice is clear


def test_given_probabilities_save_the_identity_pass() -> None:
    images, seen = slices(), []

    def counting(batch: np.ndarray) -> np.ndarray:
        seen.append(len(batch))
        return left_half(batch)

    without = tta_uncertainty(counting, images)
    with_probs = tta_uncertainty(counting, images, probs=left_half(images))
    assert seen == [2 * len(images), len(images)]  # all views batched in one call; then the mirror only
    np.testing.assert_array_equal(without.pixel, with_probs.pixel)


def test_a_real_segmenter_through_predict() -> None:
    torch.manual_seed(0)
    model = create_model("cnn-encdec", base_width=4).eval()
    images = slices(2, 32)
    result = tta_uncertainty(partial(predict, model, task="segment"), images)
    assert result.pixel.shape == (2, 32, 32) and result.slice.shape == (2,)
    assert 0 <= result.pixel.min() and result.pixel.max() <= 0.25
    assert result.pixel.max() > 0  # a randomly initialised CNN is not mirror-symmetric


def test_spearman_over_tumor_slices_only() -> None:
    uncertainty = np.array([0.01, 0.02, 0.03, 0.04, 0.5, 0.0])
    dice = np.array([0.9, 0.8, 0.6, 0.1, 1.0, 0.0])
    tumor = np.array([True, True, True, True, False, False])
    found = uncertainty_vs_dice(uncertainty, dice, tumor)
    assert isinstance(found, Correlation) and found.n == 4
    assert found.rho == pytest.approx(-1.0)  # the two tumor-free slices, which would spoil it, are left out
    assert 0 <= found.p_value < 0.05
    assert uncertainty_vs_dice(uncertainty, -dice, tumor).rho == pytest.approx(1.0)


@pytest.mark.parametrize("uncertainty,dice", [([0.1, 0.2], [0.5, 0.6]), ([0.1, 0.1, 0.1], [0.2, 0.5, 0.9]),
                                              ([0.1, 0.2, 0.3], [1.0, 1.0, 1.0])],
                         ids=["two slices", "constant uncertainty", "constant dice"])
def test_spearman_is_undefined_without_enough_variation(uncertainty: list[float], dice: list[float]) -> None:
    found = uncertainty_vs_dice(np.array(uncertainty), np.array(dice), np.ones(len(dice), bool))
    assert np.isnan(found.rho) and np.isnan(found.p_value) and found.n == len(dice)
