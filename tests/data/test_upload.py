"""Uploaded files: every supported format decodes to a 256² uint8 slice; every bad file gets a clear UploadError.

Hostile files are crafted in memory (``tests/uploads.py``; no binaries are committed): headers that declare huge images over a few bytes, and
Deflate streams that inflate far beyond what their header declares. Such files must be refused before memory is
spent on them, which ``tracemalloc`` measures (numpy reports its allocations to it).
"""
from __future__ import annotations

import re
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless
from uploads import (MRI, RNG, animated_gif, assert_own_message, deflated, deflated_dicom, dicom_bytes, mr_dataset,
                     pil_bytes, png_claiming, saved, tif_bytes, tiff_claiming, zeros)

from lgg_core.data.upload import MAX_PIXELS, UploadError, read_mask_upload, read_upload
from lgg_core.evaluation.metrics import slice_metrics


def refused(name: str, data: bytes) -> tuple[str, float]:
    """The UploadError message for the file and the peak memory (MiB) traced while reaching it."""
    tracemalloc.start()
    try:
        read_upload(name, data)
    except UploadError as err:
        return str(err), tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    raise AssertionError(f"{name} was accepted")


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


def dicom_of(ds: Dataset, pixel_data: bytes, **elements: object) -> bytes:
    """``ds`` with these pixel bytes and extra elements, saved."""
    ds.PixelData = pixel_data
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return saved(ds)


# Problem 1: files that declare (or inflate to) huge images are refused before memory is spent on them.

CLAIMS = {
    "tiff 6300² uint16": ("claim.tif", lambda: tiff_claiming(6300, 6300, zlib.compress(bytes(1000)))),
    "tiff 12600² uint16": ("claim.tif", lambda: tiff_claiming(12600, 12600, zlib.compress(bytes(1000)))),
    "tiff 2049x2048, 1 sample": ("claim.tif", lambda: tiff_claiming(2049, 2048, bytes(1000), bits=8, compression=1)),
    "png 3000²": ("claim.png", lambda: png_claiming(3000, 3000)),
    "png 100000²": ("claim.png", lambda: png_claiming(100_000, 100_000)),
    "dicom 4096²": ("claim.dcm", lambda: dicom_of(mr_dataset(4096, 4096), bytes(128))),
    "deflated dicom 8000²": ("claim.dcm", lambda: deflated_dicom(mr_dataset(8000, 8000), zeros(8000 * 8000 * 2),
                                                                 8000 * 8000 * 2)),
}


@pytest.mark.parametrize("case", list(CLAIMS))
def test_declared_size_over_the_cap_is_refused_before_decoding(case: str) -> None:
    name, build = CLAIMS[case]
    message, peak = refused(name, build())
    assert "too large" in message and "2048x2048" in message
    assert peak < 4, f"{case}: {peak:.1f} MiB traced before refusing"
    assert_own_message(message)


BOMBS = {
    # 64 KB of Deflate for a 64x64 strip that inflates to 64 MiB: tifffile (without imagecodecs) inflates it whole.
    "tiff strip": ("bomb.tif", lambda: tiff_claiming(64, 64, deflated(zeros(64 << 20), zlib.MAX_WBITS), bits=8)),
    # pydicom inflates a Deflated dataset whole before reading its header.
    "deflated dicom": ("bomb.dcm", lambda: deflated_dicom(mr_dataset(64, 64), zeros(64 << 20), 64 << 20)),
}


@pytest.mark.parametrize("case", list(BOMBS))
def test_stream_inflating_beyond_its_declared_size_is_refused(case: str) -> None:
    name, build = BOMBS[case]
    message, peak = refused(name, build())
    assert "decompression bomb" in message
    assert peak < 8, f"{case}: {peak:.1f} MiB traced before refusing"


def test_pixel_cap_counts_pixels_not_samples() -> None:
    rgba = np.zeros((2048, 2048, 4), np.uint8)
    rgba[:1024, :, 1] = 200
    out = read_upload("rgba.tif", tif_bytes(rgba))  # 16.8 M samples but 4.2 M pixels: at the cap, accepted
    assert out.image.shape == (256, 256, 3) and MAX_PIXELS == 2048 * 2048


def rle_dicom() -> bytes:
    ds = mr_dataset(64, 64)
    ds.PixelData = RNG.integers(0, 4000, (64, 64)).astype(np.uint16).tobytes()
    ds.compress(RLELossless)
    return saved(ds)


def jpeg_dicom(declared: tuple[int, int], actual: tuple[int, int]) -> bytes:
    ds = mr_dataset(*declared, JPEGBaseline8Bit, bits=8)
    ds.BitsStored, ds.HighBit = 8, 7
    ds.PixelData = encapsulate([pil_bytes(np.resize(MRI[..., 0], actual), "JPEG")])
    return saved(ds)


