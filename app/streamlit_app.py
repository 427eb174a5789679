"""GPU Cost Planner: the Streamlit entry point (``gpuplan app`` or ``streamlit run app/streamlit_app.py``).

It only sets up the page and the navigation; each page lives in ``app/app_pages/`` (one module per page,
a ``render()`` function each) and gets its data from the cached calls in :mod:`app.state`.
Add later pages (Overview, Forecast, Plan, What-if, Scenarios, Budgets & chargeback) to ``PAGES``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # `streamlit run` puts app/ on the path, not the repository root
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from app.app_pages import planner  # noqa: E402

st.set_page_config(page_title="GPU Cost Planner", page_icon=":material/memory:", layout="wide")

PAGES = [
    st.Page(planner.render, title="Planner", icon=":material/shopping_cart:", url_path="planner", default=True),
]

st.navigation(PAGES).run()
