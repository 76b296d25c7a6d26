"""Upload samples shared by the decoder's tests (``data/test_upload.py``) and the Upload page's (``app/``): ordinary
slices in every format, and hostile files crafted in memory (no binaries are committed)."""
from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable, Iterable

import numpy as np
import tifffile
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, MRImageStorage, generate_uid

RNG = np.random.default_rng(0)


def pil_bytes(array: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def tif_bytes(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)
    return buffer.getvalue()


def mr_dataset(rows: int, columns: int, syntax: str = ExplicitVRLittleEndian, modality: str | None = "MR",
               samples: int = 1, bits: int = 16) -> Dataset:
    """A DICOM MR image header without pixels."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta, ds.SOPClassUID, ds.SOPInstanceUID = meta, MRImageStorage, meta.MediaStorageSOPInstanceUID
    if modality is not None:
        ds.Modality = modality
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, samples
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, min(bits, 12), min(bits, 12) - 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
    if samples > 1:
        ds.PlanarConfiguration = 0
    return ds


def saved(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_bytes(pixels: np.ndarray, monochrome1: bool = False, with_pixels: bool = True, modality: str | None = "MR",
                syntax: str = ExplicitVRLittleEndian) -> bytes:
    ds = mr_dataset(*pixels.shape, syntax, modality)
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = 2, -10
    if with_pixels:
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    return saved(ds)


def deflated(chunks: Callable[[], Iterable[bytes]], wbits: int) -> bytes:
    """Deflate a stream given in chunks, so that hundreds of MB of zeros never exist in memory at once."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, wbits)
    return b"".join(compressor.compress(chunk) for chunk in chunks()) + compressor.flush()


def zeros(count: int, block: int = 1 << 20) -> Callable[[], Iterable[bytes]]:
    return lambda: (bytes(min(block, count - start)) for start in range(0, count, block))


def deflated_dicom(ds: Dataset, pixel_data: Callable[[], Iterable[bytes]], pixel_bytes: int) -> bytes:
    """A Deflated Explicit VR Little Endian DICOM of ``ds`` whose Pixel Data holds ``pixel_bytes`` streamed bytes."""
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    header = saved(ds)  # pydicom deflates the dataset (without pixels) after the File Meta group
    start = 144 + int.from_bytes(header[140:144], "little")  # (0002,0000) holds the group's length
    dataset = zlib.decompress(header[start:], -zlib.MAX_WBITS)
    element = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixel_bytes)
    return header[:start] + deflated(lambda: (dataset, element, *pixel_data()), -zlib.MAX_WBITS)


def tiff_claiming(width: int, height: int, strip: bytes, bits: int = 16, compression: int = 8,
                  samples: int = 1) -> bytes:
    """A little-endian TIFF whose one IFD declares width x height x samples over a single strip of ``strip``."""
    count = 9
    strip_offset = 8 + 2 + 12 * count + 4  # header, tag count, tags, next-IFD offset
    short, long = "<HHIHH", "<HHII"  # tag, type (3 SHORT, 4 LONG), count 1, value (a SHORT is padded to 4 bytes)
    tags = [struct.pack(long, 256, 4, 1, width), struct.pack(long, 257, 4, 1, height),
            struct.pack(short, 258, 3, 1, bits, 0), struct.pack(short, 259, 3, 1, compression, 0),
            struct.pack(short, 262, 3, 1, 1, 0), struct.pack(long, 273, 4, 1, strip_offset),
            struct.pack(short, 277, 3, 1, samples, 0), struct.pack(long, 278, 4, 1, height),
            struct.pack(long, 279, 4, 1, len(strip))]
    return b"II*\x00" + struct.pack("<IH", 8, count) + b"".join(tags) + struct.pack("<I", 0) + strip


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header (IHDR, CRC fixed) declares width x height."""
    png = bytearray(pil_bytes(np.zeros((64, 64), np.uint8), "PNG"))
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(png[12:29]))
    return bytes(png)


def assert_own_message(message: str) -> None:
    """A message for the user: no object repr, no server path, not a bare number as the whole explanation."""
    assert not re.search(r"<[^>]*object at 0x|0x[0-9a-f]{6,}", message), message
    assert not re.search(r"(^|\s)/\w+/|[A-Z]:\\|site-packages|\.py\b", message), message
    assert not re.search(r":\s*-?[\d.]+\s*$", message), message
    assert len(re.sub(r"[\d\W]", "", message)) > 20, message


MRI = RNG.integers(0, 256, (256, 256, 3), dtype=np.uint8)


def animated_gif() -> bytes:
    frames = [Image.fromarray(MRI), Image.fromarray(255 - MRI)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()
