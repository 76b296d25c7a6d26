"""The dashboard's support code: Streamlit caches and shared state (:mod:`~lgg_core.app.state`) and image overlays.

Only the dashboard (``streamlit_app.py``, ``pages/``) imports this package. It may import :mod:`lgg_core.data`,
:mod:`lgg_core.models`, :mod:`lgg_core.serving` and :mod:`lgg_core.explain`. Nothing is re-exported: ``state``
imports Streamlit, so callers name the module.
"""
