"""Build the bundled demo set (full volumes of a few held-out patients), its failure-gallery slices, or the test
suite's extra real patients.

Examples:
    python scripts/make_demo_set.py --source /path/to/kaggle_3m --split artifacts/resnet18/split.json --out demo
    python scripts/make_demo_set.py --source /path/to/kaggle_3m --gallery
    python scripts/make_demo_set.py --source /path/to/kaggle_3m --for-tests --out tests/fixtures \
        --patients TCGA_EZ_7264 TCGA_FG_5964

For the demo, only patients listed in the split's ``roles.test`` are accepted, so the shipped models never trained on
it. ``--gallery`` writes ``<out>/gallery/kaggle_3m``: the slices the Failure cases page shows by default for the model
catalog (``$LGG_CATALOG`` or models.toml) that the demo's whole patients lack, on patients held out by every catalog
model, within a size budget; re-run it when the catalog changes. The tests read the demo's patients plus
``tests/fixtures``'s, which need no such guarantee.
"""
from __future__ import annotations

import argparse
import io
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from lgg_core.data.gallery import GALLERY_DIR
from lgg_core.data.reader import find_root, read_image, read_mask, scan
from lgg_core.data.splits import load_split
from lgg_core.evaluation.failures import KEYS, KINDS, failure_cases, failure_tables
from lgg_core.serving.catalog import catalog_path
from lgg_core.serving.records import (
    ModelRecord,
    gates,
    gated_name,
    read_eval,
    read_split,
    resolve_models,
)

# Three institutions, small full volumes, each with tumor slices: a few MB in all.
DEFAULT_PATIENTS = ("TCGA_CS_4944", "TCGA_DU_A5TU", "TCGA_HT_7855")
MAX_MB = 6.0
# Horizontal differencing (TIFF predictor 2) makes zlib ~15% smaller on MRI; still lossless.
DEMO_CODEC = {"compression": "zlib", "compressionargs": {"level": 9}, "predictor": True}
# LZMA is ~11% smaller again than that on MRI slices, and tifffile decodes it with the standard library alone.
GALLERY_CODEC = {"compression": "lzma", "predictor": True}
GALLERY_LIMIT = 12  # the Failure cases page's default "Show"
GALLERY_MAX_MB = 8.0

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
artifacts/resnet18/split.json --out demo`, then the gallery slices below.

"""

# One paragraph, wrapped once its numbers are in.
GALLERY_README = (
    "`gallery/kaggle_3m` holds {n_slices} single slices (image and mask, {mb:.1f} MB) of {n_patients} more patients: "
    "the cases the Failure cases page shows by default (the {limit} most severe of each failure kind, for every "
    "catalog segmenter and gated pipeline) that the patients above lack, so that those cases show their image and "
    "not only their metrics. Every one is a held-out test patient of every catalog model (in `roles.test` of each "
    "artifact's `split.json`, never a training or validation patient of any). Within the budget of {max_mb:g} MB the "
    "default model's cases come first, then every model's false positives, then the rest, most severe first. When "
    "the sidebar's data folder is the bundled demo set, the app loads these slices with it and lists their patients "
    "as *gallery slices only*: Failure cases, Compare and Explain show them; the Patient viewer, which needs whole "
    "volumes, does not. TIFFs are re-saved with lossless LZMA compression and horizontal differencing; pixels and "
    "masks are unchanged. Rebuild after the model catalog changes with `python scripts/make_demo_set.py --source "
    "/path/to/kaggle_3m --gallery`."
)

TESTS_README = """# Test data

Full volumes of {n} more real patients from the LGG MRI Segmentation dataset: {patients}.
The test suite joins them with the {n_demo} patients of `demo/` into one `kaggle_3m` folder (`sample_root` in
`tests/conftest.py`), so that it covers several institutions, tumor and tumor-free slices, and reads nothing outside
the repository. TIFFs are re-saved with lossless zlib compression; pixels, masks and the `data.csv` rows are
unchanged. Rebuild with:

    python scripts/make_demo_set.py --source /path/to/kaggle_3m --for-tests --out tests/fixtures --patients {ids}

""" + ATTRIBUTION


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", required=True, help="the full kaggle_3m folder (or a parent of it)")
    p.add_argument("--split", help="split.json of the shipped models (its roles.test); required for the demo")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--for-tests", action="store_true", help="the tests' extra patients: no held-out check")
    mode.add_argument("--gallery", action="store_true",
                      help="the failure-gallery slices of the model catalog, to <out>/gallery/kaggle_3m")
    p.add_argument("--out", default="demo", help="output folder; the slices go to <out>/kaggle_3m")
    p.add_argument("--patients", nargs="+", default=list(DEFAULT_PATIENTS), help="patient ids (held-out only)")
    return p


