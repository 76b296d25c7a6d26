"""serve.py: the server warms what every visitor shares before it accepts connections, and a failed warm-up still
lets it start."""
from __future__ import annotations

import asyncio
import importlib.util
import logging
from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from lgg_core.app import state
from lgg_core.data.reader import DatasetError
from lgg_core.serving.records import default_data_dir
from lgg_core.serving.shelf import SharedDatasets

ROOT = Path(__file__).resolve().parents[2]


def _serve():
    spec = importlib.util.spec_from_file_location("serve", ROOT / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _enter(serve) -> None:
    async def run() -> None:
        async with serve.warm(serve.app):
            pass

    asyncio.run(run())


def test_serve_is_an_app_of_the_dashboard() -> None:
    serve = _serve()
    assert isinstance(serve.app, st.App)


def test_the_warm_up_leaves_the_default_dataset_loaded(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "_DATASETS", SharedDatasets(max_entries=2))  # as in a fresh process
    monkeypatch.setattr(PagesManager, "uses_pages_directory", None)
    _enter(_serve())
    assert PagesManager.uses_pages_directory is False  # a shared link as the first request runs st.navigation
    loads = []
    data = state._DATASETS.get(str(default_data_dir()), loads.append)
    assert loads == [] and len(data.patients) > 0


def test_a_failed_warm_up_only_logs(app_env: Path, monkeypatch: pytest.MonkeyPatch,
                                    caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise DatasetError("no kaggle_3m here")

    monkeypatch.setattr(state, "warm_up", broken)
    with caplog.at_level(logging.WARNING, logger="lgg_core.serve"):
        _enter(_serve())
    assert "no kaggle_3m here" in caplog.text
