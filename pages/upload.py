"""Upload: predictions, Grad-CAM and downloads for one's own slice (TIFF, PNG, JPEG, BMP, GIF, WebP, DICOM), scored
against its ground-truth mask when one is given."""
from __future__ import annotations

import logging
from itertools import cycle
from pathlib import Path

import pandas as pd
import streamlit as st

from lgg_core.evaluation.metrics import slice_metrics
from lgg_core.explain.cam import CAM_METHODS, ExplainError, describe_layer, explain, layer_options
from lgg_core.app.overlay import (CAM_SCALE, COLOUR_MODES, GT_COLOR, PRED_COLOR, channel_view, colorbar, error_legend,
                                  error_overlay, overlay, png_bytes, scaled_heatmap)
from lgg_core.data.upload import EXTENSIONS, FORMATS, MAX_PIXELS, SIZE, UploadError, read_mask_upload, read_upload
from lgg_core.app.state import (gated_options, lone_slice_note, model, predict_masks, predict_with_gate, predictor,
                                require_models, upload_inputs, usable)
from lgg_core.data.inputs import lone_slice_inputs

STANDARDISATION = """
**What it is.** Before anything else, these models rescale each of the slice's three channels on its own to an
average of 0 and a spread of 1, measured over the whole 256×256 slice. What they then see is the pattern inside the
slice: which regions are brighter than the rest of *this* scan, not how bright it is in absolute terms.

**Why.** Scanners and protocols differ in overall brightness. On one fixed scale, a tumor that is bright for its own
scan can be darker than healthy tissue of another one, and is missed: without it, every model of the zoo scored
Dice 0 on the same few test patients with a dark FLAIR scan; with it, their tumors were found.

**What it means for your slice.**
- Its overall brightness and contrast do not matter to these models: brightening, darkening or stretching a whole
  channel cancels out (as long as nothing is clipped to pure black or white). Models without it do depend on them, so
  a dark or washed-out export can make them miss a tumor.
- What is in the frame does matter, because the average and spread are taken over everything: the models learned
  from whole axial slices with black around the head. A tight crop, a wide border, text or burnt-in marks shift the
  statistics and change the result.
- A grayscale file is copied into all three channels, so all three are standardised alike, whereas the models
  learned from three different sequences.
"""

st.title("Upload a slice")
st.markdown(
    "Upload one axial brain-MRI slice. **Preprocessing:** 8-bit images keep their 0–255 intensities; 16-bit, float "
    "and DICOM images are scaled to 0–255 (0.5th–99.5th percentile, after the DICOM rescale); a grayscale image is "
    "copied into all three channels (the models expect pre-contrast, FLAIR, post-contrast); an alpha channel is "
    "dropped; the slice is resized to 256×256; then, as in training, scaled to [0, 1] and ImageNet-normalized. "
    "Some models then standardise the slice on their own (below).")
models = usable()
require_models(models)
gated = gated_options()
with st.expander("Per-slice standardisation: what some models do to your slice first"):
    st.markdown(STANDARDISATION)
    on = [name for name, record in models.items() if record.standardizes]
    off = [name for name in models if name not in on]
    st.markdown(f"- **Standardise each slice:** {', '.join(on) or 'none'}\n- **Use the intensities as they are:** "
                f"{', '.join(off) or 'none'}" + ("\n- **Gated pipelines:** each part as listed above" if gated else ""))

# No type= filter: the file's content decides, so every refusal is the app's own message, not Streamlit's.
upload = st.file_uploader("Slice file", help=f"One 2D slice as {FORMATS} ({', '.join(EXTENSIONS)}), at most "
                          f"{MAX_PIXELS:,} pixels (e.g. 2048×2048); DICOM must be MR.")
truth_file = st.file_uploader(
    "Ground-truth mask (optional)",
    help="The tumor mask of the same slice, the same size as the slice file: tumor white (any non-zero value) on "
         "black, grayscale or RGB, as PNG, TIFF, BMP, GIF, WebP or JPEG. It scores each model (Dice, HD95) and "
         "colours its errors. Like the slice, it is never stored.")
chosen = st.multiselect("Models", [*models, *gated], default=list(models)[:2],
                        help="gated: the classifier decides whether the segmenter's mask is kept; each slice says "
                             "the classifier's probability and decision")
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

truth = None
if truth_file is not None:
    try:
        found = read_mask_upload(truth_file.name, truth_file.getvalue(), slice_.size)
    except UploadError as err:
        st.error(f"**{truth_file.name}** cannot be used as the ground truth: {err}. The predictions are shown "
                 "without scores.")
    except Exception:  # as above: a message for the visitor, the traceback for the server log
        logging.getLogger(__name__).exception("reading the mask upload %r failed", truth_file.name)
        st.error(f"**{truth_file.name}** could not be read as a mask: the app failed on this file. Try saving it "
                 "again as PNG. The predictions are shown without scores.")
    else:
        truth = found.mask
        for warning in found.warnings:
            st.warning(f"**{truth_file.name}**: {warning}")

with st.expander(f"What was done to {upload.name} ({'x'.join(map(str, slice_.original_shape))}, "
                 f"{slice_.original_dtype})" + (f" and {truth_file.name}" if truth is not None else ""),
                 expanded=True):
    st.markdown("\n".join(f"- {step}" for step in slice_.steps))
    if truth is not None:
        st.markdown(f"**{truth_file.name}**, the ground truth:\n" + "\n".join(f"- {step}" for step in found.steps))
