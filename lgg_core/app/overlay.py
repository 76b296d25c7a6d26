"""Images for the dashboard: MRI channel views, mask and error overlays (fill or contour), heatmaps and colour bars.

Palettes:

- **TP / FP / FN** use Okabe & Ito's colour-blind-safe set: yellow (tumor found), vermillion (false alarm), sky blue
  (missed tumor). They differ in lightness as well as hue, so every pair stays apart under simulated protanopia,
  deuteranopia and tritanopia, also blended over a gray MRI (``tests/app/test_overlay.py`` measures it).
- **Disagreement, uncertainty and CAM heatmaps** use viridis, a perceptually uniform sequential map (dark = low, bright =
  high, readable in gray and with colour blindness). Pixels at or below a scale's floor stay uncoloured, so where
  the models agree the MRI shows through; each heatmap comes with a :func:`colorbar` built from the same scale.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

import numpy as np
import plotly.colors
import plotly.graph_objects as go
from PIL import Image

VIEWS = ("FLAIR", "pre-contrast", "post-contrast", "all three as RGB")
_CHANNEL = {"pre-contrast": 0, "FLAIR": 1, "post-contrast": 2}
GT_COLOR = (0, 220, 0)
PRED_COLOR = (255, 40, 40)
TP_COLOR = (240, 228, 66)  # Okabe–Ito yellow
FP_COLOR = (213, 94, 0)  # Okabe–Ito vermillion
FN_COLOR = (86, 180, 233)  # Okabe–Ito sky blue
ERROR_OUTLINE_PX = 2
# The two ways a prediction panel is coloured; the pages offer them as a choice.
COLOUR_MODES = ("truth / prediction", "TP / FP / FN")
ERROR_LEGEND = (("TP: tumor found", TP_COLOR), ("FP: false alarm", FP_COLOR), ("FN: missed tumor", FN_COLOR))
COLORSCALE = "Viridis"


@dataclass(frozen=True)
class HeatScale:
    """How a heatmap colours its values, shared by the picture and its colour bar.

    Attributes:
        name: the quantity, as captions and the colour bar's title call it.
        vmax: the value drawn in the top colour (the bar runs from 0 to ``vmax``).
        ticks: (value, label) pairs marked on the bar; short, or Plotly drops the last one at narrow widths.
        floor: values at or below it are left uncoloured.
        note: what the uncoloured pixels mean.
        fade: values less than this above ``floor`` are blended in gradually, so a continuous map fades out where
            it reaches the floor instead of ending at a hard edge (0: every shown value at full opacity).
    """

    name: str
    vmax: float
    ticks: tuple[tuple[float, str], ...]
    floor: float
    note: str
    fade: float = 0.0


# Variance over views lies in [0, 0.25], but most disagreement is far below 0.25: on a full-range scale it would be
# drawn in the near-black end. So the top colour means 0.0625 or more (two views' probabilities 0.5 or more apart),
# and below 0.0025 (less than 0.1 apart) the views count as agreeing.
# Each CAM is rescaled to [0, 1] on its own slice; exact zeros stay uncoloured, and the weakest tenth fades into
# them (a CAM is a smooth upsampled map: drawn at full opacity down to its zeros it ends in a hard-edged block).
CAM_SCALE = HeatScale("CAM: evidence for the target, 1 = this map's peak", 1.0,
                      ((0.0, "0"), (0.5, "0.5"), (1.0, "1")), 0.0, "fading out to uncoloured at 0, no positive evidence",
                      fade=0.1)
UNCERTAINTY_SCALE = HeatScale(
    "TTA variance", 0.0625, ((0.0, "0"), (0.02, "0.02"), (0.04, "0.04"), (0.0625, "≥0.0625")), 0.0025,
    "uncoloured: ≤ 0.0025, views agree")


def disagreement_scale(n_models: int) -> HeatScale:
    """The scale of :func:`disagreement` for ``n_models``: ticks at every possible minority (k of n)."""
    ticks = ((0.0, "0"), *((k / n_models, f"{k}/{n_models}") for k in range(1, n_models // 2 + 1)))
    even = f" · {n_models // 2}/{n_models}: even split" if n_models % 2 == 0 else ""
    return HeatScale(f"minority share of {n_models} models", 0.5, ticks, 0.0, f"uncoloured: all agree{even}")


def channel_view(image: np.ndarray, view: str = "FLAIR") -> np.ndarray:
    """An (H, W, 3) uint8 picture of one MRI channel (as gray) or of all three as RGB."""
    if view == "all three as RGB":
        return image.copy()
    return np.repeat(image[..., _CHANNEL[view], None], 3, axis=-1)


def window(rgb: np.ndarray, low: int = 0, high: int = 255) -> np.ndarray:
    """A display window: intensities ``low``..``high`` stretched over 0..255, darker ones black, brighter ones white.

    For looking only; predictions are always made on the unwindowed slice.
    """
    if (low, high) == (0, 255):
        return rgb
    stretched = (rgb.astype(np.float32) - low) * (255 / max(high - low, 1))
    return np.clip(stretched, 0, 255).round().astype(np.uint8)


def _blend(rgb: np.ndarray, mask: np.ndarray, colors: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """``rgb`` with the ``mask`` pixels mixed with ``colors`` (one colour, or one per masked pixel) at opacity
    ``alpha`` (one, or (n, 1) per masked pixel)."""
    out = rgb.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(colors, np.float32)
    return out.round().astype(np.uint8)


def overlay(
    rgb: np.ndarray, mask: np.ndarray, color: tuple[int, int, int], mode: str = "fill", alpha: float = 0.4,
    width: int = 1,
) -> np.ndarray:
    """Blend ``mask`` onto ``rgb`` as a filled area or as its outline, ``width`` pixels wide inside the mask
    (outlines are drawn opaque)."""
    mask = np.asarray(mask, bool)
    if mode == "contour":
        from scipy import ndimage  # ~0.3 s: the Leaderboard imports this module for its legends only

        mask, alpha = mask & ~ndimage.binary_erosion(mask, iterations=width), max(alpha, 0.9)
    return _blend(rgb, mask, color, alpha)


def error_overlay(
    rgb: np.ndarray, pred: np.ndarray, truth: np.ndarray, mode: str = "fill", alpha: float = 0.4
) -> np.ndarray:
    """``pred`` against ``truth`` over ``rgb``: TP, FP and FN pixels in their Okabe–Ito colours, TN untouched.

    Outlines are two pixels wide: at one pixel, yellow and vermillion lines over an MRI are hard to tell apart.
    """
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    for mask, color in ((pred & truth, TP_COLOR), (pred & ~truth, FP_COLOR), (~pred & truth, FN_COLOR)):
        rgb = overlay(rgb, mask, color, mode, alpha, width=ERROR_OUTLINE_PX)
    return rgb


def error_legend() -> str:
    """Markdown legend of :func:`error_overlay`'s colours (Streamlit's coloured-text syntax)."""
    hex_of = "#{:02X}{:02X}{:02X}".format
    return " · ".join(f':color[■■]{{foreground="{hex_of(*c)}"}} {label}' for label, c in ERROR_LEGEND)


def disagreement(preds: list[np.ndarray]) -> np.ndarray:
    """Per pixel, the share of models that disagree with the majority (0 = unanimous, 0.5 = split evenly)."""
    votes = np.mean(np.stack([np.asarray(p, bool) for p in preds]), axis=0)
    return np.minimum(votes, 1 - votes)


@cache
def _lut() -> np.ndarray:
    """256 colours of :data:`COLORSCALE` as (256, 3) float32, sampled as Plotly draws the colour bar."""
    samples = plotly.colors.sample_colorscale(plotly.colors.get_colorscale(COLORSCALE), np.linspace(0, 1, 256))
    return np.array([plotly.colors.unlabel_rgb(c) for c in samples], np.float32)


def scaled_heatmap(rgb: np.ndarray, values: np.ndarray, scale: HeatScale, alpha: float = 0.6) -> np.ndarray:
    """``values`` coloured by ``scale`` over ``rgb``; pixels at or below ``scale.floor`` show ``rgb`` unchanged, and
    those within ``scale.fade`` above it are mixed in with a proportionally lower opacity."""
    shown = values > scale.floor
    index = np.rint(np.clip(values[shown] / scale.vmax, 0, 1) * 255).astype(np.intp)
    if scale.fade:
        alpha = alpha * np.clip((values[shown] - scale.floor) / scale.fade, 0, 1)[:, None]
    return _blend(rgb, shown, _lut()[index], alpha)


def colorbar(scale: HeatScale) -> go.Figure:
    """A horizontal colour bar for ``scale`` alone (an empty plot carrying only the bar)."""
    values, labels = zip(*scale.ticks)
    # len < 1 leaves room for the end labels, which Plotly would drop rather than draw past the figure's edge.
    bar = {"orientation": "h", "thickness": 12, "len": 0.8, "x": 0.5, "xanchor": "center", "y": 0.5,
           "yanchor": "middle", "tickvals": values, "ticktext": labels,
           "title": {"text": f"{scale.name}<br><sup>{scale.note}</sup>", "side": "top"}}
    marker = {"color": [0.0, scale.vmax], "cmin": 0.0, "cmax": scale.vmax, "colorscale": COLORSCALE,
              "showscale": True, "colorbar": bar}
    figure = go.Figure(go.Scatter(x=[None], y=[None], mode="markers", marker=marker, hoverinfo="skip"))
    return figure.update_layout(height=110, margin={"l": 10, "r": 10, "t": 0, "b": 0}, xaxis_visible=False,
                                yaxis_visible=False, paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")


def png_bytes(array: np.ndarray) -> bytes:
    """Encode an (H, W) or (H, W, 3) uint8 array (bool masks become 0/255) as PNG."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