LIMITS = {
    "5 samples": ("5.tif", lambda: tif_bytes(np.zeros((64, 64, 5), np.uint8), photometric="minisblack",
                                             planarconfig="contig"), "5 values per pixel"),
    "complex128": ("c.tif", lambda: tif_bytes(np.ones((64, 64), np.complex128)), "16 bytes per value"),
    "multi-frame dicom": ("f.dcm", lambda: dicom_of(mr_dataset(64, 64), bytes(2 * 64 * 64 * 2), NumberOfFrames=2),
                          "2 frames"),
    "dicom with 4 samples": ("s.dcm", lambda: dicom_of(mr_dataset(64, 64, samples=4, bits=8), bytes(4 * 64 * 64)),
                             "4 values per pixel"),
    "animated gif": ("a.gif", animated_gif, "several frames"),
    "tiff with lzma": ("l.tif", lambda: tif_bytes(MRI, compression="lzma"), "LZMA compression"),
    "tiff strip over 32 MiB": ("s.tif", lambda: tiff_claiming(2048, 2048, zlib.compress(bytes(1000)), bits=64,
                                                              samples=2), "strips or tiles are too large"),
    "dicom with RLE": ("r.dcm", rle_dicom, "RLE Lossless"),
    "dicom whose JPEG is larger than declared": ("j.dcm", lambda: jpeg_dicom((64, 64), (1000, 1500)),
                                                 "1500x1000 pixels but its header declares 64x64"),
}


@pytest.mark.parametrize("case", list(LIMITS))
def test_other_declared_limits_are_enforced(case: str) -> None:
    name, build, message = LIMITS[case]
    with pytest.raises(UploadError, match=re.escape(message)):
        read_upload(name, build())


def test_dicom_pixel_data_longer_than_declared_is_not_read_as_more_frames() -> None:
    data = dicom_of(mr_dataset(64, 64), np.arange(8 * 64 * 64, dtype=np.uint16).tobytes())
    assert read_upload("x.dcm", data).original_shape == (64, 64)


