"""Turn a user's file (TIFF, PNG, JPEG, BMP, GIF, WebP, DICOM) into a model-ready 256² uint8 slice, or say why not.

The models were trained on 256x256 slices with three MRI channels (pre-contrast, FLAIR, post-contrast) in 0-255.
Every step that changes the file's pixels is recorded in ``Slice.steps`` so the page can show what happened; what the
user should doubt (a mask uploaded as an image, complex pixels, an unlabelled DICOM) goes to ``Slice.warnings``.
An optional ground-truth mask for the slice (:func:`read_mask_upload`) must have the slice's size and be binary.

The app serves many visitors from one small process, so a file is judged by the dimensions it *declares* before any
pixel is decoded or inflated: at most ``MAX_PIXELS`` pixels, ``MAX_SAMPLES`` values per pixel and ``MAX_SAMPLE_BYTES``
bytes per value, which bounds one upload's memory to a few hundred MB. Messages are written for the user and never
carry a library's exception text.
"""
from __future__ import annotations

import io
import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np
import pydicom
import tifffile
from PIL import Image, UnidentifiedImageError
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.filereader import read_dataset
from pydicom.uid import (JPEG2000, DeflatedExplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit,
                         JPEGExtended12Bit)

SIZE = 256
MIN_SIDE = 32
MAX_PIXELS = 2048 * 2048  # height x width: MRI slices are at most 1024² in practice; 2048² bounds memory
MAX_SAMPLES = 4  # values per pixel: grayscale, gray + alpha, RGB or RGBA
MAX_SAMPLE_BYTES = 8  # float64; with the two caps above one decoded image is at most 128 MiB
EXTENSIONS = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".dcm", ".dicom")
FORMATS = "TIFF, PNG, JPEG, BMP, GIF, WebP or DICOM"

# Pillow also opens formats that run external programs (EPS through Ghostscript) or hold many images: never those.
_PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
_PIL_ARRAY_MODES = ("1", "L", "LA", "RGB", "RGBA", "I", "F")
# Without imagecodecs tifffile inflates a Deflate strip whole, whatever the page declares; these are the codecs it
# decodes here and whose output size ``_check_tiff_segments`` can bound first.
_TIFF_COMPRESSIONS = (tifffile.COMPRESSION.NONE, tifffile.COMPRESSION.DEFLATE, tifffile.COMPRESSION.ADOBE_DEFLATE)
# Inflating a strip briefly takes twice its size on top of the decoded image; writers use strips of a few KB.
_MAX_STRIP_BYTES = 32 << 20
_PIXEL_DATA = 0x7FE00010
# Compressed DICOM pixels that pydicom hands to Pillow, whose codestream states a size that can be checked first. RLE
# is left out: pydicom's decoder expands a segment whole (up to 64x its size) before comparing it with the header.
_DICOM_PILLOW_SYNTAXES = (JPEGBaseline8Bit, JPEGExtended12Bit, JPEG2000Lossless, JPEG2000)
_DICOM_HEADER_BYTES = 1 << 20  # a DICOM header (everything before the pixels) is a few KB; a MB is generous
_PERCENTILE_PIXELS = 512 * 512  # percentiles of larger images are estimated on a regular grid of about this many


class UploadError(ValueError):
    """The file cannot be used; the message is meant for the user."""


@dataclass
class Slice:
    """A model-ready slice and what was done to get it.

    Attributes:
        image: (256, 256, 3) uint8.
        original_shape: shape of the decoded pixel array.
        original_dtype: its dtype name.
        size: (height, width) of the decoded image before resizing, which a ground-truth mask must match.
        steps: human-readable preprocessing steps, in order.
        warnings: reasons to doubt the predictions on this file (the page shows them prominently).
    """

    image: np.ndarray
    original_shape: tuple[int, ...]
    original_dtype: str
    size: tuple[int, int]
    steps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _check_size(width: int, height: int, samples: int = 1, sample_bytes: int = 1) -> None:
    """Refuse declared dimensions before anything is allocated for them."""
    if width * height > MAX_PIXELS:
        raise UploadError(f"the image is too large ({width}x{height} pixels); at most {MAX_PIXELS:,} pixels "
                          f"(e.g. 2048x2048) are accepted")
    if min(width, height) < MIN_SIDE:
        raise UploadError(f"the image is too small ({width}x{height} pixels); slices need at least "
                          f"{MIN_SIDE}x{MIN_SIDE} pixels")
    if samples > MAX_SAMPLES:
        raise UploadError(f"the image has {samples} values per pixel; at most {MAX_SAMPLES} (grayscale, RGB or RGBA) "
                          "are accepted")
    if sample_bytes > MAX_SAMPLE_BYTES:
        raise UploadError(f"the image stores {sample_bytes} bytes per value; at most {MAX_SAMPLE_BYTES} (64-bit) are "
                          "accepted")


