"""Moving around the dashboard: a new patient opens on its largest tumor; pages say whose training patient it was."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from lgg_core.data.cache import load_dataset
from lgg_core.serving.records import DEMO_DIR, patient_role, read_split, resolve_models

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


pytestmark = pytest.mark.usefixtures("app_env")


@pytest.fixture
def zoo_records(app_env: Path) -> dict:
    return {r.name: r for r in resolve_models(app_env)[0]}


def _largest_tumor_slice(patient: str) -> int:
    index = load_dataset(DEMO_DIR, progress=False).index
    rows = index[index["patient"] == patient]
    return int(rows["slice"].to_numpy()[np.argmax(rows["tumor_pixels"].to_numpy())])


def test_changing_patient_lands_on_its_largest_tumor() -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"patient": "TCGA_HT_7855", "slice": "3"})
    at.run()
    at = at.switch_page("pages/patient.py").run()
    assert at.select_slider[0].value == 3  # the link's slice is kept
    at.selectbox[0].set_value("TCGA_CS_4944").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.select_slider[0].value == _largest_tumor_slice("TCGA_CS_4944")
    assert at.query_params["slice"] == str(_largest_tumor_slice("TCGA_CS_4944"))


@pytest.mark.parametrize(("page", "query"), [("explain", {}), ("compare", {"models": "cnn-encdec,unet-mini"}),
                                             ("patient", {})])
def test_pages_warn_on_a_training_patient(page: str, query: dict, zoo_records: dict) -> None:
    record = zoo_records["cnn-encdec"]
    roles = {role: patients[0] for role, patients in read_split(record)["roles"].items()}
    for role, patient in roles.items():
        assert patient_role(record, patient) == role
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params.update({"patient": patient, "models": "cnn-encdec", **query})
        at.run()
        at = at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        warned = any("training or validation patient of cnn-encdec" in str(w.value) for w in at.warning)
        assert warned == (role != "test"), role


def test_a_link_to_a_patient_outside_the_data_says_so() -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"patient": "TCGA_XX_0000", "slice": "5"})
    at.run()
    at = at.switch_page("pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("TCGA_XX_0000 is not in the loaded data folder" in str(w.value) for w in at.warning)
