"""Images for the dashboard: MRI channel views, mask overlays (fill or contour), disagreement and CAM heatmaps."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pytorch_grad_cam.utils.image import show_cam_on_image
from scipy import ndimage

VIEWS = ("FLAIR", "pre-contrast", "post-contrast", "all three as RGB")
_CHANNEL = {"pre-contrast": 0, "FLAIR": 1, "post-contrast": 2}
GT_COLOR = (0, 220, 0)
PRED_COLOR = (255, 40, 40)


def channel_view(image: np.ndarray, view: str = "FLAIR") -> np.ndarray:
    """An (H, W, 3) uint8 picture of one MRI channel (as gray) or of all three as RGB."""
    if view == "all three as RGB":
        return image.copy()
    return np.repeat(image[..., _CHANNEL[view], None], 3, axis=-1)


def overlay(
    rgb: np.ndarray, mask: np.ndarray, color: tuple[int, int, int], mode: str = "fill", alpha: float = 0.4
) -> np.ndarray:
    """Blend ``mask`` onto ``rgb`` as a filled area or as its 1-pixel outline (outlines are drawn opaque)."""
    mask = np.asarray(mask, bool)
    if mode == "contour":
        mask, alpha = mask & ~ndimage.binary_erosion(mask), max(alpha, 0.9)
    out = rgb.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(color, np.float32)
    return out.round().astype(np.uint8)


def disagreement(preds: list[np.ndarray]) -> np.ndarray:
    """Per pixel, the share of models that disagree with the majority (0 = unanimous, 0.5 = split evenly)."""
    votes = np.mean(np.stack([np.asarray(p, bool) for p in preds]), axis=0)
    return np.minimum(votes, 1 - votes)


def heatmap(rgb: np.ndarray, values: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Jet-coloured ``values`` in [0, 1] over ``rgb`` (pytorch-grad-cam's renderer)."""
    return show_cam_on_image(rgb.astype(np.float32) / 255.0, np.clip(values, 0, 1), use_rgb=True, image_weight=1 - alpha)


def png_bytes(array: np.ndarray) -> bytes:
    """Encode an (H, W) or (H, W, 3) uint8 array (bool masks become 0/255) as PNG."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
