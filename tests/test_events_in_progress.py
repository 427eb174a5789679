"""A planned run already in progress at the end of the usage is counted once: every forecast that gets the events
(``gpuplan forecast``, the plan's scenarios and long-term forecast, the app's cached forecast) is fitted on the
usage without what they already did (:func:`forecasting.events.without_events`).

The data: a training team at 10 A100 (plus small noise) for five weeks, whose planned +20 A100 run started five
days before the end of the usage and ends five days after it; a serving team at 8 L4 with no event. Counted once,
the run's remaining days are at 30 A100 and the days after it back at 10; counted twice (a forecast fitted on the
run's first days, plus the event) they were at about 50 and 30."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from app.cli import app, plan_from_usage
from forecasting.events import Event, in_history, not_seen, without_events
from forecasting.longterm import LongTermConfig, forecast_longterm
from optimizer.catalog import load_catalog
from optimizer.inputs import PlanConfig
from usage import schema as S

A100, L4 = "NVIDIA A100", "NVIDIA L4"
END = pd.Timestamp("2026-03-01")   # first hour after the usage
RUN_START, RUN_END = END - pd.Timedelta(days=5), END + pd.Timedelta(days=5)
EVENTS_YAML = (f"- {{team: train, gpu_type: {A100}, kind: add, gpus: 20, start: {RUN_START:%Y-%m-%dT%H:%M}Z, "
               f"end: {RUN_END:%Y-%m-%dT%H:%M}Z, note: pretraining run}}\n")


def usage() -> pd.DataFrame:
    hours = pd.date_range(END - pd.Timedelta(days=35), END, freq="h", inclusive="left")
    rng = np.random.default_rng(7)
    train = 10.0 + rng.normal(0.0, 0.3, len(hours)) + 20.0 * ((hours >= RUN_START) & (hours < RUN_END))
    serve = 8.0 + np.sin(2 * np.pi * hours.hour / 24) + rng.normal(0.0, 0.2, len(hours))
    return pd.DataFrame({S.TIMESTAMP: np.concatenate([hours, hours]), S.TEAM: ["train"] * len(hours) + ["serve"] * len(
        hours), S.GPU_TYPE: [A100] * len(hours) + [L4] * len(hours), S.GPUS: np.concatenate([train, serve])})


def run() -> Event:
    return Event(team="train", kind="add", start=RUN_START, end=RUN_END, gpu_type=A100, gpus=20.0)


def test_without_events_takes_out_only_what_started_in_the_usage_and_sums_rows_per_hour():
    u = usage()
    later = Event(team="train", kind="add", start=END + pd.Timedelta(days=1), gpu_type=A100, gpus=5.0)
    assert in_history([run(), later], u) == (run(),)
    assert without_events(u, [later]) is u   # nothing to take out: the same frame
    split = pd.concat([u.assign(**{S.GPUS: u[S.GPUS] / 2}), u.assign(**{S.GPUS: u[S.GPUS] / 2})])  # two accounts
    base = without_events(split, [run(), later])
    assert len(base) == len(u)
    train = base[base[S.TEAM] == "train"].set_index(S.TIMESTAMP)[S.GPUS]
    assert abs(train.loc[RUN_START:].mean() - 10.0) < 0.1 and abs(train.loc[:RUN_START].mean() - 10.0) < 0.1
    serve = base[base[S.TEAM] == "serve"].set_index(S.TIMESTAMP)[S.GPUS]
    assert np.allclose(serve.to_numpy(), u[u[S.TEAM] == "serve"][S.GPUS].to_numpy())


def _write(tmp_path: Path) -> tuple[Path, Path]:
    src, events = tmp_path / "usage.csv", tmp_path / "events.yaml"
    table = usage()
    table[S.TIMESTAMP] = S.format_timestamp(table[S.TIMESTAMP])
    table.to_csv(src, index=False)
    events.write_text(EVENTS_YAML)
    return src, events


def gpuplan(command: str, tmp_path: Path, *args: str, events_yaml: str = EVENTS_YAML) -> tuple[str, Path]:
    """Run a gpuplan command on the data with an events file; its output and the file it wrote."""
    src, events = _write(tmp_path)
    events.write_text(events_yaml)
    out = tmp_path / "out.csv"
    r = CliRunner().invoke(app, [command, "--usage", str(src), "--events", str(events), "--out", str(out), *args])
    assert r.exit_code == 0, r.output
    return r.output, out


def test_gpuplan_forecast_counts_a_run_in_progress_once(tmp_path):
    output, out = gpuplan("forecast", tmp_path, "--horizon-hours", "240")
    assert "fitting on the usage without 1 planned event that started before its end" in output
    fc = pd.read_csv(out)
    fc[S.TIMESTAMP] = pd.to_datetime(fc[S.TIMESTAMP]).dt.tz_localize(None)
    train = fc[fc[S.TEAM] == "train"].set_index(S.TIMESTAMP)[S.MEAN]
    assert 28.0 < train[train.index < RUN_END].mean() < 32.0
    assert 8.0 < train[train.index >= RUN_END].mean() < 12.0
    serve = fc[fc[S.TEAM] == "serve"][S.MEAN]
    assert 7.5 < serve.mean() < 8.5


def test_the_plan_and_its_long_term_forecast_count_a_run_in_progress_once(tmp_path):
    _, events = _write(tmp_path)
    u = usage()
    result, _ = plan_from_usage(u, load_catalog(), PlanConfig(start=END, hours=240), events=events)
    sc = result.scenarios
    a100 = sc.expected(A100)
    assert 28.0 < a100[sc.hours < RUN_END].mean() < 32.0
    assert 8.0 < a100[sc.hours >= RUN_END].mean() < 12.0
    replays = [i for i, name in enumerate(sc.names) if name.startswith("history")]   # the replayed recent days
    assert replays and 29.0 < sc.demand[A100][replays][:, sc.hours < RUN_END].mean() < 31.0
    tail = sc.weights @ sc.tail[A100]   # the term after the window: the run is over
    assert 8.0 < tail.mean() < 12.0
    lt = forecast_longterm(u, LongTermConfig(horizon_days=60), events=(run(),)).daily
    train = lt[lt[S.TEAM] == "train"].set_index("date")[S.MEAN]
    assert 8.0 < train[train.index >= RUN_END + pd.Timedelta(days=1)].mean() < 12.0


def test_the_apps_forecast_and_plan_count_a_run_in_progress_once():
    import app.state as A

    source = "upload:events-in-progress-test"
    A.register_dataset(source, usage(), "train and serve", "tests", ())
    settings = A.PlannerSettings(source, 240, events_name="events.yaml", events_text=EVENTS_YAML)
    fc = A.planned_forecast(settings.forecast_settings)
    train = fc[fc[S.TEAM] == "train"].set_index(S.TIMESTAMP)[S.MEAN]
    assert 28.0 < train[train.index < RUN_END].mean() < 32.0
    assert 8.0 < train[train.index >= RUN_END].mean() < 12.0
    sc = A.cached_plan(settings).scenarios
    a100 = sc.expected(A100)
    assert 28.0 < a100[sc.hours < RUN_END].mean() < 32.0 and 8.0 < (sc.weights @ sc.tail[A100]).mean() < 12.0
    # events that start after the data do not change the fit: the forecast without events is the same one
    later = EVENTS_YAML.replace(f"{RUN_START:%Y-%m-%dT%H:%M}Z", f"{END:%Y-%m-%dT%H:%M}Z")
    plain = A.cached_forecast(A.ForecastSettings(source, 240)).forecast
    assert A.cached_forecast(A.ForecastSettings(source, 240, "events.yaml", later)).forecast.equals(plain)
    assert not A.cached_forecast(settings.forecast_settings).forecast.equals(plain)


def test_a_run_dated_before_the_usage_shows_it_is_named_with_the_fix(tmp_path):
    u = usage()
    assert not_seen([run()], u) == ()   # the usage shows the run
    early = Event(team="train", kind="add", start=END - pd.Timedelta(days=20), end=RUN_END, gpu_type=A100, gpus=20.0,
                  source="events.yaml", item=1)
    (line,) = not_seen([early], u)
    assert line.startswith("warning: events.yaml item 1: train / NVIDIA A100") and "in 75% of its 480 hours" in line
    assert "fix: start it at the end of the data, 2026-03-01" in line
    output, _ = gpuplan("forecast", tmp_path, "--horizon-hours", "24",
                        events_yaml=EVENTS_YAML.replace(f"{RUN_START:%Y-%m-%dT%H:%M}Z", "2026-02-09T00:00Z"))
    assert "probably not running yet" in output


def test_gpuplan_longterm_says_it_fits_without_the_run_and_counts_it_once(tmp_path):
    output, out = gpuplan("longterm", tmp_path, "--days", "30")
    assert "fitting on the usage without 1 planned event" in output
    daily = pd.read_csv(out, parse_dates=["date"])
    train = daily[daily[S.TEAM] == "train"].set_index("date")[S.MEAN]
    assert 28.0 < train[train.index < RUN_END - pd.Timedelta(days=1)].mean() < 32.0
    assert 8.0 < train[train.index >= RUN_END + pd.Timedelta(days=1)].mean() < 12.0


def test_a_plan_from_a_forecast_file_notes_the_events_it_may_already_hold(tmp_path):
    src, events = _write(tmp_path)
    fc = tmp_path / "fc.csv"
    assert CliRunner().invoke(app, ["forecast", "--usage", str(src), "--horizon-hours", "48", "--out",
                                    str(fc)]).exit_code == 0
    args = ["plan", "--usage", str(src), "--start", f"{END:%Y-%m-%dT%H:%M}Z", "--hours", "48", "--forecast", str(fc),
            "--out", str(tmp_path / "plan.json")]
    r = CliRunner().invoke(app, [*args, "--events", str(events)])
    assert r.exit_code == 0, r.output
    assert "1 planned event started before the window; the --forecast file may have learnt them" in r.output
    events.write_text(EVENTS_YAML.replace(f"{RUN_START:%Y-%m-%dT%H:%M}Z", f"{END:%Y-%m-%dT%H:%M}Z"))
    r = CliRunner().invoke(app, [*args, "--events", str(events)])   # a run that starts with the window
    assert r.exit_code == 0 and "may have learnt them" not in r.output, r.output
