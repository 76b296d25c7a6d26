"""The dashboard's pictures: TP/FP/FN colours exact and colour-blind safe, disagreement defined right, heatmaps and
their colour bars drawn from one scale."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from lgg_core.app.overlay import (CAM_SCALE, FN_COLOR, FP_COLOR, TP_COLOR, UNCERTAINTY_SCALE, colorbar, disagreement,
                                  disagreement_scale, error_legend, error_overlay, scaled_heatmap, window)

# Machado, Oliveira & Fernandes (2009) dichromacy simulation, severity 1, on linear RGB.
SIMULATIONS = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
}
SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
D65 = np.array([0.95047, 1.0, 1.08883])


def simulated_lab(rgb: np.ndarray, simulation: str) -> np.ndarray:
    """CIELAB of an sRGB colour (0–255) as seen with the given dichromacy."""
    c = np.asarray(rgb, float) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = SRGB_TO_XYZ @ np.clip(np.asarray(SIMULATIONS[simulation]) @ linear, 0, 1) / D65
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize("simulation", list(SIMULATIONS))
@pytest.mark.parametrize("alpha,gray", [(1.0, 0), (0.45, 90), (0.45, 180)])
def test_error_colours_stay_apart_with_colour_blindness(simulation: str, alpha: float, gray: int) -> None:
    # The colours as drawn: pure (contours) or blended over a dark and a bright MRI (fills). ΔE76 > 10 is an obvious
    # difference (about 2.3 is just noticeable).
    drawn = {c: alpha * np.array(c) + (1 - alpha) * gray for c in (TP_COLOR, FP_COLOR, FN_COLOR)}
    labs = {c: simulated_lab(v, simulation) for c, v in drawn.items()}
    background = simulated_lab([gray] * 3, simulation)
    for a, b in itertools.combinations(labs, 2):
        assert np.linalg.norm(labs[a] - labs[b]) > 10, (a, b)
    if alpha < 1:
        assert all(np.linalg.norm(lab - background) > 10 for lab in labs.values())


def synthetic() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 2x2 slice with one TP, FP, FN and TN pixel over distinct grays."""
    rgb = np.array([[[10] * 3, [60] * 3], [[110] * 3, [160] * 3]], np.uint8)
    pred = np.array([[1, 1], [0, 0]], bool)
    truth = np.array([[1, 0], [1, 0]], bool)
    return rgb, pred, truth


def test_error_overlay_colours_every_pixel_by_its_outcome() -> None:
    rgb, pred, truth = synthetic()
    out = error_overlay(rgb, pred, truth, "fill", alpha=1.0)
    assert out[0, 0].tolist() == list(TP_COLOR)
    assert out[0, 1].tolist() == list(FP_COLOR)
    assert out[1, 0].tolist() == list(FN_COLOR)
    assert out[1, 1].tolist() == [160] * 3  # true negative: untouched


def test_error_overlay_blends_with_the_opacity() -> None:
    rgb, pred, truth = synthetic()
    out = error_overlay(rgb, pred, truth, "fill", alpha=0.5)
    expected = [np.round(0.5 * g + 0.5 * np.array(c)).tolist() for g, c in ((10, TP_COLOR), (60, FP_COLOR), (110, FN_COLOR))]
    assert [out[0, 0].tolist(), out[0, 1].tolist(), out[1, 0].tolist()] == expected
    assert out[1, 1].tolist() == [160] * 3


def test_error_overlay_contour_outlines_each_outcome() -> None:
    rgb = np.zeros((9, 9, 3), np.uint8)
    truth = np.zeros((9, 9), bool)
    truth[1:8, 1:8] = True  # a 7x7 tumor, predicted exactly: only its outline is drawn
    out = error_overlay(rgb, truth, truth, "contour", alpha=1.0)
    assert out[1, 1].tolist() == out[2, 4].tolist() == list(TP_COLOR)  # two pixels wide
    assert out[3, 4].tolist() == out[4, 4].tolist() == [0, 0, 0]
    missed = error_overlay(rgb, np.zeros_like(truth), truth, "contour", alpha=1.0)
    assert missed[1, 4].tolist() == list(FN_COLOR) and missed[4, 4].tolist() == [0, 0, 0]


def test_error_legend_names_each_outcome_in_its_colour() -> None:
    legend = error_legend()
    for label, color in (("TP", TP_COLOR), ("FP", FP_COLOR), ("FN", FN_COLOR)):
        assert f'foreground="#{color[0]:02X}{color[1]:02X}{color[2]:02X}"}} {label}:' in legend


def votes(*masks: list[int]) -> list[np.ndarray]:
    return [np.array(m, bool) for m in masks]


def test_disagreement_is_zero_when_all_agree() -> None:
    assert disagreement(votes([0, 1], [0, 1], [0, 1], [0, 1])).tolist() == [0, 0]


