"""The LGG dashboard: ``streamlit run streamlit_app.py``.

Compare, explain and debug brain-MRI tumor segmentation models on the LGG MRI Segmentation dataset. Works offline on
the models in ``models.toml`` and the bundled demo slices; point it at a full ``kaggle_3m`` copy with
``$LGG_DATA_DIR`` or the sidebar.
"""
from __future__ import annotations

import streamlit as st

from lgg_core.app.state import data_dir, device_text, init_state

# Every page imports lgg_core.app.state: on a fresh server, Streamlit's legacy pages/ mode (set off by the folder
# name) would run a shared link's page alone; that import's _leave_legacy_pages_mode() reruns it through here.
PAGES = [
    st.Page("pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:", default=True),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("pages/explain.py", title="Explain", icon=":material/visibility:"),
    st.Page("pages/failures.py", title="Failure cases", icon=":material/error:"),
    st.Page("pages/upload.py", title="Upload", icon=":material/upload:"),
    st.Page("pages/models.py", title="Models", icon=":material/description:"),
    st.Page("pages/patient.py", title="Patient viewer", icon=":material/view_carousel:"),
]


def set_data_dir() -> None:
    """Keep the folder outside the widget's state, which Streamlit drops on pages that do not draw the widget."""
    st.session_state["data_dir"] = st.session_state["data_dir_input"]


def sidebar() -> None:
    """The data-folder setting and where the models run."""
    with st.sidebar:
        st.text_input("Data folder (kaggle_3m)", value=data_dir(), key="data_dir_input", on_change=set_data_dir,
                      help="A kaggle_3m copy or its parent. Empty: $LGG_DATA_DIR, else the bundled demo set.")
        st.caption(f"Models run on {device_text()}. Data: LGG MRI Segmentation (Buda et al., TCGA-LGG via TCIA).")


st.set_page_config(page_title="LGG segmentation dashboard", page_icon=":brain:", layout="wide")
init_state()
sidebar()
st.navigation(PAGES).run()
