"""The shared store on the Budgets and Plan pages: keep the budgets file in use or the current plan under a name in
the store ``$GPUPLAN_STORE`` names (:func:`app.store.open_store`: the DuckDB file by default, a PostgreSQL server
for a shared deployment), use saved budgets, download saved plans. Every save is written to the store's audit log
with its user (the signed-in user of :class:`app.roles.Access`; ``local`` with sign-in off). Only a role that may
save (:func:`app.roles.can_save`) sees the save forms; an engineer (``access.teams`` set) sees neither saved budgets
nor saved plans, which hold every team's rows. Showing a page only reads: it never creates a store file (the first
save does). Units: USD.
"""

from __future__ import annotations

import streamlit as st

from app import fmt
from app import operate_state as O
from app import roles as R
from app import state as A
from app import store as St
from optimizer.plan import Plan

SAVABLE_BUDGETS = (".csv",)
"""Budgets files the store keeps (as CSV text)."""


def saved_budgets(source: str, current: O.InputFile | None, access: R.Access = R.LOCAL) -> O.InputFile | None:
    """The 'Saved budgets' expander: save ``current`` (the budgets file in use) under a name (roles that may save),
    or pick saved budgets to use instead. Returns the budgets file the page should use."""
    if access.teams is not None:  # an engineer: saved budgets files hold every team's rows
        return current
    with st.expander("Saved budgets (shared store)"):
        submitted = False
        if R.can_save(access):
            name, replace, submitted = _budgets_form(source)
        if submitted:
            if current is None:
                st.info("No budgets file in use yet: upload one under 'Files' first.")
            elif not current.name.lower().endswith(SAVABLE_BUDGETS):
                st.info(fmt.plain(f"{current.name} is not a CSV file: only CSV budgets can be saved."))
            else:
                saved = A.guarded(lambda: St.open_store().save_budgets(
                    name, current.data.decode("utf-8"), note=current.name, overwrite=replace, actor=access.user))
                if saved is not None:
                    st.success(fmt.plain(f"Saved budgets '{saved.name}'."), icon=":material/check:")
        db = A.guarded(St.open_existing_store)
        listing = None if db is None else A.guarded(db.list_budgets)
        names = [] if listing is None else listing["name"].tolist()
        pick = st.selectbox("Use saved budgets", names, index=None, key=f"store_budgets_pick_{source}",
                            placeholder="no: the budgets file above" if names else "none saved yet")
        if pick is None:
            return current
        saved = None if db is None else A.guarded(lambda: db.load_budgets(pick))
        if saved is None:
            return current
        st.caption(fmt.plain(f"Using saved budgets '{saved.name}' (saved {saved.saved_at:%Y-%m-%d %H:%M} UTC)."))
        return O.InputFile(f"{saved.name}.csv", saved.budgets_csv.encode("utf-8"))


def _budgets_form(source: str) -> tuple[str, bool, bool]:
    with st.form(f"store_budgets_save_{source}", border=False):
        c1, c2 = st.columns([2, 1])
        name = c1.text_input("Name", key=f"store_budgets_name_{source}", max_chars=St.MAX_NAME_LENGTH,
                             placeholder="e.g. FY26 Q4 budgets")
        replace = c2.checkbox("Replace saved budgets of the same name", key=f"store_budgets_replace_{source}")
        return name, replace, st.form_submit_button("Save the budgets in use", icon=":material/save:")


def _plan_form() -> tuple[str, bool, str, bool]:
    with st.form("store_plan_save", border=False):
        c1, c2 = st.columns([2, 1])
        name = c1.text_input("Name", key="store_plan_name", max_chars=St.MAX_NAME_LENGTH,
                             placeholder="e.g. December purchases")
        replace = c2.checkbox("Replace a saved plan of the same name", key="store_plan_replace")
        note = st.text_input("Note (optional)", key="store_plan_note")
        return name, replace, note, st.form_submit_button("Save this plan", icon=":material/save:")


def saved_plans(plan: Plan, data_source: str, access: R.Access = R.LOCAL) -> None:
    """The 'Saved plans' expander of the Plan page: save ``plan`` under a name (roles that may save); download a
    saved plan.json (not for an engineer: a plan holds every team's routing)."""
    if access.teams is not None:
        return
    with st.expander("Saved plans (shared store)"):
        submitted = False
        if R.can_save(access):
            name, replace, note, submitted = _plan_form()
        if submitted:
            saved = A.guarded(lambda: St.open_store().save_plan(name, plan, data_source=data_source, note=note,
                                                                overwrite=replace, actor=access.user))
            if saved is not None:
                st.success(fmt.plain(f"Saved plan '{saved.name}': expected cost "
                                     f"{fmt.usd(saved.plan.expected.total_usd)}."), icon=":material/check:")
        db = A.guarded(St.open_existing_store)
        listing = None if db is None else A.guarded(db.list_plans)
        names = [] if listing is None else listing["name"].tolist()
        if db is None or not names:
            return
        pick = st.selectbox("Saved plan", names, key="store_plan_pick")
        saved = A.guarded(lambda: db.load_plan(pick))
        if saved is not None:
            st.download_button("Download its plan.json", data=saved.plan.to_json(), file_name=f"plan_{pick}.json",
                               mime="application/json", on_click="ignore", icon=":material/download:",
                               key="store_plan_download")
