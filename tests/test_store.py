"""Scenario store: real DuckDB files in tmp_path, reopened as a restarted app would, with real plans."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import duckdb
import pytest

from app import state as A
from app import store as St
from optimizer.inputs import PlanConfig
from optimizer.plan import Plan
from optimizer.solve import make_plan
from tests.helpers import START, flat_forecast, make_catalog

# One 1-GPU type: on-demand 1.00 USD/h, reserved 0.60 USD/h (40% off), spot 0.30 USD/h.
BASIC = [
    {"instance_type": "x.1", "purchase_option": "on_demand", "price": 1.0},
    {"instance_type": "x.1", "purchase_option": "reserved_1y_no_upfront", "price": 0.6},
    {"instance_type": "x.1", "purchase_option": "spot", "price": 0.3},
]


@dataclass(frozen=True)
class Knobs:
    sample: str
    hours: int
    growth: float = 0.0
    terms: tuple[str, ...] = ("1y",)
    team_growth: tuple[tuple[str, float], ...] = ()


def flat_plan(gpus: float = 10.0, hours: int = 100) -> Plan:
    """Flat demand of ``gpus`` for ``hours``: buys ``gpus`` reserved at 0.60 USD/h (hand-checkable)."""
    config = PlanConfig(start=START, hours=hours, allow_spot=False, options=("reserved_1y_no_upfront",))
    return make_plan(flat_forecast([gpus] * hours), make_catalog(BASIC), config).plan


def test_save_list_load_delete_survive_reopening_the_file(tmp_path) -> None:
    path = tmp_path / "nested" / "scenarios.duckdb"
    store = St.ScenarioStore(path)
    plan = flat_plan()
    knobs = Knobs("helios", 100, growth=0.2, team_growth=(("nlp", 0.5),))
    saved = store.save("  base   case ", knobs, plan, data_source="sample:helios", note="first")
    assert saved.name == "base case"
    store.save("small", Knobs("helios", 100), flat_plan(gpus=4.0), data_source="sample:helios")
    assert path.exists()
    del store

    reopened = St.ScenarioStore(path)  # a restarted app: a new object on the same file
    assert reopened.schema_version() == St.SCHEMA_VERSION
    listing = reopened.list()
    assert list(listing.columns) == list(St.LIST_COLUMNS)
    assert sorted(listing["name"]) == ["base case", "small"]
    base = listing.set_index("name").loc["base case"]
    assert base["expected_usd"] == pytest.approx(10 * 0.6 * 100)
    assert base["all_on_demand_usd"] == pytest.approx(10 * 1.0 * 100)
    assert base["savings_usd"] == pytest.approx(400.0)
    assert base["savings_pct"] == pytest.approx(40.0)
    assert base["commitment_utilization"] == pytest.approx(1.0)
    assert base["commitments"] == 10
    assert listing.set_index("name").loc["small", "expected_usd"] == pytest.approx(4 * 0.6 * 100)

    loaded = reopened.load("base case")
    assert loaded.plan == plan
    assert loaded.plan.to_dict() == json.loads(plan.to_json())
    assert loaded.settings == {"sample": "helios", "hours": 100, "growth": 0.2, "terms": ["1y"],
                               "team_growth": [["nlp", 0.5]]}
    assert St.settings_from_dict(Knobs, loaded.settings) == knobs
    assert loaded.data_source == "sample:helios" and loaded.note == "first"
    assert loaded.summary == St.ScenarioSummary.from_plan(plan)
    assert loaded.summary.time_to_result_hours is None

    assert reopened.delete("small") is True
    assert reopened.delete("small") is False
    assert St.ScenarioStore(path).names() == ["base case"]


def test_planner_settings_round_trip(tmp_path) -> None:
    settings = A.PlannerSettings(sample="helios", hours=168, growth=0.1)
    store = St.ScenarioStore(tmp_path / "s.duckdb")
    store.save("x", settings, flat_plan())
    assert St.settings_from_dict(A.PlannerSettings, store.load("x").settings) == settings


def test_duplicate_name_needs_overwrite_and_replaces(tmp_path) -> None:
    store = St.ScenarioStore(tmp_path / "s.duckdb")
    store.save("plan", Knobs("helios", 100), flat_plan(gpus=10.0))
    with pytest.raises(St.StoreError, match="scenario 'plan' already exists"):
        store.save("plan", Knobs("helios", 100), flat_plan(gpus=4.0))
    assert store.load("plan").summary.expected_usd == pytest.approx(600.0)  # failed save changed nothing
    store.save("plan", Knobs("helios", 100), flat_plan(gpus=4.0), overwrite=True)
    assert store.names() == ["plan"]
    assert store.load("plan").summary.expected_usd == pytest.approx(240.0)


@pytest.mark.parametrize("name, message", [("   ", "scenario name is empty"), ("x" * 81, "at most 80")])
def test_bad_names_are_one_line_errors(tmp_path, name, message) -> None:
    store = St.ScenarioStore(tmp_path / "s.duckdb")
    with pytest.raises(St.StoreError, match=message):
        store.save(name, Knobs("helios", 100), flat_plan())
    assert store.names() == []


def test_loading_a_missing_name_says_so(tmp_path) -> None:
    with pytest.raises(St.StoreError, match="no scenario named 'nope'"):
        St.ScenarioStore(tmp_path / "s.duckdb").load("nope")


def test_time_to_result_is_stored_when_known(tmp_path) -> None:
    store = St.ScenarioStore(tmp_path / "s.duckdb")
    store.save("fast", Knobs("helios", 100), flat_plan(), time_to_result_hours=312.5)
    assert store.load("fast").summary.time_to_result_hours == pytest.approx(312.5)
    assert store.list()["time_to_result_hours"].tolist() == [pytest.approx(312.5)]


def test_newer_schema_version_is_refused(tmp_path) -> None:
    path = tmp_path / "s.duckdb"
    St.ScenarioStore(path)
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE gpuplan_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(St.StoreError, match="schema v99 is newer"):
        St.ScenarioStore(path)


def test_a_file_that_is_not_a_database_is_a_one_line_error(tmp_path) -> None:
    path = tmp_path / "s.duckdb"
    path.write_text("timestamp,team\n")
    with pytest.raises(St.StoreError, match="cannot read the scenario store, the file is damaged or not a DuckDB") \
            as err:
        St.ScenarioStore(path)
    assert "\n" not in str(err.value) and St.STORE_ENV in str(err.value)


def test_default_path_honours_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(St.STORE_ENV, str(tmp_path / "team.duckdb"))
    assert St.default_store_path() == tmp_path / "team.duckdb"
    monkeypatch.delenv(St.STORE_ENV)
    assert St.default_store_path().parts[-2:] == (".gpuplan", "scenarios.duckdb")


def test_nothing_is_pickled(tmp_path) -> None:
    path = tmp_path / "s.duckdb"
    St.ScenarioStore(path).save("a", Knobs("helios", 100), flat_plan())
    with duckdb.connect(str(path)) as con:
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'scenarios'").fetchall())
        settings_json, plan_json = con.execute("SELECT settings_json, plan_json FROM scenarios").fetchone()
    assert "BLOB" not in types.values()
    assert json.loads(plan_json)["schema"] == "gpuplan.plan/v1"
    assert json.loads(settings_json)["sample"] == "helios"


def test_unstorable_settings_are_refused() -> None:
    @dataclass(frozen=True)
    class Bad:
        f: object = dataclasses.field(default_factory=object)

    with pytest.raises(St.StoreError, match="cannot be stored as JSON"):
        St.settings_dict(Bad())


def test_missing_required_setting_is_a_store_error() -> None:
    with pytest.raises(St.StoreError, match="do not fit Knobs"):
        St.settings_from_dict(Knobs, {"sample": "helios"})
