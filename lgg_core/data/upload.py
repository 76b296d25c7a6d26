"""Turn a user's file (.tif/.tiff, .png, .jpg/.jpeg, DICOM) into a model-ready 256² uint8 slice, or say why not.

The models were trained on 256x256 slices with three MRI channels (pre-contrast, FLAIR, post-contrast) in 0-255.
Every step that changes the file's pixels is recorded in ``Slice.steps`` so the page can show what happened.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np
import pydicom
import tifffile
from PIL import Image, UnidentifiedImageError
from pydicom.errors import InvalidDicomError

SIZE = 256
MIN_SIDE = 32
MAX_PIXELS = 40_000_000  # ~6300² : beyond this decoding alone could exhaust a small host's memory
EXTENSIONS = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".dcm", ".dicom")


class UploadError(ValueError):
    """The file cannot be used; the message is meant for the user."""


@dataclass
class Slice:
    """A model-ready slice and what was done to get it.

    Attributes:
        image: (256, 256, 3) uint8.
        original_shape: shape of the decoded pixel array.
        original_dtype: its dtype name.
        steps: human-readable preprocessing steps, in order.
    """

    image: np.ndarray
    original_shape: tuple[int, ...]
    original_dtype: str
    steps: list[str] = field(default_factory=list)


def _decode_tiff(data: bytes) -> np.ndarray:
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            if int(np.prod(page.shape)) > 4 * MAX_PIXELS:
                raise UploadError(f"the image is too large ({'x'.join(map(str, page.shape))}); at most "
                                  f"{MAX_PIXELS:,} pixels")
            if len(tif.pages) > 1:
                raise UploadError(f"the TIFF holds {len(tif.pages)} pages (a volume?); upload a single slice")
            return page.asarray()
    except UploadError:
        raise
    except Exception as err:  # tifffile raises assorted types for truncated or corrupt files
        raise UploadError(f"cannot read the TIFF file (corrupt or truncated): {err}") from err


def _decode_pil(data: bytes) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise UploadError(f"the image is too large ({img.width}x{img.height}); at most {MAX_PIXELS:,} pixels")
                img.load()
                if img.mode == "P":
                    img = img.convert("RGBA" if "transparency" in img.info else "RGB")
                elif img.mode in ("I;16", "I;16B", "I;16L"):
                    img = img.convert("I")  # numpy has no view of PIL's packed 16-bit modes on every platform
                return np.asarray(img)
    except UploadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UploadError(f"not a readable image: {err}") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise UploadError(f"cannot decode the image (corrupt or truncated): {err}") from err


def _decode_dicom(data: bytes) -> tuple[np.ndarray, list[str]]:
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError) as err:
        raise UploadError(f"not a readable DICOM file: {err}") from err
    if "PixelData" not in ds:
        raise UploadError("the DICOM file has no image (no PixelData element)")
    try:
        pixels = ds.pixel_array
    except Exception as err:  # pydicom reports missing codecs and bad lengths with assorted types
        raise UploadError(f"cannot decode the DICOM pixels: {err}") from err
    steps = []
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    if (slope, intercept) != (1.0, 0.0):
        pixels = pixels * slope + intercept
        steps.append(f"DICOM rescale applied (slope {slope:g}, intercept {intercept:g})")
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        pixels = pixels.max() - pixels
        steps.append("MONOCHROME1 inverted so that bright means high signal")
    return np.asarray(pixels), steps


def _is_dicom(name: str, data: bytes) -> bool:
    return PurePath(name).suffix.lower() in (".dcm", ".dicom") or data[128:132] == b"DICM"


def decode(name: str, data: bytes) -> tuple[np.ndarray, list[str]]:
    """Decode the file's pixels by its content (and extension for DICOM without a preamble).

    Raises:
        UploadError: empty, unsupported, corrupt, truncated or oversized file.
    """
    if not data:
        raise UploadError("the file is empty (0 bytes)")
    if _is_dicom(name, data):
        return _decode_dicom(data)
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _decode_tiff(data), []
    return _decode_pil(data), []


def _to_three_channels(pixels: np.ndarray, steps: list[str]) -> np.ndarray:
    if pixels.ndim == 2:
        steps.append("grayscale: the one channel is copied into all three (pre-contrast, FLAIR, post-contrast); "
                     "the models were trained on three different MRI sequences, so treat the result as indicative")
        return np.repeat(pixels[..., None], 3, axis=-1)
    if pixels.ndim == 3 and pixels.shape[0] in (3, 4) and pixels.shape[-1] not in (3, 4):
        pixels = np.moveaxis(pixels, 0, -1)  # planar (C, H, W) TIFF
    if pixels.ndim != 3 or pixels.shape[-1] not in (1, 2, 3, 4):
        raise UploadError(f"unsupported pixel layout {pixels.shape}: expected one 2D grayscale or RGB(A) slice, "
                          "not a stack or volume")
    if pixels.shape[-1] in (2, 4):
        steps.append(f"alpha channel dropped ({pixels.shape[-1]} channels → {pixels.shape[-1] - 1})")
        pixels = pixels[..., :-1]
    if pixels.shape[-1] == 1:
        return _to_three_channels(pixels[..., 0], steps)
    steps.append("three channels read as pre-contrast, FLAIR, post-contrast (the dataset's order)")
    return pixels


def _to_uint8(pixels: np.ndarray, steps: list[str]) -> np.ndarray:
    if pixels.dtype == np.uint8:
        steps.append("intensities kept as 0–255 (8-bit input, as in the dataset)")
        return pixels
    if pixels.dtype == bool:
        steps.append("binary image scaled to 0/255")
        return pixels.astype(np.uint8) * 255
    values = pixels.astype(np.float64)
    if not np.isfinite(values).all():
        raise UploadError("the image holds NaN or infinite values")
    low, high = np.percentile(values, [0.5, 99.5])
    if high <= low:
        low, high = values.min(), values.max()
    steps.append(f"{pixels.dtype} intensities scaled to 0–255 (0.5th–99.5th percentile: {low:g}–{high:g})")
    return np.clip((values - low) / max(high - low, 1e-12) * 255, 0, 255).round().astype(np.uint8)


def _resize(pixels: np.ndarray, steps: list[str]) -> np.ndarray:
    h, w = pixels.shape[:2]
    if (h, w) == (SIZE, SIZE):
        return pixels
    if h != w:
        steps.append(f"not square ({w}x{h}): stretched to square, which distorts shapes")
    steps.append(f"resized from {w}x{h} to {SIZE}x{SIZE} (bilinear{', antialiased' if max(h, w) > SIZE else ''})")
    return np.asarray(Image.fromarray(pixels).resize((SIZE, SIZE), Image.Resampling.BILINEAR, reducing_gap=None))


def read_upload(name: str, data: bytes) -> Slice:
    """Decode and preprocess an uploaded file into a 256x256x3 uint8 slice.

    Raises:
        UploadError: with a message for the user (empty, not an image, corrupt, truncated, too large, too small,
            blank, unsupported layout).
    """
    pixels, steps = decode(name, data)
    shape, dtype = tuple(pixels.shape), str(pixels.dtype)
    if pixels.size == 0 or pixels.ndim < 2:
        raise UploadError("the image has no pixels")
    pixels = _to_three_channels(pixels, steps)
    if min(pixels.shape[:2]) < MIN_SIDE:
        raise UploadError(f"the image is too small ({'x'.join(map(str, shape))}); slices need at least "
                          f"{MIN_SIDE}x{MIN_SIDE} pixels")
    pixels = _to_uint8(pixels, steps)
    if pixels.min() == pixels.max():
        raise UploadError(f"the image is blank (every pixel is {pixels.min()}): nothing to segment")
    image = _resize(np.ascontiguousarray(pixels), steps)
    steps.append("normalized with ImageNet mean/std after scaling to [0, 1], as in training")
    return Slice(image, shape, dtype, steps)
