"""The formatting rules of every table and chart (app/fmt.py, app/view.py, app/charts.py) and the pages that use
them, through real frames and streamlit.testing.v1.AppTest: human column labels, no None/nan cells, whole dollars
(cents only where they matter), a grey "no change" for an unchanged figure, top-N plus "other" legends with
distinct colours, readable axes for near-equal values, the budget chart's labels and legend, the unit-cost chart's
log scale. The browser-side checks of the same rules are in tests/test_screens.py."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import charts, fmt, view
from app import state as A

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
RAW = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")
MISSING_WORDS = {"None", "nan", "NaN", "NaT", "<NA>", "null"}
MONEY_3 = re.compile(r"\d\.\d{3,}")


# --- fmt: one rule per kind ----------------------------------------------------------------------------------
def test_money_is_whole_dollars_from_100_and_cents_below() -> None:
    assert fmt.cell(113_819.004, "usd") == "113,819"
    assert fmt.cell(99.456, "usd") == "99.46" and fmt.cell(0.354, "usd") == "0.35" and fmt.cell(0, "usd") == "0"
    assert fmt.cell(437_921.184, "usd_cents") == "437,921.18"
    assert fmt.cell(28.126, "usd_rate") == "28.13"
    assert fmt.cell(0.3, "usd_rate") == "0.30"
    assert fmt.cell(-152_037.4, "signed_usd") == "-152,037" and fmt.cell(0.4, "signed_usd") == "0"
    assert fmt.cell(0.253, "pct") == "25.3" and fmt.cell(-0.05, "signed_pct") == "-5.0"


@pytest.mark.parametrize("value", [None, float("nan"), np.nan, pd.NaT, pd.NA, ""])
def test_missing_values_never_show_as_none_or_nan(value) -> None:
    assert fmt.cell(value, "usd") == fmt.MISSING
    assert fmt.cell(value, "text", missing="no commitments") == "no commitments"


def test_labels_are_human_with_the_unit_last() -> None:
    assert fmt.label("actual_to_date_usd") == "Actual to date (USD)"
    assert fmt.label("burn_pct") == "Burn (%)"
    assert fmt.label("idle_gpu_hours") == "Idle GPU-hours"
    assert fmt.label("team") == "Team"
    assert fmt.label("p10 cost (USD)") == "p10 cost (USD)"  # already a label: kept


def test_display_table_formats_by_kind_and_inferred_units() -> None:
    raw = pd.DataFrame({"team": ["a", "b"], "project": [None, "x"], "cost_usd": [113_819.004, 0.354],
                        "usd_per_hour": [28.1, 0.3], "utilization": [0.5, np.nan], "gpu_hours": [12345.6, 1.0],
                        "start": pd.to_datetime(["2025-12-01 00:00", "2025-12-31 23:00"])})
    shown = fmt.display_table(raw, missing={"utilization": "no commitment"})
    assert list(shown.columns) == ["Team", "Project", "Cost (USD)", "USD per hour", "Utilization", "GPU-hours",
                                   "Start"]
    assert shown.to_dict("list") == {
        "Team": ["a", "b"], "Project": [fmt.MISSING, "x"], "Cost (USD)": ["113,819", "0.35"],
        "USD per hour": ["28.10", "0.30"], "Utilization": ["50.0", "no commitment"], "GPU-hours": ["12,346", "1"],
        "Start": ["2025-12-01 00:00", "2025-12-31 23:00"]}
    with pytest.raises(KeyError, match="no column"):
        fmt.display_table(raw, kinds={"nope": "usd"})


def test_an_unchanged_figure_reads_no_change_in_grey() -> None:
    assert fmt.delta(0.4) == ("no change", "off")
    assert fmt.delta(None) == (None, "off")
    assert fmt.delta(-1234.4) == ("-1,234 USD", "inverse")
    assert fmt.delta(500.0, better="higher") == ("+500 USD", "normal")
    assert fmt.delta(0.004, unit=" %", decimals=2, suffix=" at p90") == ("no change at p90", "off")


def test_metric_deltas_of_every_page_share_the_rule() -> None:
    assert view.metric_delta(0.3, " vs base") == {"delta": "no change vs base", "delta_color": "off",
                                                  "delta_arrow": "off"}
    assert view.metric_delta(-5_000.0, " vs base") == {"delta": "-5,000 USD vs base", "delta_color": "inverse",
                                                       "delta_arrow": "auto"}
    assert view.metric_delta(152_037.0, " saved by the plan", better="higher")["delta_color"] == "normal"


def test_short_amounts_have_three_significant_digits() -> None:
    assert [fmt.short(x) for x in (950, 12_300, 154_000, 4.15e6, 17.32e6, 173.4e6, 1.2e9)] == [
        "950", "12,300", "154k", "4.15M", "17.3M", "173M", "1.20B"]


# --- charts: legends list every series, with distinct colours -------------------------------------------------
def _over_time(n_groups: int) -> pd.DataFrame:
    days = pd.date_range("2025-11-01", periods=3, freq="D")
    return pd.DataFrame([{"period": d, "team": f"team-{g:02d}", "usd": 100.0 * (g + 1), "gpu_hours": g + 1.0}
                         for d in days for g in range(n_groups)])


def test_top_n_plus_other_keeps_every_dollar_and_distinct_colours() -> None:
    frame = _over_time(22)
    lumped, domain = charts.top_n_other(frame, "team")
    assert len(domain) == charts.TOP_N + 1 and domain[-1] == "other (13 teams)"
    assert domain[0] == "team-21"  # the largest spender first
    assert lumped["usd"].sum() == pytest.approx(frame["usd"].sum())
    assert set(lumped["team"]) == set(domain)
    spec = charts.spend_over_time_chart(frame, "team").to_dict()
    colour = spec["encoding"]["color"]
    assert colour["scale"]["domain"] == domain
    assert len(set(colour["scale"]["range"])) == len(domain)  # no colour repeats
    assert colour["legend"]["symbolLimit"] == 0  # the legend never drops a series
    few, few_domain = charts.top_n_other(_over_time(10), "team")
    assert len(few_domain) == 10 and not any(d.startswith("other") for d in few_domain)  # no "other" of one


def test_near_equal_values_get_a_readable_axis() -> None:
    scale = charts.quantity_scale([720.0533270, 720.0533370]).to_dict()
    lo, hi = scale["domain"]
    assert hi - lo >= 2 and lo < 720.0533270 < 720.0533370 < hi
    wide = charts.quantity_scale([100.0, 900.0]).to_dict()["domain"]
    assert wide[0] <= 100 and wide[1] >= 900


# --- pages ------------------------------------------------------------------------------------------------------
def _tables(at: AppTest) -> list[pd.DataFrame]:
    return [view.shown(t.value) for t in at.table]


def _assert_finished(tables: list[pd.DataFrame]) -> None:
    """No raw column name, no None/nan cell, no money with more than two decimals in any table."""
    assert tables
    for t in tables:
        assert not [c for c in t.columns if RAW.match(str(c))], list(t.columns)
        cells = set(t.to_numpy().ravel().tolist())
        assert not cells & MISSING_WORDS, cells & MISSING_WORDS
        for c in t.columns:
            if "USD" in str(c):
                assert not [v for v in t[c] if MONEY_3.search(v)], (c, list(t[c]))


def test_scenario_listing_says_no_commitments_instead_of_none() -> None:
    from app.app_pages import scenarios as P

    listing = pd.DataFrame({"name": ["all on-demand", "base"], "saved_at": pd.to_datetime(["2025-12-01"] * 2),
                            "data_source": ["sample:synthetic"] * 2, "note": [None, "why"],
                            "expected_usd": [1_400_000.4, 1_345_754.6], "p10_usd": [None, 1.28e6],
                            "p90_usd": [None, 1.45e6], "all_on_demand_usd": [1.4e6, 1.9e6],
                            "savings_usd": [0.0, 622_139.2], "savings_pct": [0.0, 31.6], "upfront_usd": [0.0, 7e6],
                            "commitment_utilization": [None, 0.951], "commitments": [0, 19],
                            "time_to_result_hours": [None, 720.05]})
    table = fmt.display_table(P.listing_table(listing), missing={"Time-to-result (h)": "not timed", "Note": "",
                                                                 "p10-p90 cost (USD)": "not estimated"})
    assert table["Utilisation (%)"].tolist() == ["no commitments", "95.1"]
    assert table["p10-p90 cost (USD)"].tolist() == ["not estimated", "1,280,000 - 1,450,000"]
    assert table["Time-to-result (h)"].tolist() == ["not timed", "720"]
    _assert_finished([table])


def test_overview_legend_lists_top_teams_and_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "helios")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert not at.exception, [e.value for e in at.exception]
    import json

    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert len(specs) == 2
    for spec in specs:
        domain = spec["encoding"]["color"]["scale"]["domain"]
        assert len(domain) == charts.TOP_N + 1 and domain[-1] == "other (7 teams)"  # 16 teams
        assert spec["encoding"]["color"]["legend"]["symbolLimit"] == 0
    totals, movers = _tables(at)
    _assert_finished([totals, movers])
    assert list(movers.columns) == ["Team", "Last 7 days (USD)", "7 days before (USD)", "Change (USD)", "Change (%)"]
    assert all(re.fullmatch(r"[+-][\d,]+|0", v) for v in movers["Change (USD)"])


def test_whatif_base_shows_no_change_in_grey(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "helios")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")
    at = AppTest.from_file(APP, default_timeout=300).run()
    at.switch_page("app_pages/whatif.py").run()
    assert not at.exception, [e.value for e in at.exception]
    deltas = {m.label: m.proto for m in at.metric if m.proto.delta}
    assert len(deltas) >= 8
    for label, proto in deltas.items():  # the base scenario against itself: nothing moved
        assert proto.delta.startswith(fmt.NO_CHANGE), (label, proto.delta)
        assert "+0" not in proto.delta
    from streamlit.proto.Metric_pb2 import Metric

    assert {p.color for p in deltas.values()} == {Metric.MetricColor.GRAY}
    _assert_finished(_tables(at))


@pytest.fixture(scope="module")
def budgets_run() -> AppTest:
    def page() -> None:
        from app.app_pages import budgets

        budgets.render()

    at = AppTest.from_function(page, default_timeout=300).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_budgets_tables_have_labels_separators_and_no_none(budgets_run: AppTest) -> None:
    tables = _tables(budgets_run)
    _assert_finished(tables)
    (alerts,) = [t for t in tables if "P(overspend) (%)" in t.columns]
    assert len(alerts) == 22 and set(alerts["Period"]) == {"2025-Q4"}
    row = alerts.set_index("Budget").loc["multimodal"]
    assert row["Budget (USD)"] == "650,000" and row["Status"] == "projected overspend"
    assert row["Runs out (expected)"].startswith("2025-12-")
    (chargeback,) = [t for t in tables if "Unused commitment (USD)" in t.columns]
    assert chargeback.set_index("Team").loc["llm-pretrain", "Total (USD)"] == "437,921.18"  # the bill, in cents
    (units,) = [t for t in tables if "Cost per unit" in t.columns]
    per_unit = units["Cost per unit"].tolist()
    assert any(v.endswith(" cents") for v in per_unit) and any(v.endswith(" USD") for v in per_unit)


def test_budget_chart_shows_every_label_and_a_legend(budgets_run: AppTest) -> None:
    import json

    specs = [json.loads(c.proto.spec) for c in budgets_run.get("vega_lite_chart")]
    (budget,) = [s for s in specs if s.get("title", "").startswith("Projected spend")]
    assert budget["height"] == {"step": 24}  # one row per budget, whatever their number
    layer = budget["layer"][0]["encoding"]
    assert layer["y"]["axis"]["labelOverlap"] is False and layer["y"]["axis"]["labelLimit"] == 0
    assert layer["color"]["scale"]["domain"] == ["Projected spend (expected)", "Actual to date", "Projected p10-p90",
                                                 "Budget"]
    (unit,) = [s for s in specs if s.get("title", "").startswith("Cost per unit")]
    assert unit["encoding"]["y"]["scale"]["type"] == "log" and "log scale" in unit["encoding"]["y"]["title"]