def encode_slice(source: Path, image: str, mask: str, codec: dict) -> dict[str, bytes]:
    """A slice's image and mask files (paths relative to ``source``) re-encoded with ``codec``, by relative path.

    Both are validated on reading and checked to decode to the same pixels.
    """
    files = {}
    for rel, reader in ((image, read_image), (mask, read_mask)):
        array = reader(source / rel)
        if reader is read_mask:
            array = array.astype("uint8") * 255
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, array, **codec)
        if not np.array_equal(tifffile.imread(io.BytesIO(buffer.getvalue())), array):
            raise RuntimeError(f"{rel} does not decode to its pixels with {codec}")
        files[rel] = buffer.getvalue()
    return files


def write_files(out: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (relative path: bytes) under ``out``."""
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)


def copy_patient(source: Path, out: Path, index_rows: pd.DataFrame) -> None:
    """Re-save one patient's slices and masks with zlib compression, validating each on the way."""
    for row in index_rows.itertuples():
        write_files(out, encode_slice(source, row.image, row.mask, DEMO_CODEC))


def copy_metadata(source: Path, dest: Path, patients: list[str]) -> None:
    """Keep data.csv's header and the rows of ``patients``, verbatim (a pandas round trip would reformat numbers)."""
    if not source.is_file():
        return
    lines = source.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    dest.write_text("".join([lines[0], *(line for line in lines[1:] if line.split(",")[0] in patients)]))


def folder_mb(folder: Path) -> float:
    """Size of the files under ``folder`` in MB."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def demo_readme(folder: Path) -> str:
    """The demo folder's README.md for what it holds: the whole patients, then the gallery slices if any."""
    patients = sorted(scan(folder / "kaggle_3m")["patient"].unique())
    text = README.format(n=len(patients), patients=", ".join(f"`{p}`" for p in patients))
    gallery = folder / GALLERY_DIR.name / "kaggle_3m"
    if gallery.is_dir():
        index = scan(gallery)
        paragraph = GALLERY_README.format(n_slices=len(index), n_patients=index["patient"].nunique(),
                                          mb=folder_mb(gallery), limit=GALLERY_LIMIT, max_mb=GALLERY_MAX_MB)
        text += f"## Failure-gallery slices\n\n{textwrap.fill(paragraph, 117, break_on_hyphens=False)}\n\n"
    return text + ATTRIBUTION


def page_tables() -> tuple[dict[str, pd.DataFrame], list[ModelRecord]]:
    """The failure tables the Failure cases page lists for the catalog, in its order, and every catalog record.

    The lists are those of :mod:`lgg_core.app.state` (``shown_segmenters``, ``gated_options``): segmenters that run
    here, then those shown from their stored masks; a gated pipeline per classifier and segmenter that run here.
    """
    records, problem = resolve_models()
    if problem:
        sys.exit(problem)
    ok = [r for r in records if r.ok]
    runnable = {task: {r.name: r for r in ok if r.has_weights and r.task == task} for task in ("segment", "classify")}
    segmenters = {**runnable["segment"], **{r.name: r for r in ok if r.task == "segment"}}
    pipelines = {gated_name(c, s): (cr, sr) for c, cr in runnable["classify"].items()
                 for s, sr in runnable["segment"].items() if gates(cr, sr)}
    return failure_tables(segmenters, pipelines, read_eval), records


def held_out(records: list[ModelRecord]) -> set[str]:
    """Patients in every record's ``roles.test`` and in no other role of any; exits when a split cannot be read."""
    splits = {r.name: read_split(r) if r.path else None for r in records}
    if unreadable := [name for name, split in splits.items() if split is None]:
        sys.exit(f"cannot check that {', '.join(unreadable)} never trained on the bundled patients: no readable "
                 "split.json (finish or remove those catalog entries first)")
    roles = [split["roles"] for split in splits.values()]
    test = set.intersection(*(set(r.get("test", [])) for r in roles))
    return test - {p for r in roles for role, patients in r.items() if role != "test" for p in patients}


def gallery_cases(tables: dict[str, pd.DataFrame], default: str) -> pd.DataFrame:
    """Every gallery's default cases (``patient``, ``slice``, ``model``, ``kind``, ``rank``) in bundling priority.

    ``default``'s cases of every kind first, then every model's false positives, then the rest; within each, by rank,
    so that every gallery's most severe cases come before any gallery's last ones.
    """
    cases = pd.concat([failure_cases(table, kind, GALLERY_LIMIT)[KEYS].assign(model=name, kind=kind)
                       .rename_axis("rank").reset_index() for name, table in tables.items() for kind in KINDS],
                      ignore_index=True)
    tier = np.where(cases["model"] == default, 0, np.where(cases["kind"] == "false positives", 1, 2))
    return cases.assign(tier=tier).sort_values(["tier", "rank"], kind="stable").drop(columns="tier")


def report(cases: pd.DataFrame, default: str, demo: set[str], bundled: list[tuple[str, int]],
           held: set[str]) -> None:
    """Print how many default cases show an image before (demo only) and after, and what was left out."""
    before = cases["patient"].isin(demo)
    cases = cases.assign(before=before, after=before | pd.MultiIndex.from_frame(cases[KEYS]).isin(bundled))
    table = cases.groupby(["model", "kind"], sort=False).agg(cases=("slice", "size"), before=("before", "sum"),
                                                             after=("after", "sum"))
    print(f"cases that show an image, before (demo only) -> after, of the {default} (default) galleries:")
    for kind, row in table.loc[default].iterrows():
        print(f"  {kind}: {row['before']} -> {row['after']} of {row['cases']}")
    for kind in KINDS:
        of_kind = table.xs(kind, level="kind")
        print(f"{kind}, all {len(of_kind)} galleries: {of_kind['before'].sum()} -> {of_kind['after'].sum()} of "
              f"{of_kind['cases'].sum()}")
    left = cases[~cases["after"]]
    for why, rows in (("not held out by every catalog model", left[~left["patient"].isin(held)]),
                      (f"over the {GALLERY_MAX_MB:g} MB budget", left[left["patient"].isin(held)])):
        if len(rows):
            print(f"left out, {why}: {len(rows.drop_duplicates(KEYS))} slices, {len(rows)} cases of")
            for (model, kind), n in rows.groupby(["model", "kind"], sort=False).size().items():
                print(f"  {model}, {kind}: {n}")


def build_gallery(source: Path, out: Path) -> None:
    """Bundle the failure-gallery slices of the catalog that ``out``'s demo set lacks, within the size budget."""
    tables, records = page_tables()
    if not tables:
        sys.exit("no evaluated segmenter in the catalog: the failure gallery is empty")
    default = next(iter(tables))  # the model the page opens on
    cases = gallery_cases(tables, default)
    demo, held = set(scan(out / "kaggle_3m")["patient"]), held_out(records)
    wanted = cases[~cases["patient"].isin(demo) & cases["patient"].isin(held)].drop_duplicates(KEYS)
    paths = scan(source).set_index(KEYS)[["image", "mask"]]
    gallery = out / GALLERY_DIR.name / "kaggle_3m"
    shutil.rmtree(gallery, ignore_errors=True)
    used, bundled = 0, []
    for key in wanted[KEYS].itertuples(index=False, name=None):
        files = encode_slice(source, *paths.loc[key], GALLERY_CODEC)
        # In priority order, so stopping at the first slice that does not fit leaves out the least wanted ones.
        if used + sum(map(len, files.values())) > GALLERY_MAX_MB * 2**20:
            break
        write_files(gallery, files)
        used += sum(map(len, files.values()))
        bundled.append(key)
    print(f"wrote {len(bundled)} slices of {len({p for p, _ in bundled})} patients to {gallery} "
          f"({folder_mb(gallery):.1f} MB) for {len(tables)} galleries of {catalog_path()}")
    report(cases, default, demo, bundled, held)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    source = find_root(args.source)
    if args.gallery:
        build_gallery(source, Path(args.out))
        (Path(args.out) / "README.md").write_text(demo_readme(Path(args.out)))
        return 0
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
    if args.for_tests:
        n_demo = len(scan(Path(__file__).resolve().parents[1] / "demo/kaggle_3m")["patient"].unique())
        readme = TESTS_README.format(n=len(args.patients), patients=", ".join(f"`{p}`" for p in args.patients),
                                     n_demo=n_demo, ids=" ".join(args.patients))
    else:
        readme = demo_readme(Path(args.out))
    (Path(args.out) / "README.md").write_text(readme)
    size_mb = folder_mb(out)
    print(f"wrote {len(args.patients)} patients to {out} ({size_mb:.1f} MB)")
    if size_mb > MAX_MB:
        print(f"warning: the demo set is larger than {MAX_MB} MB; pick smaller volumes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
