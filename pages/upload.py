"""Upload: predictions, Grad-CAM and downloads for one's own slice (TIFF, PNG, JPEG, BMP, GIF, WebP, DICOM)."""
from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from lgg_core.explain.cam import CAM_METHODS, ExplainError, describe_layer, explain, layer_options
from lgg_core.app.overlay import CAM_SCALE, PRED_COLOR, channel_view, colorbar, overlay, png_bytes, scaled_heatmap
from lgg_core.data.upload import EXTENSIONS, FORMATS, MAX_PIXELS, UploadError, read_upload
from lgg_core.app.state import model, predict_masks, predictor, require_models, usable


st.title("Upload a slice")
st.markdown(
    "Upload one axial brain-MRI slice. **Preprocessing:** 8-bit images keep their 0–255 intensities; 16-bit, float "
    "and DICOM images are scaled to 0–255 (0.5th–99.5th percentile, after the DICOM rescale); a grayscale image is "
    "copied into all three channels (the models expect pre-contrast, FLAIR, post-contrast); an alpha channel is "
    "dropped; the slice is resized to 256×256; then, as in training, scaled to [0, 1] and ImageNet-normalized.")
models = usable()
require_models(models)

# No type= filter: the file's content decides, so every refusal is the app's own message, not Streamlit's.
upload = st.file_uploader("Slice file", help=f"One 2D slice as {FORMATS} ({', '.join(EXTENSIONS)}), at most "
                          f"{MAX_PIXELS:,} pixels (e.g. 2048×2048); DICOM must be MR.")
chosen = st.multiselect("Models", list(models), default=list(models)[:2])
if upload is None:
    st.stop()
try:
    slice_ = read_upload(upload.name, upload.getvalue())
except UploadError as err:
    st.error(f"**{upload.name}** cannot be used: {err}")
    st.stop()
except Exception:  # a failure no check foresaw: the visitor gets a message, the server log the traceback
    logging.getLogger(__name__).exception("reading the upload %r failed", upload.name)
    st.error(f"**{upload.name}** could not be read: the app failed on this file. Try exporting it again, e.g. as an "
             "uncompressed TIFF or PNG.")
    st.stop()
for warning in slice_.warnings:
    st.warning(f"**{upload.name}**: {warning}")

with st.expander(f"What was done to {upload.name} ({'x'.join(map(str, slice_.original_shape))}, "
                 f"{slice_.original_dtype})", expanded=True):
    st.markdown("\n".join(f"- {step}" for step in slice_.steps))
base = channel_view(slice_.image, "all three as RGB")
stem = Path(upload.name).stem
columns = st.columns(4)
columns[0].image(base, caption="Preprocessed input (RGB = the three channels)", width="stretch")
with st.spinner("Predicting…"):
    for i, name in enumerate(chosen, start=1):
        record = models[name]
        column = columns[i % 4]
        if record.task == "classify":
            prob = float(predictor(record).predict(slice_.image[None])[0])
            column.metric(f"{name}: tumor probability", f"{prob:.3f}")
            continue
        mask = predict_masks(name, slice_.image[None])[0] > 0.5
        picture = overlay(base, mask, PRED_COLOR, "fill", 0.45)
        column.image(picture, caption=f"{name}: {int(mask.sum())} tumor pixels", width="stretch")
        column.download_button("Overlay PNG", png_bytes(picture), f"{stem}_{name}_overlay.png", "image/png",
                               key=f"ov-{name}")
        column.download_button("Mask PNG", png_bytes(mask), f"{stem}_{name}_mask.png", "image/png", key=f"mask-{name}")

st.subheader("Grad-CAM")
cam_model = st.selectbox("Explain with", chosen or list(models))
record = models[cam_model]
net = model(record)
method = st.selectbox("Method", list(CAM_METHODS))
layer = st.selectbox("Target layer", layer_options(net), format_func=lambda name: describe_layer(net, name))
target = predict_masks(cam_model, slice_.image[None])[0] > 0.5 if record.task == "segment" else None
try:
    with st.spinner(f"Computing {method}…"):
        result = explain(net, slice_.image, method, layer, target, None, record.input_size, faithfulness=False)
    picture, outline = scaled_heatmap(base, result.cam, CAM_SCALE, 0.5), ""
    if target is not None:
        picture = overlay(picture, target, PRED_COLOR, "contour", 1.0)
        outline = " · red: the predicted mask whose tumor logits are explained"
    st.image(picture, caption=f"{method} of {cam_model} at {describe_layer(net, layer)}{outline}", width=384)
    st.plotly_chart(colorbar(CAM_SCALE), key="cam-colorbar", config={"displayModeBar": False})
except ExplainError as err:
    st.info(str(err))
