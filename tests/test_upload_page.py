"""AppTest of the Upload page with odd and hostile files: the visitor gets the app's own words, never a traceback."""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_upload import (MRI, animated_gif, assert_own_message, deflated, deflated_dicom, dicom_bytes, mr_dataset,
                         pil_bytes, png_claiming, tif_bytes, tiff_claiming, zeros)

import lgg_core.data.upload

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")


pytestmark = pytest.mark.usefixtures("app_env")


def upload_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    return at.switch_page("pages/upload.py").run()


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, (name, [e.value for e in at.exception])
    return at


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


# Each is refused before any model runs, so one AppTest goes through all of them quickly.
REFUSED = {
    "blank.bmp": pil_bytes(np.zeros((64, 64), np.uint8), "BMP"),
    "blank.gif": pil_bytes(np.zeros((64, 64), np.uint8), "GIF"),
    "blank.webp": pil_bytes(np.zeros((64, 64, 3), np.uint8), "WEBP"),
    "brain.nii": bytes(range(256)) * 40,
    "claims-6300.tif": tiff_claiming(6300, 6300, zlib.compress(bytes(1000))),
    "claims-100000.png": png_claiming(100_000, 100_000),
    "claims-8000.dcm": deflated_dicom(mr_dataset(8000, 8000), zeros(1 << 20), 1 << 20),
    "bomb.tif": tiff_claiming(64, 64, deflated(zeros(16 << 20), zlib.MAX_WBITS), bits=8),
    "cut.tif": tif_bytes(MRI)[:8],
    "text.png": b"this is not an image",
    "ct.dcm": dicom_bytes(MRI[..., 0], modality="CT"),
    "stack.tif": tif_bytes(np.zeros((3, 64, 64, 3), np.uint8)),
    "animated.gif": animated_gif(),
    "complex128.tif": tif_bytes(np.ones((64, 64), np.complex128)),
}


def test_every_refused_upload_gets_the_apps_own_message() -> None:
    at = upload_page()
    for name, data in REFUSED.items():
        upload(at, name, data)
        assert len(at.error) == 1, (name, texts(at.error))
        message = texts(at.error)
        assert f"**{name}** cannot be used: " in message, message
        assert_own_message(message)
    at.switch_page("pages/models.py").run()
    assert not at.exception


def test_any_extension_reaches_the_decoder_and_a_doubtful_slice_is_predicted_with_a_warning() -> None:
    mask = np.where(MRI[..., 0] > 128, 255, 0).astype(np.uint8)
    at = upload(upload_page(), "mask.webp", pil_bytes(mask, "WEBP", lossless=True))
    assert not at.error, texts(at.error)
    assert "segmentation mask" in texts(at.warning) and "mask.webp" in texts(at.warning)
    assert {b.label for b in at.get("download_button")} >= {"Overlay PNG", "Mask PNG"}


def test_an_unforeseen_failure_shows_a_message_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(name: str, data: bytes) -> None:
        raise RuntimeError(f"decoder crashed in {Path(__file__)} at 0xdeadbeef")

    monkeypatch.setattr(lgg_core.data.upload, "read_upload", fail)
    at = upload(upload_page(), "slice.png", pil_bytes(MRI, "PNG"))
    message = texts(at.error)
    assert "**slice.png** could not be read" in message and "crashed" not in message
    assert_own_message(message)