def test_disagreement_peaks_at_an_even_split_and_is_symmetric() -> None:
    # Every vote pattern of 4 models on one pixel: the value depends on the count only, is symmetric in
    # tumor/background, and grows towards the even split.
    by_count: dict[int, float] = {}
    for pattern in itertools.product([0, 1], repeat=4):
        value = float(disagreement([np.array([v], bool) for v in pattern])[0])
        assert by_count.setdefault(sum(pattern), value) == value  # any order of the models
        assert float(disagreement([np.array([not v]) for v in pattern])[0]) == value  # labels swapped
    assert by_count == {0: 0.0, 1: 0.25, 2: 0.5, 3: 0.25, 4: 0.0}
    assert max(by_count.values()) == by_count[2] > by_count[1] > by_count[0]


def test_disagreement_scale_ticks_every_possible_minority() -> None:
    four, three = disagreement_scale(4), disagreement_scale(3)
    assert four.vmax == three.vmax == 0.5 and four.floor == 0
    assert four.ticks == ((0, "0"), (0.25, "1/4"), (0.5, "2/4")) and "2/4: even split" in four.note
    assert [v for v, _ in three.ticks] == [0, 1 / 3] and "even" not in three.note  # 3 models never split evenly


def test_heatmap_leaves_agreement_uncoloured_and_uses_the_scale() -> None:
    scale = disagreement_scale(4)
    rgb = np.full((1, 4, 3), 100, np.uint8)
    out = scaled_heatmap(rgb, np.array([[0.0, 0.25, 0.5, 0.75]]), scale, alpha=1.0)
    assert out[0, 0].tolist() == [100, 100, 100]  # all agree: the MRI shows through
    assert out[0, 2].tolist() == [253, 231, 37]  # the top of viridis
    assert out[0, 3].tolist() == out[0, 2].tolist()  # beyond the scale: clipped
    # The middle of Plotly's viridis, as its colour bar draws it (to the 256-step table's rounding).
    assert np.abs(out[0, 1].astype(int) - [34, 144, 140]).max() <= 1
    half = scaled_heatmap(rgb, np.array([[0.0, 0.25, 0.5, 0.75]]), scale, alpha=0.5)
    assert half[0, 2].tolist() == [176, 166, 68]


def test_heatmap_is_sequential_in_lightness() -> None:
    # A perceptual sequential map: every step up the scale is lighter, so the order reads without the colours.
    ramp = scaled_heatmap(np.zeros((1, 256, 3), np.uint8), np.linspace(0.01, 0.5, 256)[None], disagreement_scale(4),
                          alpha=1.0)[0]
    lightness = [simulated_lab(c, "deuteranopia")[0] for c in ramp[::16]]
    assert np.all(np.diff(lightness) > 0)


def test_uncertainty_heatmap_hides_values_at_the_floor() -> None:
    rgb = np.full((1, 3, 3), 50, np.uint8)
    floor = UNCERTAINTY_SCALE.floor
    out = scaled_heatmap(rgb, np.array([[0.0, floor, 2 * floor]]), UNCERTAINTY_SCALE, alpha=1.0)
    assert out[0, 0].tolist() == out[0, 1].tolist() == [50, 50, 50]
    assert out[0, 2].tolist() != [50, 50, 50]


@pytest.mark.parametrize("scale", [disagreement_scale(4), UNCERTAINTY_SCALE], ids=["disagreement", "uncertainty"])
def test_colorbar_matches_its_scale(scale) -> None:
    figure = colorbar(scale)
    marker = figure.data[0].marker
    assert (marker.cmin, marker.cmax) == (0, scale.vmax) and marker.showscale
    assert [c for _, c in marker.colorscale][-1].lower() == "#fde725"  # the colours scaled_heatmap draws
    bar = marker.colorbar
    assert scale.name in bar.title.text and scale.note in bar.title.text
    assert list(bar.tickvals) == [v for v, _ in scale.ticks] and list(bar.ticktext) == [t for _, t in scale.ticks]


def test_window_stretches_the_chosen_intensities_for_display_only() -> None:
    rgb = np.array([[[0, 20, 40], [50, 100, 255]]], np.uint8)
    before = rgb.copy()
    assert window(rgb) is rgb  # the full range: the picture as it is
    np.testing.assert_array_equal(window(rgb, 0, 100), [[[0, 51, 102], [128, 255, 255]]])
    np.testing.assert_array_equal(window(rgb, 20, 40), [[[0, 0, 255], [255, 255, 255]]])
    np.testing.assert_array_equal(window(rgb, 50, 50), [[[0, 0, 0], [0, 255, 255]]])  # a zero-width window: a step
    np.testing.assert_array_equal(rgb, before)  # what the model is given is never changed


def test_a_cam_fades_into_its_zeros_instead_of_ending_at_an_edge() -> None:
    rgb = np.full((1, 5, 3), 100, np.uint8)
    out = scaled_heatmap(rgb, np.array([[0.0, 0.02, 0.05, 0.1, 1.0]]), CAM_SCALE, alpha=1.0).astype(int)
    assert out[0, 0].tolist() == [100, 100, 100]
    step = np.abs(out[0] - 100).sum(axis=1)
    assert 0 < step[1] < step[2] < step[3]  # weakest evidence: closest to the MRI underneath
    assert out[0, 4].tolist() == [253, 231, 37]  # full opacity from a tenth of the peak up
    full = scaled_heatmap(rgb[:, :1], np.array([[0.1]]), CAM_SCALE, alpha=1.0)[0, 0]
    assert out[0, 3].tolist() == full.tolist()
