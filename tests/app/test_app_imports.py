"""The Leaderboard runs no model and computes no AUROC, so rendering it must not import PyTorch, the model libraries or
scikit-learn (seconds on a cold server). Checked in a fresh interpreter: the test process itself has long imported
them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lgg_core.serving.records import resolve_models

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["torch", "torchvision", "segmentation_models_pytorch", "timm", "onnxruntime", "sklearn"]
RENDER = """
import json, sys
from streamlit.testing.v1 import AppTest

at = AppTest.from_file("streamlit_app.py", default_timeout=120).run()
print(json.dumps({
    "exceptions": [e.value for e in at.exception],
    "titles": [t.value for t in at.title],
    "models": list(at.dataframe[0].value["model"]) if at.dataframe else [],
    "sidebar": " ".join(c.value for c in at.sidebar.caption),
    "imported": [name for name in sys.argv[1:] if name in sys.modules],
}))
"""


def test_leaderboard_renders_without_importing_torch(app_env: Path) -> None:
    # The artifact checks need torch; a host's first listing (the image build, in the Dockerfile) remembers them.
    resolve_models(app_env)
    done = subprocess.run([sys.executable, "-c", RENDER, *HEAVY], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    page = json.loads(done.stdout.strip().splitlines()[-1])
    assert not page["exceptions"] and page["titles"] == ["Leaderboard"], page
    assert {"cnn-encdec", "unet-mini", "resnet18"} <= set(page["models"])  # base models; variants on request
    assert page["imported"] == []
    assert "GPU when it has one" in page["sidebar"]  # the device is named once a page has loaded torch


def test_a_fresh_server_reads_the_leaderboards_tests_instead_of_computing_them(app_env: Path) -> None:
    resolve_models(app_env)
    computed, read = (subprocess.run([sys.executable, "-c", RENDER, "scipy.stats"], check=False, cwd=ROOT,
                                     capture_output=True, text=True, timeout=300) for _ in range(2))
    assert computed.returncode == 0 and read.returncode == 0, computed.stderr[-2000:] + read.stderr[-2000:]
    first, second = (json.loads(done.stdout.strip().splitlines()[-1]) for done in (computed, read))
    assert first["models"] == second["models"] and not second["exceptions"]
    assert second["imported"] == []  # Wilcoxon and the bootstraps came from $LGG_CACHE_DIR/tables
