"""Write demo/example-predictions.zip: the champion's cross-validated masks of the three demo patients, as PNG files
named like the dataset's masks, the input a researcher gives `lgg score-predictions`.

Each demo patient is held out by one fold of the champion's CV run, so scoring the example with
`lgg score-predictions demo/example-predictions.zip --split cv --data-dir demo/kaggle_3m` reproduces that run's Dice
for them (CI runs it from an installed wheel).

Usage: python scripts/make_example_predictions.py
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from lgg_core.data.reader import scan
from lgg_core.evaluation.crossval import fold_dirs
from lgg_core.serving.predictions import FILE_NAME, load_masks

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "artifacts" / "cv" / "unet-resnet50-transfer"
OUT = ROOT / "demo" / "example-predictions.zip"


def main() -> None:
    index = scan(ROOT / "demo" / "kaggle_3m")
    stored = [load_masks(folder / "eval" / FILE_NAME) for folder in fold_dirs([RUN])]
    with zipfile.ZipFile(OUT, "w", zipfile.ZIP_DEFLATED) as archive:
        for row in index.itertuples():
            mask = next(m for s in stored if (m := s.mask(row.patient, row.slice)) is not None)
            png = io.BytesIO()
            Image.fromarray(mask.astype(np.uint8) * 255).save(png, format="PNG", optimize=True)
            # A fixed timestamp: the archive's bytes depend only on the masks.
            archive.writestr(zipfile.ZipInfo(f"predictions/{row.folder}_{row.slice}_mask.png",
                                             date_time=(2026, 1, 1, 0, 0, 0)), png.getvalue())
    print(f"wrote {OUT.relative_to(ROOT)}: {len(index)} masks of {index['patient'].nunique()} patients")


if __name__ == "__main__":
    main()