def _check_tiff_segments(page: tifffile.TiffPage, data: bytes) -> None:
    """Refuse strips or tiles that overlap, lie outside the file, or inflate to more than their declared size."""
    offsets, counts = page.dataoffsets, page.databytecounts
    if (len(counts) != math.prod(page.chunked) or sum(counts) > len(data)
            or any(start + count > len(data) for start, count in zip(offsets, counts))):
        raise UploadError("cannot read the TIFF file: it is corrupt or truncated (its strip table does not match "
                          "the file)")
    if page.compression == tifffile.COMPRESSION.NONE:
        return
    chunk = list(page.chunks)
    if not page.is_tiled:
        chunk[0] = min(chunk[0], page.imagelength)  # RowsPerStrip may declare "all rows" with a huge number
    chunk_bytes = math.prod(chunk) * page.dtype.itemsize
    if chunk_bytes > _MAX_STRIP_BYTES:
        raise UploadError(f"the TIFF's compressed strips or tiles are too large ({chunk_bytes >> 20} MiB each once "
                          f"decoded; at most {_MAX_STRIP_BYTES >> 20}); save it uncompressed or with smaller strips")
    view = memoryview(data)
    if any(len(zlib.decompressobj().decompress(view[start:start + count], chunk_bytes + 1)) > chunk_bytes
           for start, count in zip(offsets, counts)):
        raise UploadError("the TIFF's compressed pixels inflate to more data than the image declares "
                          "(a decompression bomb?)")


def _decode_tiff(data: bytes) -> np.ndarray:
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            if tif.pages.is_multipage or page.imagedepth > 1:
                raise UploadError("the TIFF holds several pages (a stack or volume?); upload a single 2D slice")
            if page.dtype is None:
                raise UploadError("the TIFF's pixel format (bits per sample and sample format) is not supported")
            _check_size(page.imagewidth, page.imagelength, page.samplesperpixel, page.dtype.itemsize)
            if page.compression not in _TIFF_COMPRESSIONS:
                kind = getattr(page.compression, "name", "an unknown")
                raise UploadError(f"the TIFF uses {kind} compression, which this app cannot read; save it "
                                  "uncompressed or with Deflate (zip) compression")
            _check_tiff_segments(page, data)
            return page.asarray(maxworkers=1)  # one thread: the host's two cores serve every visitor
    except UploadError:
        raise
    except Exception as err:  # tifffile raises assorted types for truncated or corrupt files
        raise UploadError("cannot read the TIFF file: it is corrupt or truncated") from err


def _decode_pil(data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data), formats=_PIL_FORMATS) as img:
            _check_size(img.width, img.height)  # Pillow modes hold at most 4 bytes per pixel
            if getattr(img, "is_animated", False):
                raise UploadError(f"the {img.format} file holds several frames (an animation or a stack); upload a "
                                  "single slice")
            img.load()
            if img.mode.startswith("I;16"):
                img = img.convert("I")  # numpy has no view of PIL's packed 16-bit modes on every platform
            elif img.mode not in _PIL_ARRAY_MODES:  # palette, CMYK, YCbCr, ...
                img = img.convert("RGBA" if img.has_transparency_data else "RGB")
            return np.asarray(img)
    except UploadError:
        raise
    except Image.DecompressionBombError as err:
        raise UploadError(f"the image is too large; at most {MAX_PIXELS:,} pixels (e.g. 2048x2048) are "
                          "accepted") from err
    except UnidentifiedImageError as err:
        raise UploadError(f"not a readable image: the file is not {FORMATS}, or it is damaged") from err
    except Exception as err:  # Pillow's decoders raise assorted types for truncated or corrupt files
        raise UploadError("cannot decode the image: it is corrupt or truncated") from err


