"""The dashboard's server: ``streamlit run serve.py`` serves ``streamlit_app.py`` once it has filled what every
visitor shares (the modules the pages import, the catalog's records and evaluation tables, the default dataset), so
the first visitor of a fresh server, such as a Space waking up, does not wait for them.

``streamlit run streamlit_app.py`` serves the same pages without the warm-up.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

log = logging.getLogger("lgg_core.serve")


@asynccontextmanager
async def warm(app: st.App) -> AsyncIterator[None]:
    """Warm the process before it accepts connections; a failure only leaves the first visitor to pay."""
    # The pages import lgg_core.app.state here, before any session, so its import-time switch out of Streamlit's
    # legacy pages/ mode cannot fire on a first request that is a shared link: switch now, as st.navigation would.
    PagesManager.uses_pages_directory = False
    # Imported here so that they stay loaded for the pages: pandas, Plotly and the evaluation code cost the first
    # visitor's Leaderboard about two seconds otherwise.
    import lgg_core.app.charts  # noqa: F401
    import lgg_core.evaluation.crossval  # noqa: F401
    from lgg_core.app.state import warm_up
    from lgg_core.data.reader import DatasetError

    try:
        warm_up()
    except (DatasetError, OSError) as err:
        log.warning("warm-up: the default dataset did not load (%s); each page will say so", err)
    yield


app = st.App("streamlit_app.py", lifespan=warm)
