"""Build the bundled demo set (full volumes of a few held-out patients) or the test suite's extra real patients.

Examples:
    python scripts/make_demo_set.py --source /path/to/kaggle_3m --split artifacts/resnet18/split.json --out demo
    python scripts/make_demo_set.py --source /path/to/kaggle_3m --for-tests --out tests/data \
        --patients TCGA_EZ_7264 TCGA_FG_5964

For the demo, only patients listed in the split's ``roles.test`` are accepted, so the shipped models never trained on
it. The tests read the demo's patients plus ``tests/data``'s, which need no such guarantee.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pandas as pd
import tifffile

from lgg_core.data.reader import find_root, read_image, read_mask, scan
from lgg_core.data.splits import load_split

# Three institutions, small full volumes, each with tumor slices: a few MB in all.
DEFAULT_PATIENTS = ("TCGA_CS_4944", "TCGA_DU_A5TU", "TCGA_HT_7855")
MAX_MB = 6.0

ATTRIBUTION = """## Attribution

- Mateusz Buda, Ashirbani Saha, Maciej A. Mazurowski. "Association of genomic subtypes of lower-grade gliomas with
  shape features automatically extracted by a deep learning algorithm." Computers in Biology and Medicine, 2019.
- Images: The Cancer Genome Atlas (TCGA-LGG) collection, via The Cancer Imaging Archive (TCIA).
- Distributed as the Kaggle dataset "mateuszbuda/lgg-mri-segmentation"
  (https://www.kaggle.com/datasets/mateuszbuda/lgg-mri-segmentation).
- Licence: the terms the authors publish on that page apply, and TCIA's data usage policy for TCGA-LGG, which asks
  for the citations above. These slices are redistributed with unchanged pixels, for research use, not clinical use.
"""

README = """# Demo set

Full volumes of {n} patients from the LGG MRI Segmentation dataset, bundled so that the dashboard works offline on a
fresh clone: {patients}.

They are held-out test patients of fold 0 (`roles.test` in the shipped models' `split.json`, k=5, seed 0): none of
the shipped models trained or validated on them. TIFFs are re-saved with lossless zlib compression; pixels and masks
are unchanged. Rebuild with `python scripts/make_demo_set.py --source /path/to/kaggle_3m --split
artifacts/resnet18/split.json --out demo`.

""" + ATTRIBUTION

TESTS_README = """# Test data

Full volumes of {n} more real patients from the LGG MRI Segmentation dataset: {patients}.
The test suite joins them with the {n_demo} patients of `demo/` into one `kaggle_3m` folder (`sample_root` in
`tests/conftest.py`), so that it covers several institutions, tumor and tumor-free slices, and reads nothing outside
the repository. TIFFs are re-saved with lossless zlib compression; pixels, masks and the `data.csv` rows are
unchanged. Rebuild with:

    python scripts/make_demo_set.py --source /path/to/kaggle_3m --for-tests --out tests/data --patients {ids}

""" + ATTRIBUTION


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", required=True, help="the full kaggle_3m folder (or a parent of it)")
    p.add_argument("--split", help="split.json of the shipped models (its roles.test); required for the demo")
    p.add_argument("--for-tests", action="store_true", help="the tests' extra patients: no held-out check")
    p.add_argument("--out", default="demo", help="output folder; the slices go to <out>/kaggle_3m")
    p.add_argument("--patients", nargs="+", default=list(DEFAULT_PATIENTS), help="patient ids (held-out only)")
    return p


def copy_patient(source: Path, out: Path, index_rows: pd.DataFrame) -> None:
    """Re-save one patient's slices and masks with zlib compression, validating each on the way."""
    for row in index_rows.itertuples():
        for rel, reader in ((row.image, read_image), (row.mask, read_mask)):
            array = reader(source / rel)
            if reader is read_mask:
                array = array.astype("uint8") * 255
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            # Horizontal differencing (TIFF predictor 2) makes zlib ~15% smaller on MRI; still lossless.
            tifffile.imwrite(dest, array, compression="zlib", compressionargs={"level": 9}, predictor=True)


def copy_metadata(source: Path, dest: Path, patients: list[str]) -> None:
    """Keep data.csv's header and the rows of ``patients``, verbatim (a pandas round trip would reformat numbers)."""
    if not source.is_file():
        return
    lines = source.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    dest.write_text("".join([lines[0], *(line for line in lines[1:] if line.split(",")[0] in patients)]))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    source = find_root(args.source)
    if not args.for_tests:
        if not args.split:
            sys.exit("--split is required for the demo set (or pass --for-tests)")
        held_out = set(load_split(args.split)["roles"]["test"])
        if not_held_out := sorted(set(args.patients) - held_out):
            sys.exit(f"not held-out test patients of {args.split}: {', '.join(not_held_out)}")
    index = scan(source)
    if unknown := sorted(set(args.patients) - set(index["patient"])):
        sys.exit(f"patients not in {source}: {', '.join(unknown)}")
    out = Path(args.out) / "kaggle_3m"
    shutil.rmtree(out, ignore_errors=True)
    for patient in args.patients:
        copy_patient(source, out, index[index["patient"] == patient])
    copy_metadata(source / "data.csv", out / "data.csv", args.patients)
    patients = ", ".join(f"`{p}`" for p in args.patients)
    if args.for_tests:
        n_demo = len(scan(Path(__file__).resolve().parents[1] / "demo/kaggle_3m")["patient"].unique())
        readme = TESTS_README.format(n=len(args.patients), patients=patients, n_demo=n_demo, ids=" ".join(args.patients))
    else:
        readme = README.format(n=len(args.patients), patients=patients)
    (Path(args.out) / "README.md").write_text(readme)
    size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    print(f"wrote {len(args.patients)} patients to {out} ({size_mb:.1f} MB)")
    if size_mb > MAX_MB:
        print(f"warning: the demo set is larger than {MAX_MB} MB; pick smaller volumes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
