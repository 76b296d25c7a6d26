"""Per-patient FLAIR intensity: brain and tumor means (0–255), the numbers behind the dark-FLAIR finding (docs/zoo.md).

    python scripts/patient_intensity.py --data-dir /path/to/kaggle_3m TCGA_DU_7306 TCGA_HT_A61A TCGA_DU_6408 ...

Brain pixels are those whose three channels sum above 10 (the background of these slices is black).
"""
from __future__ import annotations

import argparse

import numpy as np

from lgg_core.data.cache import load_dataset

FLAIR = 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="kaggle_3m folder (default: $LGG_DATA_DIR)")
    parser.add_argument("patients", nargs="+")
    args = parser.parse_args()
    data = load_dataset(args.data_dir, progress=False)
    print("| patient | FLAIR brain mean | FLAIR tumor mean |\n|---|---:|---:|")
    for patient in args.patients:
        rows = data.rows([patient])
        images, masks = data.images[rows].astype(np.float32), data.masks[rows]
        brain = images.sum(-1) > 10
        flair = images[..., FLAIR]
        print(f"| {patient} | {flair[brain].mean():.1f} | {flair[masks].mean():.1f} |")


if __name__ == "__main__":
    main()
