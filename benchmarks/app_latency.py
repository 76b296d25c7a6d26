"""Warm latency of the dashboard's heaviest view: Compare with 4 segmenters on a new slice, plus one Grad-CAM.

    OMP_NUM_THREADS=2 python benchmarks/app_latency.py [--catalog models.toml] [--repeats 5]

Runs the real pages in Streamlit's AppTest (no browser) on the CPU. Models are loaded and the first slice rendered
before timing ("warm"); each timed run moves to a slice whose predictions are not cached yet, so the 4 forward passes
and the metrics are part of the measured time. Without ``--catalog`` it times randomly initialised copies of the
shipped segmenter architectures (latency does not depend on the weights), so it needs no trained zoo.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # a CPU benchmark even on GPU hosts
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from streamlit.testing.v1 import AppTest  # noqa: E402

from lgg_core.serving.records import DEMO_DIR  # noqa: E402
from lgg_core.data.cache import load_dataset  # noqa: E402
from lgg_core.models import LGGModel, count_parameters  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")
ARCHS = ("unet-mini", "unet-mobilenetv2", "attention-unet", "segnet")
PATIENT = "TCGA_HT_7855"


def random_zoo(folder: Path) -> Path:
    """Random-init artifacts of ``ARCHS`` and a catalog listing them."""
    entries = []
    for arch in ARCHS:
        model = LGGModel(arch)
        config = {"task": "segment", "params": count_parameters(model), "training": {"fold": 0, "input_size": None}}
        model.save_pretrained(folder / arch, config=config)
        entries.append(f'[[model]]\nname = "{arch}"\npath = "{arch}"\n')
    (folder / "models.toml").write_text("\n".join(entries))
    return folder / "models.toml"


def tumor_slices() -> list[int]:
    """Slice numbers of ``PATIENT`` with tumor, where Explain has a target to explain."""
    index = load_dataset(DEMO_DIR, progress=False).index
    return index[(index["patient"] == PATIENT) & index["has_tumor"]]["slice"].tolist()


def timed(at: AppTest) -> float:
    start = time.perf_counter()
    at.run()
    if at.exception:
        raise RuntimeError(at.exception[0].value)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", help="time these models (default: random-init copies of the zoo's segmenters)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LGG_CATALOG"] = str(Path(args.catalog).resolve()) if args.catalog else str(random_zoo(Path(tmp)))
        at = AppTest.from_file(APP, default_timeout=600)
        at.query_params.update(patient=PATIENT, slice="1")
        at.run()
        at.switch_page("pages/compare.py")
        timed(at)  # cold: loads the data and the models
        models = at.multiselect[0].options[:4]
        at.multiselect[0].set_value(models)
        timed(at)
        compare, cam = [], []
        for number in tumor_slices()[: args.repeats]:
            at.select_slider[0].set_value(number)
            compare.append(timed(at))
            # Explain opens on the remembered slice and first model: Grad-CAM on its (cached) predicted mask.
            cam.append(timed(at.switch_page("pages/explain.py")))
            if not any(m.label == "CAM energy inside the tumor" for m in at.metric):
                raise RuntimeError(f"no Grad-CAM was rendered: {[w.value for w in at.warning]}")
            at.switch_page("pages/compare.py")
            timed(at)
        threads = os.environ.get("OMP_NUM_THREADS", "all")
        print(f"models: {', '.join(models)} (CPU, OMP_NUM_THREADS={threads}, {len(compare)} new slices)")
        print(f"Compare, 4 models, new slice: median {statistics.median(compare):.3f} s (max {max(compare):.3f})")
        print(f"Explain, one Grad-CAM:        median {statistics.median(cam):.3f} s (max {max(cam):.3f})")
        print(f"Compare + Grad-CAM:           median {statistics.median(c + g for c, g in zip(compare, cam)):.3f} s"
              " (target < 1.5 s on 2 cores)")


if __name__ == "__main__":
    main()