def gradient(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A non-blank image that Deflate compresses quickly (every row is the same)."""
    row = np.linspace(0, 1000, shape[1], dtype=np.float64)
    return np.broadcast_to(row.reshape((1, shape[1]) + (1,) * (len(shape) - 2)), shape).astype(dtype)


def largest_dicom() -> bytes:
    ds = mr_dataset(2048, 2048, samples=3, bits=64)
    ds.RescaleSlope, ds.RescaleIntercept = 2, -10
    rows = gradient((256, 2048, 3), np.uint64).tobytes()
    return deflated_dicom(ds, lambda: (rows for _ in range(8)), len(rows) * 8)


LARGEST = {
    # The caps' worst case: 2048² pixels x 4 samples x 8 bytes = 128 MiB decoded, in 32 MiB Deflate strips.
    "tiff 2048² RGBA float64": ("big.tif", lambda: tif_bytes(
        gradient((2048, 2048, 4), np.float64), photometric="rgb", extrasamples=[2], compression="zlib",
        compressionargs={"level": 1}, rowsperstrip=512)),
    # DICOM's: 3 samples x 64 bits, Deflate-compressed, with a rescale.
    "deflated dicom 2048² RGB 64-bit": ("big.dcm", largest_dicom),
}


@pytest.mark.parametrize("case", list(LARGEST))
def test_largest_allowed_upload_stays_within_a_few_hundred_mb(case: str, capsys: pytest.CaptureFixture) -> None:
    name, build = LARGEST[case]
    data = build()
    tracemalloc.start()
    try:
        out = read_upload(name, data)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert out.image.shape == (256, 256, 3) and out.original_shape[:2] == (2048, 2048)
    with capsys.disabled():
        print(f"\n{case}: {len(data) / 2**20:.1f} MiB file, peak traced memory {peak:.0f} MiB")
    assert peak < 400, f"{case}: {peak:.0f} MiB"


# Problem 2: every message is the app's own, and doubtful files are accepted with a warning.

def test_supported_pillow_formats_decode() -> None:
    for fmt, name in [("BMP", "a.bmp"), ("GIF", "a.gif"), ("WEBP", "a.webp")]:
        out = read_upload(name, pil_bytes(MRI, fmt, **({"lossless": True} if fmt == "WEBP" else {})))
        assert out.image.shape == (256, 256, 3) and not out.warnings, name


MESSAGES = {
    "text named .png": ("notes.png", b"hello, this is text"),
    "TIFF cut to its header": ("cut.tif", tif_bytes(MRI)[:8]),
    "TIFF cut in its pixels": ("cut.tif", tif_bytes(MRI)[:5000]),
    "PNG cut": ("cut.png", pil_bytes(MRI, "PNG")[:5000]),
    "EPS, which Pillow would hand to Ghostscript": ("a.eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n"),
    "ICO": ("a.ico", pil_bytes(MRI[:64, :64], "ICO")),
    "random bytes": ("brain.nii", RNG.integers(0, 256, 4000, dtype=np.uint8).tobytes()),
    "DICOM cut": ("cut.dcm", dicom_bytes(MRI[..., 0])[:3000]),
    "deflated DICOM cut": ("cut.dcm", dicom_bytes(MRI[..., 0], syntax=DeflatedExplicitVRLittleEndian)[:1000]),
    "CT DICOM": ("ct.dcm", dicom_bytes(MRI[..., 0], modality="CT")),
    "DICOM with a crafted modality": ("x.dcm", dicom_bytes(MRI[..., 0], modality="**[click](http://x.example)**")),
}


@pytest.mark.parametrize("case", list(MESSAGES))
def test_messages_are_the_apps_own(case: str) -> None:
    message, _ = refused(*MESSAGES[case])
    assert_own_message(message)
    assert "http" not in message and "0x" not in message


def test_non_mr_dicom_is_refused_with_its_modality() -> None:
    message, _ = refused("ct.dcm", dicom_bytes(MRI[..., 0], modality="CT"))
    assert "not MRI" in message and "CT" in message


def test_deflated_dicom_within_the_caps_decodes() -> None:
    pixels = RNG.integers(0, 4000, (128, 128)).astype(np.uint16)
    plain = read_upload("a.dcm", dicom_bytes(pixels))
    packed = read_upload("a.dcm", dicom_bytes(pixels, syntax=DeflatedExplicitVRLittleEndian))
    np.testing.assert_array_equal(plain.image, packed.image)


def test_jpeg_dicom_of_the_declared_size_decodes() -> None:
    assert read_upload("j.dcm", jpeg_dicom((64, 64), (64, 64))).original_shape == (64, 64)


WARNINGS = {
    "mask saved as an image": ("mask.png", lambda: pil_bytes(np.where(MRI[..., 0] > 128, 255, 0).astype(np.uint8),
                                                             "PNG"), "segmentation mask"),
    "boolean TIFF": ("mask.tif", lambda: tif_bytes(MRI[..., 0] > 128), "segmentation mask"),
    "complex TIFF": ("raw.tif", lambda: tif_bytes((MRI[..., 0] + 1j * MRI[..., 1]).astype(np.complex64)),
                     "complex"),
    "DICOM without a modality": ("x.dcm", lambda: dicom_bytes(MRI[..., 0], modality=None), "modality"),
}


@pytest.mark.parametrize("case", list(WARNINGS))
def test_doubtful_files_are_accepted_with_a_warning(case: str) -> None:
    name, build, word = WARNINGS[case]
    out = read_upload(name, build())
    assert out.image.shape == (256, 256, 3)
    assert any(word in w for w in out.warnings), out.warnings
    for warning in out.warnings:
        assert_own_message(warning)


def test_complex_pixels_use_their_magnitude() -> None:
    magnitude = RNG.integers(1, 4000, (256, 256)).astype(np.float32)
    phase = RNG.uniform(-np.pi, np.pi, magnitude.shape)
    out = read_upload("raw.tif", tif_bytes((magnitude * np.exp(1j * phase)).astype(np.complex64)))
    expected = read_upload("mag.tif", tif_bytes(magnitude))
    assert np.abs(out.image.astype(int) - expected.image).max() <= 1  # float32 rounding of the magnitude


def test_an_ordinary_slice_has_no_warning() -> None:
    demo = next((Path(__file__).resolve().parents[2] / "demo/kaggle_3m").glob("TCGA_*/*_12.tif"))
    assert read_upload(demo.name, demo.read_bytes()).warnings == []


# Ground-truth masks uploaded with a slice.
def square(size: int = 512, top: int = 100, left: int = 150, side: int = 80, value: int = 255,
           dtype: type = np.uint8) -> np.ndarray:
    mask = np.zeros((size, size), dtype)
    mask[top:top + side, left:left + side] = value
    return mask


def mask_png_with_alpha(alpha: np.ndarray) -> bytes:
    return pil_bytes(np.dstack([square()] * 3 + [alpha]), "PNG")


GOOD_MASKS = {
    "PNG 0/255": ("m.png", lambda: pil_bytes(square(), "PNG"), ""),
    "1-bit PNG": ("m.png", lambda: pil_bytes(square() > 0, "PNG"), "True counts as tumor"),
    "16-bit TIFF 0/65535": ("m.tif", lambda: tif_bytes(square(value=65535, dtype=np.uint16)), "above 32767.5"),
    "labels 0/1": ("m.png", lambda: pil_bytes(square(value=1), "PNG"), "above 0.5"),
    "float TIFF": ("m.tif", lambda: tif_bytes(square(value=1, dtype=np.float32)), "above 0.5"),
    "red on black": ("m.png", lambda: pil_bytes(np.dstack([square(), square(value=0), square(value=0)]), "PNG"),
                     "brightest channel"),
    "opaque RGBA": ("m.png", lambda: mask_png_with_alpha(np.full((512, 512), 255, np.uint8)), "alpha channel dropped"),
    "lossy JPEG": ("m.jpg", lambda: pil_bytes(square(), "JPEG", quality=50), "above 127.5"),
}


@pytest.mark.parametrize("case", list(GOOD_MASKS))
def test_a_mask_is_read_onto_the_model_grid(case: str) -> None:
    name, build, step = GOOD_MASKS[case]
    out = read_mask_upload(name, build(), (512, 512))
    assert out.mask.shape == (256, 256) and out.mask.dtype == bool
    np.testing.assert_array_equal(out.mask, square(256, 50, 75, 40) > 0)  # the square, halved by nearest neighbour
    assert any(step in s for s in out.steps), out.steps
    assert any("nearest neighbour" in s for s in out.steps) and out.warnings == []


def test_an_empty_mask_means_no_tumor_and_an_inverted_one_is_doubted() -> None:
    empty = read_mask_upload("m.png", pil_bytes(np.zeros((256, 256), np.uint8), "PNG"), (256, 256))
    assert not empty.mask.any() and any("no tumor" in s for s in empty.steps)
    inverted = read_mask_upload("m.png", pil_bytes(255 - square(256), "PNG"), (256, 256))
    assert any("inverted" in w for w in inverted.warnings)
    for warning in inverted.warnings:
        assert_own_message(warning)


def test_a_non_square_mask_is_stretched_like_its_slice() -> None:
    image = np.kron(MRI[..., 0], np.ones((2, 1), np.uint8))  # 256 wide, 512 high
    truth = np.zeros((512, 256), np.uint8)
    truth[200:300, 50:150] = 255
    slice_ = read_upload("tall.png", pil_bytes(image, "PNG"))
    assert slice_.size == (512, 256)
    out = read_mask_upload("tall.png", pil_bytes(truth, "PNG"), slice_.size)
    np.testing.assert_array_equal(np.argwhere(out.mask).min(0), [100, 50])
    np.testing.assert_array_equal(np.argwhere(out.mask).max(0), [149, 149])


BAD_MASKS = {
    "other size": ("m.png", pil_bytes(square(256), "PNG"), "the mask is 256x256 pixels but the slice is 512x512"),
    "an MRI image": ("m.png", pil_bytes(np.kron(MRI[..., 1], np.ones((2, 2), np.uint8)), "PNG"), "grey levels"),
    "transparency": ("m.png", mask_png_with_alpha(square(value=200)), "transparency"),
    "not an image": ("m.png", b"this is not an image", "not a readable image"),
    "too large": ("m.png", png_claiming(100_000, 100_000), "too large"),
    "DICOM": ("m.dcm", dicom_bytes(square(64)), "DICOM masks"),
    "all tumor": ("m.png", pil_bytes(np.full((512, 512), 255, np.uint8), "PNG"), "needs background"),
    "NaN": ("m.tif", tif_bytes(np.full((512, 512), np.nan, np.float32)), "NaN"),
    "complex": ("m.tif", tif_bytes(square(dtype=np.complex64)), "complex"),
    "stack": ("m.tif", tif_bytes(np.zeros((3, 512, 512, 3), np.uint8)), "several pages"),
}


@pytest.mark.parametrize("case", list(BAD_MASKS))
def test_a_bad_mask_gets_a_clear_message(case: str) -> None:
    name, data, message = BAD_MASKS[case]
    with pytest.raises(UploadError, match=message) as refusal:
        read_mask_upload(name, data, (512, 512))
    assert_own_message(str(refusal.value))


def test_dice_and_hd95_of_an_uploaded_slice_and_mask() -> None:
    """The page scores a prediction against the uploaded mask on the 256² grid: a 40-pixel square shifted by 4."""
    slice_ = read_upload("big.png", pil_bytes(np.kron(MRI[..., 1], np.ones((2, 2), np.uint8)), "PNG"))
    truth = read_mask_upload("big_mask.png", pil_bytes(square(), "PNG"), slice_.size).mask
    prediction = np.roll(truth, 4, axis=1)
    scores = slice_metrics(prediction, truth)
    assert scores["dice"] == pytest.approx(2 * 36 * 40 / (2 * 40 * 40))
    assert scores["hd95"] == 4.0 and (scores["tp"], scores["fp"], scores["fn"]) == (1440, 160, 160)
