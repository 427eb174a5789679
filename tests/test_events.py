"""Planned events: file validation (one-line errors), and exact effects on hourly and daily forecasts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.events import (
    DATE,
    DELTA_GPU_HOURS,
    EVENT_MODEL,
    WIND_DOWN_FLOOR,
    Event,
    EventsError,
    apply_events,
    load_events,
    parse_events,
    remove_events,
)
from usage import schema as S

REPO = Path(__file__).resolve().parents[1]
T0 = pd.Timestamp("2026-01-01")
QUANTS = ["p05", "p10", "p50", "p90", "p95"]


def hourly_frame(hours: int = 24 * 10, level: float = 20.0, team: str = "t", gpu: str = "NVIDIA A100") -> pd.DataFrame:
    """The hourly forecast contract (+ p05/p95) with a spread: p05 = level - 4 ... p95 = level + 4."""
    ts = pd.date_range(T0, periods=hours, freq="h")
    offsets = dict(zip(QUANTS, (-4.0, -2.0, 0.0, 2.0, 4.0), strict=True))
    df = pd.DataFrame({S.TEAM: team, S.GPU_TYPE: gpu, S.TIMESTAMP: ts, S.MEAN: level})
    for col, off in offsets.items():
        df[col] = level + off
    df[S.MODEL] = "AutoETS"
    return df


def daily_frame(days: int = 60, level: float = 30.0, team: str = "t", gpu: str = "NVIDIA A100") -> pd.DataFrame:
    df = hourly_frame(days, level, team, gpu).rename(columns={S.TIMESTAMP: DATE})
    df[DATE] = pd.date_range(T0, periods=days, freq="D")
    return df


def ev(**kw) -> Event:
    kw.setdefault("team", "t")
    kw.setdefault("gpu_type", "NVIDIA A100")
    kw["start"] = pd.Timestamp(kw["start"])
    if kw.get("end") is not None:
        kw["end"] = pd.Timestamp(kw["end"])
    return Event(**kw)


# --- effects ---------------------------------------------------------------------------------------
def test_add_64_gpus_from_a_date_raises_every_quantile_by_exactly_64_after_it_and_not_before():
    fc = hourly_frame()
    start = T0 + pd.Timedelta(days=3, hours=5)
    out, adj = apply_events(fc, [ev(kind="add", gpus=64, start=start, note="new project")])
    after = (out[S.TIMESTAMP] >= start).to_numpy()
    for col in [S.MEAN, *QUANTS]:
        diff = out[col].to_numpy() - fc[col].to_numpy()
        assert np.all(diff[after] == 64.0) and np.all(diff[~after] == 0.0)
    assert out[S.MODEL].eq("AutoETS").all() and list(out.columns) == list(fc.columns)
    assert len(adj) == 1 and adj["kind"].iloc[0] == "add" and adj["value"].iloc[0] == 64
    assert adj[DELTA_GPU_HOURS].iloc[0] == pytest.approx(64 * after.sum())  # hourly rows: 1 GPU-hour per GPU


def test_add_with_end_on_a_daily_frame_and_a_start_inside_a_day_is_pro_rata():
    fc = daily_frame(10)
    out, adj = apply_events(fc, [ev(kind="add", gpus=64, start="2026-01-03T12:00", end="2026-01-06")])
    diff = out[S.MEAN].to_numpy() - fc[S.MEAN].to_numpy()
    assert diff.tolist() == [0, 0, 32, 64, 64, 0, 0, 0, 0, 0]  # half of 2026-01-03, end exclusive
    assert adj[DELTA_GPU_HOURS].iloc[0] == pytest.approx(64 * 2.5 * 24)  # daily rows: x 24 hours


def test_wind_down_ramps_linearly_to_zero_and_stays_there():
    fc = daily_frame(40, level=30.0)
    out, adj = apply_events(fc, [ev(kind="wind_down", gpu_type=None, start="2026-01-11", end="2026-01-21")])
    m = out[S.MEAN].to_numpy()
    assert np.all(m[:10] == 30.0) and np.all(m[20:] == 0.0)
    # each day gets the ramp's mean over the day: 30 * (1 - (i + 0.5) / 10)
    assert np.allclose(m[10:20], 30.0 * (1 - (np.arange(10) + 0.5) / 10))
    assert np.allclose(np.diff(m[10:20]), -3.0)  # linear: equal steps
    ratio = out[QUANTS].to_numpy() / fc[QUANTS].to_numpy()
    assert np.allclose(ratio, ratio[:, :1])  # every quantile scaled by the same ramp
    assert adj[DELTA_GPU_HOURS].iloc[0] == pytest.approx(-(30 * 5 + 30 * 20) * 24)


def test_ramp_up_adds_its_gpus_linearly_to_its_end_and_holds_them_creating_a_new_series():
    fc = daily_frame(12, level=30.0)
    launch = ev(kind="ramp_up", gpus=40, start="2026-01-03", end="2026-01-07")
    out, adj = apply_events(fc, [launch, ev(kind="ramp_up", gpus=8, start="2026-01-01", end="2026-01-05",
                                            gpu_type="NVIDIA L4", team="new")])
    grown = out[out[S.TEAM] == "t"]
    diff = grown[S.MEAN].to_numpy() - fc[S.MEAN].to_numpy()
    # each day gets the ramp's mean over the day: 40 x (i + 0.5) / 4 on the 4 days of the ramp, then all 40
    assert np.allclose(diff, [0, 0, 5, 15, 25, 35, 40, 40, 40, 40, 40, 40])
    assert np.allclose(grown[QUANTS].to_numpy() - fc[QUANTS].to_numpy(), diff[:, None])   # every quantile moves
    new = out[out[S.TEAM] == "new"]
    assert np.allclose(new[S.MEAN], [1, 3, 5, 7] + [8] * 8) and new[S.MODEL].eq(EVENT_MODEL).all()
    assert adj["value"].tolist() == [40, 8] and "new series" in adj["note"].iloc[1]
    assert adj[DELTA_GPU_HOURS].iloc[0] == pytest.approx(diff.sum() * 24)


def test_set_scale_and_order_of_application():
    fc = daily_frame(10)
    out, _ = apply_events(fc, [ev(kind="set", gpus=8, start="2026-01-05", end="2026-01-07"),
                               ev(kind="add", gpus=2, start="2026-01-06"),
                               ev(kind="scale", gpu_type=None, factor=0.5, start="2026-01-09")])
    day = out.set_index(DATE)
    assert (day.loc["2026-01-05", [S.MEAN, *QUANTS]] == 8).all()  # set: uncertainty gone
    assert (day.loc["2026-01-06", [S.MEAN, *QUANTS]] == 10).all()  # set, then add
    assert day.loc["2026-01-07", S.MEAN] == 32 and day.loc["2026-01-07", "p05"] == 28
    assert day.loc["2026-01-10", S.MEAN] == 16 and day.loc["2026-01-10", "p95"] == 18  # (30 + 2) x 0.5


def test_an_event_for_a_new_series_creates_it_on_the_forecast_time_grid():
    fc = pd.concat([hourly_frame(48), hourly_frame(48, team="u", gpu="NVIDIA L4")], ignore_index=True)
    out, adj = apply_events(fc, [ev(team="agents", gpu_type="NVIDIA H100", kind="add", gpus=32,
                                    start=T0 + pd.Timedelta(hours=24))])
    new = out[out[S.TEAM] == "agents"]
    assert len(new) == 48 and new[S.MODEL].eq(EVENT_MODEL).all()
    assert new[S.TIMESTAMP].tolist() == list(pd.date_range(T0, periods=48, freq="h"))
    assert new[S.MEAN].tolist() == [0.0] * 24 + [32.0] * 24 and (new[QUANTS].to_numpy()[24:] == 32).all()
    assert "new series" in adj["note"].iloc[0]
    assert out[S.TEAM].is_monotonic_increasing  # sorted by team, gpu_type, time


def test_scale_of_an_unknown_team_names_the_event():
    with pytest.raises(EventsError, match=r"^events, item 2, field 'team': scale matches no forecast series"):
        apply_events(daily_frame(5), parse_events([
            {"team": "t", "kind": "scale", "factor": 2, "start": "2026-01-02"},
            {"team": "typo", "kind": "scale", "factor": 2, "start": "2026-01-02"}]))
    out, adj = apply_events(daily_frame(5), [ev(team="typo", kind="scale", factor=2, start="2026-01-02")],
                            strict=False)
    assert adj["note"].iloc[0] == "matched no forecast series" and adj[DELTA_GPU_HOURS].iloc[0] == 0


# --- files -----------------------------------------------------------------------------------------
def test_the_shipped_example_file_loads_and_uses_catalog_gpu_types():
    from optimizer.catalog import load_catalog

    events = load_events(REPO / "data_samples" / "events_sample.yaml",
                         known_gpu_types=load_catalog().gpu_models())
    assert 2 <= len(events) <= 4
    assert {e.kind for e in events} >= {"add", "wind_down"}
    assert all(e.start > pd.Timestamp("2025-11-30T23:00") for e in events)
    assert all("EXAMPLE" in e.note for e in events)


def test_yaml_and_csv_give_the_same_events(tmp_path):
    y = tmp_path / "ev.yaml"
    y.write_text("- {team: a, gpu_type: NVIDIA H100, kind: add, gpus: 8, start: 2026-02-01, end: 2026-03-01}\n"
                 "- {team: b, kind: wind_down, start: '2026-01-01T00:00:00Z', end: 2026-03-01}\n")
    c = tmp_path / "ev.csv"
    c.write_text("team,gpu_type,kind,start,end,gpus,factor,note\n"
                 "a,NVIDIA H100,add,2026-02-01,2026-03-01,8,,\n"
                 "b,,wind_down,2026-01-01,2026-03-01,,,\n")
    fields = ["team", "gpu_type", "kind", "start", "end", "gpus", "factor", "note"]
    ya = [[getattr(e, f) for f in fields] for e in load_events(y)]
    cs = [[getattr(e, f) for f in fields] for e in load_events(c)]
    assert ya == cs
    assert load_events(y)[1].line is None and load_events(c)[1].line == 3


BAD_FILES = [
    ("ev.yaml", "- {team: a, gpu_type: NVIDIA H100, kind: ad, gpus: 8, start: 2026-02-01}",
     "ev.yaml, item 1, field 'kind': unknown kind 'ad'"),
    ("ev.yaml", "events:\n  - {team: a, kind: wind_down, start: 2026-01-01, end: 2026-03-01}\n"
                "  - {team: a, gpu_type: NVIDIA H100, kind: add, gpus: 8, start: 2026-02-01, end: 2026-01-01}",
     "ev.yaml, item 2, field 'end': end 2026-01-01 is not after start 2026-02-01"),
    ("ev.yaml", "- {team: a, gpu_type: NVIDIA H100, kind: add, gpus: -8, start: 2026-02-01}",
     "ev.yaml, item 1, field 'gpus': gpus -8 is negative"),
    ("ev.yaml", "- {team: a, gpu_type: NVIDIA H200X, kind: add, gpus: 8, start: 2026-02-01}",
     "ev.yaml, item 1, field 'gpu_type': gpu_type 'NVIDIA H200X' is not offered by any catalog instance"),
    ("ev.yaml", "- {team: a, gpu_type: NVIDIA H100, kind: add, gpus: 8}",
     "ev.yaml, item 1, field 'start': missing start"),
    ("ev.yaml", "- {team: a, gpu_type: NVIDIA H100, kind: add, start: 2026-02-01}",
     "ev.yaml, item 1, field 'gpus': missing gpus, required for kind 'add'"),
    ("ev.yaml", "- {team: a, kind: set, gpus: 4, start: 2026-02-01}",
     "ev.yaml, item 1, field 'gpu_type': missing gpu_type, required for kind 'set'"),
    ("ev.yaml", "- {team: a, kind: wind_down, start: 2026-02-01}",
     "ev.yaml, item 1, field 'end': missing end, required for kind 'wind_down'"),
    ("ev.yaml", "- {team: a, kind: scale, start: 2026-02-01}",
     "ev.yaml, item 1, field 'factor': missing factor, required for kind 'scale'"),
    ("ev.yaml", "- {team: a, gpu_type: NVIDIA L4, kind: ramp_up, gpus: 8, start: 2026-02-01}",
     "ev.yaml, item 1, field 'end': missing end, required for kind 'ramp_up'"),
    ("ev.yaml", "- {team: a, kind: ramp_up, gpus: 8, start: 2026-02-01, end: 2026-03-01}",
     "ev.yaml, item 1, field 'gpu_type': missing gpu_type, required for kind 'ramp_up'"),
    ("ev.yaml", "- {team: a, gpu: NVIDIA H100, kind: add, gpus: 8, start: 2026-02-01}",
     "ev.yaml, item 1, field 'gpu': unknown field"),
    ("ev.yaml", "- {team: a, gpu_type: NVIDIA H100, kind: add, gpus: many, start: 2026-02-01}",
     "ev.yaml, item 1, field 'gpus': 'many' is not a number"),
    ("ev.yaml", "- {team: a, gpu_type: NVIDIA H100, kind: add, gpus: 8, start: next spring}",
     "ev.yaml, item 1, field 'start': cannot parse 'next spring' as a date"),
    ("ev.yaml", "events:\n  - team: a\n    kind: add\n   gpus: 8\n", "ev.yaml, line 4: not valid YAML"),
    ("ev.yaml", "team: a\nkind: add\n", "ev.yaml: no 'events' list"),
    ("ev.yaml", "- just a string", "ev.yaml, item 1: expected a mapping of fields, got str"),
    ("ev.csv", "team,gpu_type,kind,start,end,gpus\na,NVIDIA H100,add,2026-02-01,,8\nb,NVIDIA L4,add,2026-02-01,,-1\n",
     "ev.csv, line 3, field 'gpus': gpus -1 is negative"),
    ("ev.csv", "team,gpu_type,kind,start,end,gpus\na,NVIDIA H100,add,2026-03-01,2026-02-01,8\n",
     "ev.csv, line 2, field 'end': end 2026-02-01 is not after start 2026-03-01"),
    ("ev.csv", "team,gpu_type,kind,begin\na,NVIDIA H100,add,2026-03-01\n",
     "ev.csv, line 1, field 'begin': unknown column"),
    ("ev.csv", "team,gpu_type,kind\na,NVIDIA H100,add\n", "ev.csv, line 1, field 'start': missing column"),
    ("ev.json", "[]", "ev.json: unsupported file type '.json'"),
]


@pytest.mark.parametrize(("name", "text", "expected"), BAD_FILES, ids=[b[2].split(": ", 1)[-1][:40] for b in BAD_FILES])
def test_each_bad_events_file_gives_one_line_naming_file_item_field_and_fix(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(EventsError) as info:
        load_events(path, known_gpu_types={"NVIDIA H100", "NVIDIA A100", "NVIDIA L4"})
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message and "(fix: " in message and "Traceback" not in message
    assert isinstance(info.value, S.UsageError)  # the CLI prints it and exits 2


def test_a_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(EventsError, match=r"^nope\.yaml: cannot read the file .*\(fix: check the path"):
        load_events(tmp_path / "nope.yaml")


def test_empty_files_mean_no_events(tmp_path):
    (tmp_path / "a.yaml").write_text("# nothing planned\n")
    (tmp_path / "b.csv").write_text("")
    assert load_events(tmp_path / "a.yaml") == () and load_events(tmp_path / "b.csv") == ()
    out, adj = apply_events(daily_frame(3), [])
    assert adj.empty and list(adj.columns)[:4] == [S.TEAM, S.GPU_TYPE, "start", "end"]


def test_remove_events_takes_out_of_past_usage_what_apply_events_puts_into_a_forecast():
    """Usage fitted without its planned events, then the events applied again, gives back the usage (add, scale,
    a wind-down's ramp down to the floor); a set is left, since what the series did instead is not known."""
    past = hourly_frame(24 * 6, level=30.0).rename(columns={S.MEAN: S.GPUS})[[S.TEAM, S.GPU_TYPE, S.TIMESTAMP, S.GPUS]]
    events = [ev(kind="add", gpus=64, start=T0 + pd.Timedelta(hours=30), end=T0 + pd.Timedelta(hours=90)),
              ev(kind="scale", factor=2.0, start=T0 + pd.Timedelta(days=4))]
    ran = apply_events(past.rename(columns={S.GPUS: S.MEAN}), events, quantile_cols=[])[0]
    used = ran.rename(columns={S.MEAN: S.GPUS})[past.columns]
    base = remove_events(used, events)
    assert np.allclose(base[S.GPUS], 30.0)
    assert np.allclose(used[S.GPUS].iloc[[29, 30, 89, 90, 96]], [30, 94, 94, 30, 60])
    assert np.allclose(apply_events(base.rename(columns={S.GPUS: S.MEAN}), events, quantile_cols=[])[0][S.MEAN],
                       used[S.GPUS])
    down = ev(kind="wind_down", start=T0, end=T0 + pd.Timedelta(hours=100))
    wound = apply_events(past.rename(columns={S.GPUS: S.MEAN}), [down], quantile_cols=[])[0][S.MEAN].to_numpy()
    back = remove_events(past.assign(**{S.GPUS: wound}), [down])[S.GPUS].to_numpy()
    assert np.allclose(back[:89], 30.0)   # ramp above the 10% floor: the usage before the wind-down
    assert np.allclose(back[95:100], wound[95:100] / WIND_DOWN_FLOOR) and np.all(back[100:] == 0.0)
    launch = ev(kind="ramp_up", gpus=12, start=T0 + pd.Timedelta(days=1), end=T0 + pd.Timedelta(days=3))
    launched = apply_events(past.rename(columns={S.GPUS: S.MEAN}), [launch], quantile_cols=[])[0][S.MEAN]
    assert np.allclose(remove_events(past.assign(**{S.GPUS: launched.to_numpy()}), [launch])[S.GPUS], 30.0)
    held = ev(kind="set", gpus=5, start=T0, end=T0 + pd.Timedelta(days=1))
    assert remove_events(past, [held])[S.GPUS].tolist() == past[S.GPUS].tolist()
    other = ev(kind="add", gpus=64, start=T0, team="someone-else")
    assert remove_events(past, [other])[S.GPUS].tolist() == past[S.GPUS].tolist()
