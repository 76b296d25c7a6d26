"""The failure-gallery slices bundled with the demo set: held out by every catalog model, valid, and shown."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from lgg_core.data.cache import LGGData, load_dataset
from lgg_core.data.gallery import GALLERY_DIR, add_partial, with_gallery
from lgg_core.data.reader import DatasetError, read_image, read_mask, scan
from lgg_core.serving.records import DEMO_DIR, read_split, resolve_models

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "streamlit_app.py")
CATALOG = REPO / "models.toml"


@pytest.fixture(scope="module")
def gallery_index():
    """The bundled gallery's slices (scan validates names and image/mask pairs)."""
    return scan(GALLERY_DIR / "kaggle_3m")


def test_gallery_patients_are_held_out_by_every_catalog_model(gallery_index) -> None:
    records, problem = resolve_models(CATALOG)
    assert problem is None and records
    patients = set(gallery_index["patient"])
    for record in records:
        split = read_split(record) if record.path else None
        assert split is not None, f"{record.name}: no split.json to check the gallery against"
        roles = split["roles"]
        assert patients <= set(roles["test"]), f"not test patients of {record.name}: {patients - set(roles['test'])}"
        trained = {p for role, ids in roles.items() if role != "test" for p in ids}
        assert not patients & trained, record.name


def test_gallery_slices_are_valid_and_not_on_the_demo_patients(gallery_index) -> None:
    root = GALLERY_DIR / "kaggle_3m"
    assert len(gallery_index) > 0
    assert not set(gallery_index["patient"]) & set(scan(DEMO_DIR / "kaggle_3m")["patient"])  # those are whole
    for row in gallery_index.itertuples():
        image, mask = read_image(root / row.image), read_mask(root / row.mask)  # both check shape and values
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8 and image.any()
        assert mask.shape == (256, 256) and mask.dtype == bool


def test_the_demo_set_alone_is_unchanged_and_comes_with_the_gallery_only_in_the_app(sample_data: LGGData) -> None:
    demo = load_dataset(DEMO_DIR, progress=False)
    assert len(demo.index) == 64 and demo.patients == ["TCGA_CS_4944", "TCGA_DU_A5TU", "TCGA_HT_7855"]
    gallery = load_dataset(GALLERY_DIR, progress=False)
    both = with_gallery(demo, progress=False)
    assert len(both.index) == len(demo.index) + len(gallery.index)
    assert both.partial == frozenset(gallery.patients) and not both.partial & set(demo.patients)
    keys = both.index[["patient", "slice"]]
    assert keys.equals(keys.sort_values(["patient", "slice"]).reset_index(drop=True))
    for i in (0, len(both.index) // 2, len(both.index) - 1):  # every path still resolves against the demo's root
        assert np.array_equal(both.images[i], read_image(both.root / both.index.at[i, "image"]))
        assert np.array_equal(both.masks[i], read_mask(both.root / both.index.at[i, "mask"]))
    assert both.dataset_hash not in (demo.dataset_hash, gallery.dataset_hash)
    assert with_gallery(sample_data) is sample_data  # any other folder holds whole patients only
    with pytest.raises(DatasetError, match="holds whole"):
        add_partial(demo, demo)


def test_default_false_positive_gallery_shows_the_bundled_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LGG_CATALOG", str(CATALOG))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = AppTest.from_file(APP, default_timeout=300)
    at.switch_page("pages/failures.py").run()  # straight there: the Leaderboard of the whole zoo is slow to draw
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio[0].value == "false positives"
    only = next(t for t in at.toggle if t.label == "Only slices in the loaded data")
    only.set_value(False).run()  # every default case, loaded or not
    bundled = {(p, int(n)) for p, n in scan(GALLERY_DIR / "kaggle_3m")[["patient", "slice"]].itertuples(index=False)}
    demo = set(scan(DEMO_DIR / "kaggle_3m")["patient"])
    cards = [(m[1], int(m[2])) for e in at.markdown if (m := re.match(r"\*\*(TCGA_\w+)\*\* · slice (\d+)", e.value))]
    loaded = [case for case in cards if case in bundled or case[0] in demo]
    assert cards and any(case in bundled for case in loaded), "rebuild the gallery: scripts/make_demo_set.py --gallery"
    assert len(at.get("image")) == len(loaded)  # one image per card whose slice is loaded, none for the others
    assert ("show metrics only" in " ".join(i.value for i in at.info)) == (len(loaded) < len(cards))


@pytest.mark.usefixtures("app_env")
def test_gallery_patients_are_marked_and_kept_out_of_whole_volume_views(gallery_index) -> None:
    patient = gallery_index["patient"].iloc[0]
    count = int((gallery_index["patient"] == patient).sum())

    def open_page(page: str, query: dict) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params.update(query)
        at.run()
        return at.switch_page(f"pages/{page}.py").run()

    at = open_page("patient", {"patient": patient})
    assert not at.exception, [e.value for e in at.exception]
    assert f"Only {count} slices of {patient} are bundled" in " ".join(i.value for i in at.info)
    assert not at.metric and not at.get("image")  # no volume Dice over a few slices
    options = at.selectbox[0].options
    assert options[:3] == ["TCGA_CS_4944", "TCGA_DU_A5TU", "TCGA_HT_7855"]  # whole patients first
    assert f"{patient} (gallery slices only)" in options

    at = open_page("compare", {"patient": patient, "slice": "999"})
    assert not at.exception, [e.value for e in at.exception]
    assert f"Slice 999 of {patient} is not bundled" in " ".join(w.value for w in at.warning)
    assert at.select_slider[0].value in gallery_index.loc[gallery_index["patient"] == patient, "slice"].tolist()
    assert any(f"{patient}, slice" in c.value for c in at.caption)
