"""The sidebar's data-folder box is open to every visitor: it must not tell which server paths exist."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


def _error_for(folder: str) -> str:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["data_dir"] = folder
    at.run()
    at = at.switch_page("pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    (error,) = at.error
    return error.value.replace(folder, "<path>")


@pytest.mark.usefixtures("app_env")
def test_data_folder_box_does_not_reveal_server_paths(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("server")
    (root / "secret.txt").write_text("not for visitors")
    (root / "empty").mkdir()
    messages = {_error_for(str(path)) for path in (root / "secret.txt", root / "missing", root / "empty", root)}
    assert len(messages) == 1, messages
    assert "No `kaggle_3m` dataset" in messages.pop()


def test_uncaught_errors_show_no_details() -> None:
    # Streamlit's default shows the message and stack trace, which name server paths and internals.
    config = tomllib.loads((Path(APP).parent / ".streamlit/config.toml").read_text())
    assert config["client"]["showErrorDetails"] in ("type", "none")