def _dicom_geometry(ds: Dataset) -> int:
    """Check the dimensions the header declares; return the pixel data's size in bytes."""
    if "Rows" not in ds or "Columns" not in ds:
        raise UploadError("the DICOM file has no image (no Rows/Columns)")
    rows, columns = int(ds.Rows), int(ds.Columns)
    frames, samples = int(ds.get("NumberOfFrames") or 1), int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.get("BitsAllocated") or 16)
    if frames > 1:
        raise UploadError(f"the DICOM file holds {frames} frames (a multi-frame volume?); upload a single slice")
    if samples not in (1, 3):
        raise UploadError(f"the DICOM image has {samples} values per pixel; only 1 (grayscale) or 3 (RGB) are valid")
    _check_size(columns, rows, samples, math.ceil(bits / 8))
    return math.ceil(rows * columns * samples * bits / 8)


def _file_meta(data: bytes) -> tuple[FileMetaDataset, int]:
    """The File Meta group after the preamble and 'DICM', and the offset of the dataset that follows it."""
    source = io.BytesIO(data)
    source.seek(132)
    meta = FileMetaDataset(read_dataset(source, is_implicit_VR=False, is_little_endian=True,
                                        stop_when=lambda tag, vr, length: tag >> 16 != 2))
    # dcmread rereads the group another way when an element fails to convert; refusing such files here keeps its
    # reading of the transfer syntax identical to ours.
    list(meta)
    return meta, source.tell()


def _read_deflated(meta: FileMetaDataset, body: memoryview) -> Dataset:
    """Read a Deflate-compressed dataset, checking its header before inflating the pixels and bounding the rest.

    dcmread would inflate the whole file first, whatever its header declares.
    """
    head = zlib.decompressobj(-zlib.MAX_WBITS).decompress(body, _DICOM_HEADER_BYTES)
    limit = _DICOM_HEADER_BYTES + _dicom_geometry(read_dataset(
        io.BytesIO(head), is_implicit_VR=False, is_little_endian=True,
        stop_when=lambda tag, vr, length: tag == _PIXEL_DATA))
    inflated = zlib.decompressobj(-zlib.MAX_WBITS).decompress(body, limit + 1)
    if len(inflated) > limit:
        raise UploadError("the DICOM file inflates to more data than its image declares (a decompression bomb?)")
    ds = read_dataset(io.BytesIO(inflated), is_implicit_VR=False, is_little_endian=True)
    ds.file_meta = meta
    return ds


