"""Uploaded files: every supported format decodes to a 256² uint8 slice; every bad file gets a clear UploadError."""
from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from lgg_core.data.upload import MAX_PIXELS, UploadError, read_upload

RNG = np.random.default_rng(0)


def pil_bytes(array: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def tif_bytes(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)
    return buffer.getvalue()


def dicom_bytes(pixels: np.ndarray, monochrome1: bool = False, with_pixels: bool = True) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta, ds.SOPClassUID, ds.SOPInstanceUID = meta, MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns = "MR", *pixels.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 12, 11, 0
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = 2, -10
    if with_pixels:
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


MRI = RNG.integers(0, 256, (256, 256, 3), dtype=np.uint8)


def test_rgb_tif_passes_through_unchanged() -> None:
    out = read_upload("slice.tif", tif_bytes(MRI))
    assert out.image.dtype == np.uint8 and out.image.shape == (256, 256, 3)
    np.testing.assert_array_equal(out.image, MRI)


@pytest.mark.parametrize("fmt,name", [("PNG", "a.png"), ("JPEG", "a.jpg")])
def test_png_and_jpeg_decode(fmt: str, name: str) -> None:
    out = read_upload(name, pil_bytes(MRI, fmt))
    assert out.image.shape == (256, 256, 3)


def test_grayscale_is_copied_to_three_channels_and_said() -> None:
    gray = RNG.integers(0, 256, (256, 256), dtype=np.uint8)
    out = read_upload("gray.png", pil_bytes(gray, "PNG"))
    assert all((out.image[..., c] == gray).all() for c in range(3))
    assert any("grayscale" in s for s in out.steps)


def test_rgba_drops_alpha() -> None:
    rgba = np.dstack([MRI, np.full((256, 256), 255, np.uint8)])
    out = read_upload("rgba.png", pil_bytes(rgba, "PNG"))
    np.testing.assert_array_equal(out.image, MRI)
    assert any("alpha" in s for s in out.steps)


@pytest.mark.parametrize("encode", [lambda a: pil_bytes(a, "PNG"), tif_bytes], ids=["png", "tif"])
def test_16_bit_is_scaled_to_8_bit(encode) -> None:
    deep = (RNG.integers(0, 4096, (256, 256))).astype(np.uint16)
    out = read_upload("deep.png", encode(deep))
    assert out.image.dtype == np.uint8 and out.image.max() == 255 and out.image.min() == 0
    assert any("scaled to 0–255" in s for s in out.steps)


def test_large_image_is_resized_and_said() -> None:
    out = read_upload("big.png", pil_bytes(np.kron(MRI[..., 0], np.ones((4, 5), np.uint8)), "PNG"))
    assert out.image.shape == (256, 256, 3)
    assert any("resized from 1280x1024" in s for s in out.steps) and any("not square" in s for s in out.steps)


def test_dicom_applies_rescale_and_monochrome1() -> None:
    pixels = RNG.integers(0, 4000, (128, 128)).astype(np.uint16)
    plain, inverted = read_upload("a.dcm", dicom_bytes(pixels)), read_upload("b.dcm", dicom_bytes(pixels, True))
    assert plain.image.shape == (256, 256, 3)
    assert any("rescale" in s for s in plain.steps) and any("MONOCHROME1" in s for s in inverted.steps)
    assert np.corrcoef(plain.image[..., 0].ravel(), inverted.image[..., 0].ravel())[0, 1] < -0.9


BAD_FILES = {
    "empty": ("empty.tif", b"", "empty"),
    "not an image": ("notes.png", b"hello, this is text", "not a readable image"),
    "corrupt tif": ("bad.tif", b"II*\x00" + bytes(200), "cannot read the TIFF"),
    "truncated tif": ("cut.tif", tif_bytes(MRI)[:5000], "corrupt or truncated"),
    "truncated png": ("cut.png", pil_bytes(MRI, "PNG")[:5000], "corrupt or truncated"),
    "tiny": ("tiny.png", pil_bytes(MRI[:8, :8], "PNG"), "too small"),
    "blank": ("blank.png", pil_bytes(np.zeros((256, 256), np.uint8), "PNG"), "blank"),
    "volume": ("stack.tif", tif_bytes(np.zeros((20, 256, 256), np.uint8)), "volume"),
    "not dicom": ("fake.dcm", b"\x00" * 300, "not a readable DICOM"),
    "dicom without pixels": ("nopix.dcm", dicom_bytes(np.zeros((64, 64)), with_pixels=False), "no image"),
    "nan float": ("nan.tif", tif_bytes(np.full((64, 64), np.nan, np.float32)), "NaN"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_raises_a_clear_upload_error(case: str) -> None:
    name, data, message = BAD_FILES[case]
    with pytest.raises(UploadError, match=message):
        read_upload(name, data)


def test_huge_png_is_refused_before_decoding() -> None:
    side = int(MAX_PIXELS**0.5) + 100
    # A 1-bit PNG of that size is only a few MB but would need far more memory decoded.
    huge = pil_bytes(np.zeros((side, side), bool), "PNG")
    with pytest.raises(UploadError, match="too large"):
        read_upload("huge.png", huge)
