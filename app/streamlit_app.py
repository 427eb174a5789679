"""GPU Cost Planner: the Streamlit entry point (``gpuplan app`` or ``streamlit run app/streamlit_app.py``).

It only sets up the page and the navigation; each page lives in ``app/app_pages/`` (one module per page,
a ``render()`` function each) and gets its data from the cached calls in :mod:`app.state`.
Overview, Forecast, Plan and What-if are file pages (their modules call ``render()`` when run as a page), so
``AppTest.switch_page`` can open them; Scenarios and Budgets & chargeback are function pages.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # `streamlit run` puts app/ on the path, not the repository root
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from app import auth, uploads  # noqa: E402
from app.app_pages import budgets, scenarios  # noqa: E402

st.set_page_config(page_title="GPU Cost Planner", page_icon=":material/memory:", layout="wide")

PAGES = [
    st.Page("app_pages/overview.py", title="Overview", icon=":material/monitoring:", default=True),
    st.Page("app_pages/forecast.py", title="Forecast", icon=":material/trending_up:", url_path="forecast"),
    st.Page("app_pages/plan.py", title="Plan", icon=":material/shopping_cart:", url_path="plan"),
    st.Page("app_pages/whatif.py", title="What-if", icon=":material/tune:", url_path="whatif"),
    st.Page(scenarios.render, title="Scenarios", icon=":material/compare:", url_path="scenarios"),
    st.Page(budgets.render, title="Budgets & chargeback", icon=":material/account_balance:", url_path="budgets"),
]

auth.gate()  # sign-in on: an anonymous visitor gets only the sign-in button (the run stops there)
page = st.navigation(PAGES)
uploads.sidebar_upload()  # on every page: an uploaded file becomes the data source of all pages
page.run()