def _check_encapsulated(ds: Dataset) -> None:
    """Refuse compressed pixels unless their codestream declares the size the DICOM header does."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or not syntax.is_encapsulated:
        return
    if syntax not in _DICOM_PILLOW_SYNTAXES:
        kind = syntax.name if syntax.keyword else "an unknown compression"
        raise UploadError(f"the DICOM pixels are compressed ({kind}), which this app cannot decode; export the slice "
                          "uncompressed")
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    with Image.open(io.BytesIO(frame), formats=("JPEG", "JPEG2000")) as img:
        if img.size != (int(ds.Columns), int(ds.Rows)):
            raise UploadError(f"the DICOM's compressed image is {img.width}x{img.height} pixels but its header "
                              f"declares {ds.Columns}x{ds.Rows}: the file is damaged")


def _read_dicom(data: bytes) -> Dataset:
    try:
        meta, start = _file_meta(data) if data[128:132] == b"DICM" else (None, 0)
        if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
            ds = _read_deflated(meta, memoryview(data)[start:])
        else:
            ds = pydicom.dcmread(io.BytesIO(data))
        if "PixelData" not in ds:
            raise UploadError("the DICOM file has no image (no PixelData element)")
        _dicom_geometry(ds)
        _check_encapsulated(ds)
        return ds
    except UploadError:
        raise
    except Exception as err:  # pydicom raises assorted types for files that are not (valid) DICOM
        raise UploadError("not a readable DICOM file: it is damaged, truncated, or lacks the standard DICOM file "
                          "header") from err


def _dicom_number(ds: Dataset, keyword: str, default: float) -> float:
    try:
        return float(ds.get(keyword) or default)
    except (TypeError, ValueError) as err:
        raise UploadError(f"the DICOM's {keyword} is not a number") from err


def _decode_dicom(data: bytes, steps: list[str], warnings: list[str]) -> np.ndarray:
    ds = _read_dicom(data)
    modality = str(ds.get("Modality") or "").strip().upper()
    if not modality:
        warnings.append("the DICOM file does not say its modality; it is assumed to be an MRI slice")
    elif modality != "MR":
        said = f" (its modality is {modality})" if re.fullmatch(r"[A-Z0-9_ ]{1,16}", modality) else ""
        raise UploadError(f"the DICOM image is not MRI{said}: the models were trained on brain MRI (FLAIR) slices and "
                          "their output on other images means nothing")
    slope, intercept = _dicom_number(ds, "RescaleSlope", 1), _dicom_number(ds, "RescaleIntercept", 0)
    photometric = ds.get("PhotometricInterpretation")
    try:
        ds.pixel_array_options(allow_excess_frames=False)  # pixel data longer than declared is not decoded
        pixels = ds.pixel_array
    except Exception as err:  # pydicom reports bad lengths and codec failures with assorted types
        raise UploadError("cannot decode the DICOM pixels: the file is damaged or truncated") from err
    del ds  # its copy of the pixel bytes is no longer needed
    if (slope, intercept) != (1.0, 0.0):
        pixels = pixels.astype(np.float32)  # float32 holds any 16-bit value exactly at half float64's memory
        pixels *= slope
        pixels += intercept
        steps.append(f"DICOM rescale applied (slope {slope:g}, intercept {intercept:g})")
    if photometric == "MONOCHROME1":
        pixels = pixels.max() - pixels
        steps.append("MONOCHROME1 inverted so that bright means high signal")
    return pixels


def _is_dicom(name: str, data: bytes) -> bool:
    return PurePath(name).suffix.lower() in (".dcm", ".dicom") or data[128:132] == b"DICM"


def decode(name: str, data: bytes, steps: list[str], warnings: list[str]) -> np.ndarray:
    """Decode the file's pixels by its content (and extension for DICOM without a preamble).

    Args:
        name: the file's name.
        data: its bytes.
        steps: where decoding steps that change pixels are appended.
        warnings: where reasons to doubt the file are appended.

    Raises:
        UploadError: empty, unsupported, corrupt, truncated or oversized file, or a DICOM that is not MRI.
    """
    if not data:
        raise UploadError("the file is empty (0 bytes)")
    if _is_dicom(name, data):
        return _decode_dicom(data, steps, warnings)
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _decode_tiff(data)
    return _decode_pil(data)


def _to_channels(pixels: np.ndarray, steps: list[str]) -> np.ndarray:
    """(H, W) grayscale or (H, W, 3) channels, as views of ``pixels`` (grayscale is copied into three at 256²)."""
    if pixels.ndim == 3 and pixels.shape[0] <= MAX_SAMPLES < pixels.shape[-1]:
        pixels = np.moveaxis(pixels, 0, -1)  # planar (C, H, W) TIFF
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 2:
        steps.append("grayscale: the one channel is copied into all three (pre-contrast, FLAIR, post-contrast); "
                     "the models were trained on three different MRI sequences, so treat the result as indicative")
        return pixels
    if pixels.ndim != 3 or pixels.shape[-1] not in (2, 3, 4):
        raise UploadError(f"unsupported pixel layout ({'x'.join(map(str, pixels.shape))} values): expected one 2D "
                          "grayscale or RGB(A) slice, not a stack or volume")
    if pixels.shape[-1] in (2, 4):
        steps.append(f"alpha channel dropped ({pixels.shape[-1]} channels → {pixels.shape[-1] - 1})")
        pixels = pixels[..., :-1]
    if pixels.shape[-1] == 1:
        return _to_channels(pixels[..., 0], steps)
    steps.append("three channels read as pre-contrast, FLAIR, post-contrast (the dataset's order)")
    return pixels


def _planes(pixels: np.ndarray) -> list[np.ndarray]:
    return [pixels] if pixels.ndim == 2 else [pixels[..., c] for c in range(pixels.shape[-1])]


def _to_uint8(pixels: np.ndarray, steps: list[str], warnings: list[str]) -> np.ndarray:
    """Scale to 0-255 one channel at a time in float32, so that no float copy of the whole image exists."""
    if pixels.dtype == np.uint8:
        steps.append("intensities kept as 0–255 (8-bit input, as in the dataset)")
        return pixels
    if pixels.dtype == bool:
        steps.append("binary image scaled to 0/255")
        return pixels.view(np.uint8) * np.uint8(255)
    if pixels.dtype.kind == "c":
        warnings.append("the pixels are complex numbers (raw MRI data?); their magnitude is used, whereas the models "
                        "were trained on ordinary magnitude images")
        steps.append("complex values replaced by their magnitude")
        pixels = np.abs(pixels)
    if pixels.dtype.kind == "f" and not all(np.isfinite(plane).all() for plane in _planes(pixels)):
        raise UploadError("the image holds NaN or infinite values")
    stride = max(1, math.ceil(math.sqrt(pixels.shape[0] * pixels.shape[1] / _PERCENTILE_PIXELS)))
    low, high = (float(v) for v in np.percentile(pixels[::stride, ::stride], [0.5, 99.5]))
    if high <= low:
        low, high = float(pixels.min()), float(pixels.max())
    where = f", estimated on every {stride}th row and column" if stride > 1 else ""
    steps.append(f"{pixels.dtype} intensities scaled to 0–255 (0.5th–99.5th percentile{where}: {low:g}–{high:g})")
    scale = 255 / max(high - low, 1e-12)
    out = np.empty(pixels.shape, np.uint8)
    for plane, target in zip(_planes(pixels), _planes(out)):
        values = plane.astype(np.float32)
        values -= low
        values *= scale
        np.clip(values, 0, 255, out=values)
        np.rint(values, out=target, casting="unsafe")
    return out


def _resize(pixels: np.ndarray, steps: list[str]) -> np.ndarray:
    h, w = pixels.shape[:2]
    if (h, w) == (SIZE, SIZE):
        return pixels
    if h != w:
        steps.append(f"not square ({w}x{h}): stretched to square, which distorts shapes")
    steps.append(f"resized from {w}x{h} to {SIZE}x{SIZE} (bilinear{', antialiased' if max(h, w) > SIZE else ''})")
    image = Image.fromarray(np.ascontiguousarray(pixels))
    return np.asarray(image.resize((SIZE, SIZE), Image.Resampling.BILINEAR, reducing_gap=None))


def read_upload(name: str, data: bytes) -> Slice:
    """Decode and preprocess an uploaded file into a 256x256x3 uint8 slice.

    Raises:
        UploadError: with a message for the user (empty, not an image, corrupt, truncated, too large, too small,
            blank, unsupported layout, not MRI).
    """
    steps: list[str] = []
    warnings: list[str] = []
    pixels = decode(name, data, steps, warnings)
    shape, dtype = tuple(pixels.shape), str(pixels.dtype)
    pixels = _to_uint8(_to_channels(pixels, steps), steps, warnings)
    size = (int(pixels.shape[0]), int(pixels.shape[1]))
    low, high = int(pixels.min()), int(pixels.max())
    if low == high:
        raise UploadError(f"the image is blank (every pixel has the value {low}): nothing to segment")
    if all(np.logical_or(plane == low, plane == high).all() for plane in _planes(pixels)):
        warnings.append(f"the image has only two intensity levels ({low} and {high}): it looks like a segmentation "
                        "mask or another binary picture, not an MRI slice, so the predictions mean little")
    image = _resize(pixels, steps)
    image = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image.copy()  # owned and writable
    steps.append("normalized with ImageNet mean/std after scaling to [0, 1], as in training")
    return Slice(image, shape, dtype, size, steps, warnings)


# A binary mask saved lossily (JPEG) has grey pixels along its edges; an MRI slice has grey levels almost everywhere.
_MASK_GREY_SHARE = 0.02
_MASK_EDGE_BAND = 0.1  # values this close (share of the range) to either end count as that end


@dataclass
class Mask:
    """An uploaded ground-truth mask on the models' 256² grid.

    Attributes:
        mask: (256, 256) bool, True = tumor.
        steps: human-readable steps from the file to ``mask``, in order.
        warnings: reasons to doubt the mask (the page shows them prominently).
    """

    mask: np.ndarray
    steps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _mask_plane(pixels: np.ndarray, steps: list[str]) -> np.ndarray:
    """The mask's values as one (H, W) plane: a colour mask counts by each pixel's brightest channel."""
    if pixels.ndim == 3 and pixels.shape[0] <= MAX_SAMPLES < pixels.shape[-1]:
        pixels = np.moveaxis(pixels, 0, -1)  # planar (C, H, W) TIFF
    if pixels.ndim == 3 and pixels.shape[-1] in (2, 4):
        alpha = pixels[..., -1]
        if alpha.min() != alpha.max():
            # Transparency may be what marks the tumor, or just decoration: guessing could silently invert the mask.
            raise UploadError("the mask uses transparency (its alpha channel varies): save it without an alpha "
                              "channel, tumor white (or any non-zero value) on black")
        steps.append("alpha channel dropped (the same everywhere)")
        pixels = pixels[..., :-1]
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 2:
        return pixels
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise UploadError(f"unsupported mask layout ({'x'.join(map(str, pixels.shape))} values): expected one 2D "
                          "grayscale or RGB mask, not a stack or volume")
    if any((pixels[..., c] != pixels[..., 0]).any() for c in (1, 2)):
        steps.append("colour mask: each pixel counts by its brightest channel")
    return pixels.max(axis=-1)


def _binarize(values: np.ndarray, steps: list[str], warnings: list[str]) -> np.ndarray:
    """Tumor where the mask has its higher value; refuse anything that is not two-valued (up to lossy edges)."""
    if values.dtype == bool:
        steps.append("binary mask: True counts as tumor")
        return values
    if values.dtype.kind == "c":
        raise UploadError("the mask holds complex numbers: a mask is a binary image, tumor non-zero on a 0 background")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise UploadError("the mask holds NaN or infinite values")
    low, high = values.min().item(), values.max().item()
    if low == high:
        if high == 0:
            steps.append("every pixel is 0: no tumor on this slice")
            return np.zeros(values.shape, bool)
        raise UploadError(f"every pixel of the mask has the value {high:g}: a mask needs background pixels (0) "
                          "besides the tumor")
    band = (high - low) * _MASK_EDGE_BAND
    grey = np.count_nonzero((values > low + band) & (values < high - band)) / values.size
    if grey > _MASK_GREY_SHARE:
        raise UploadError(f"{grey:.0%} of the mask's pixels are grey levels between {low:g} and {high:g}: it looks "
                          "like an image, not a binary mask; save the mask with two values, tumor non-zero (e.g. "
                          "255) on a 0 background")
    middle = (low + high) / 2
    truth = values > middle
    steps.append(f"values above {middle:g} count as tumor (the mask runs from {low:g} to {high:g})"
                 + (f"; its {grey:.1%} grey edge pixels (lossy compression?) are split there" if grey else ""))
    if truth.mean() > 0.5:
        warnings.append("more than half of the slice is marked as tumor: is the mask inverted? The tumor must be the "
                        "brighter (non-zero) value")
    return truth


def read_mask_upload(name: str, data: bytes, size: tuple[int, int]) -> Mask:
    """Decode a ground-truth mask for an uploaded slice of ``size`` (height, width) onto the models' 256² grid.

    The file is read like a slice (same formats and size caps, DICOM excepted). It must have the slice's size and
    hold two values, the higher one being tumor: grayscale of any bit depth, or RGB (a coloured mask on black), with
    an alpha channel only when it is the same everywhere. Grey edge pixels of a lossily saved mask are split halfway.
    It is resized like the slice, by nearest neighbour so that it stays binary.

    Raises:
        UploadError: with a message for the user (not an image, corrupt, too large, a DICOM, another size than the
            slice, transparency, grey levels like an image, constant non-zero, NaN).
    """
    if data and _is_dicom(name, data):
        raise UploadError("DICOM masks (e.g. DICOM SEG objects) are not read here; export the mask as PNG or TIFF")
    steps: list[str] = []
    warnings: list[str] = []
    values = _mask_plane(decode(name, data, steps, warnings), steps)
    if values.shape != tuple(size):
        (h, w), (slice_h, slice_w) = values.shape, size
        raise UploadError(f"the mask is {w}x{h} pixels but the slice is {slice_w}x{slice_h}: a mask must have the "
                          "size of its slice")
    truth = _binarize(values, steps, warnings)
    h, w = truth.shape
    if (h, w) != (SIZE, SIZE):
        steps.append(f"resized from {w}x{h} to {SIZE}x{SIZE} like the slice (nearest neighbour, so it stays binary)")
        resized = Image.fromarray(truth.view(np.uint8)).resize((SIZE, SIZE), Image.Resampling.NEAREST)
        truth = np.asarray(resized) > 0
    return Mask(truth, steps, warnings)