base = channel_view(slice_.image, "all three as RGB")
stem = Path(upload.name).stem
errors = truth is not None and st.radio(
    "Colours", COLOUR_MODES, horizontal=True,
    help="TP / FP / FN: each prediction against your mask, colour-blind safe (Okabe–Ito)") == COLOUR_MODES[1]
panels = cycle(st.columns(4))  # four to a row, then under the first again
next(panels).image(base, caption="Preprocessed input (RGB = the three channels)", width="stretch")
if truth is not None:
    next(panels).image(overlay(base, truth, GT_COLOR, "fill", 0.45), width="stretch",
                       caption=f"Ground truth ({truth_file.name}): {int(truth.sum())} tumor pixels")
scores = []
with st.spinner("Predicting…"):
    for name in chosen:
        if name in models and models[name].task == "classify":
            inputs = lone_slice_inputs(slice_.image[None], models[name].inputs)
            prob = float(predictor(models[name]).predict(inputs)[0])
            next(panels).metric(f"{name}: tumor probability", f"{prob:.3f}")
            continue
        column = next(panels)
        probs, gate = predict_with_gate(name, upload_inputs(name, slice_.image[None]))
        mask = probs[0] > 0.5
        caption = f"{name}: {int(mask.sum())} tumor pixels"
        if truth is None:
            picture = overlay(base, mask, PRED_COLOR, "fill", 0.45)
        else:
            m = slice_metrics(mask, truth)
            scores.append({"model": name, **{k: m[k] for k in ("dice", "iou", "precision", "recall", "hd95", "tp",
                                                                 "fp", "fn")}})
            hd95 = "–" if m["hd95"] != m["hd95"] else f"{m['hd95']:.1f} px"
            caption += f" · Dice {m['dice']:.3f} · HD95 {hd95}"
            picture = (error_overlay(base, mask, truth, "fill", 0.45) if errors else
                       overlay(overlay(base, mask, PRED_COLOR, "fill", 0.45), truth, GT_COLOR, "contour", 1.0))
        column.image(picture, caption=caption, width="stretch")
        if gate is not None:
            column.caption(gate.describe(0))
        if note := lone_slice_note(name):
            column.caption(note)
        column.download_button("Overlay PNG", png_bytes(picture), f"{stem}_{name}_overlay.png", "image/png",
                               key=f"ov-{name}")
        column.download_button("Mask PNG", png_bytes(mask), f"{stem}_{name}_mask.png", "image/png", key=f"mask-{name}")
if errors:
    st.markdown(error_legend())
elif truth is not None:
    st.caption("Red: each model's prediction · green outline: your ground truth")
if scores:
    height, width = slice_.size
    scale = "" if (height, width) == (SIZE, SIZE) else (
        f"; one of its pixels is {width / SIZE:.3g}×{height / SIZE:.3g} pixels of your {width}x{height} file")
    st.dataframe(pd.DataFrame(scores), hide_index=True, column_config={
        "model": st.column_config.Column("Model"),
        **{c: st.column_config.NumberColumn(label, format="%.3f") for c, label in
           (("dice", "Dice"), ("iou", "IoU"), ("precision", "Precision"), ("recall", "Recall"))},
        "hd95": st.column_config.NumberColumn("HD95 (px)", format="%.1f"),
        **{c: st.column_config.NumberColumn(label) for c, label in
           (("tp", "True positive px"), ("fp", "False positive px"), ("fn", "Missed tumor px"))}})
    st.caption(f"Against {truth_file.name}, on the {SIZE}×{SIZE} grid the models predict on{scale}. HD95: the 95th "
               "percentile distance between the two outlines, in pixels; empty when both masks are empty, the image "
               "diagonal when only one is. Dice is 1 when both are empty.")

st.subheader("Grad-CAM")
cam_model = st.selectbox("Explain with", [n for n in chosen if n in models] or list(models))
record = models[cam_model]
net = model(record)
method = st.selectbox("Method", list(CAM_METHODS))
layer = st.selectbox("Target layer", layer_options(net), format_func=lambda name: describe_layer(net, name))
cam_inputs = lone_slice_inputs(slice_.image[None], record.inputs)
target = predict_masks(cam_model, cam_inputs)[0] > 0.5 if record.task == "segment" else None
try:
    with st.spinner(f"Computing {method}…"):
        result = explain(net, cam_inputs[0], method, layer, target, None, record.input_size, faithfulness=False)
    picture, outline = scaled_heatmap(base, result.cam, CAM_SCALE, 0.5), ""
    if target is not None:
        picture = overlay(picture, target, PRED_COLOR, "contour", 1.0)
        outline = " · red: the predicted mask whose tumor logits are explained"
    # The map and its colour bar share one half-width column, so the bar sits under its image.
    cam_column = st.columns(2)[0]
    cam_column.image(picture, caption=f"{method} of {cam_model} at {describe_layer(net, layer)}{outline}",
                     width="stretch")
    cam_column.plotly_chart(colorbar(CAM_SCALE), key="cam-colorbar", config={"displayModeBar": False})
except ExplainError as err:
    st.info(str(err))
