"""The shipped sample organisations: reproducible from their generators and shaped as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting import samples
from usage.schema import GPU_TYPE, GPUS, PROJECT, TEAM, TIMESTAMP, UTILIZATION, validate_usage

FIXTURE_TRACE = Path(__file__).parent / "fixtures" / "helios" / "earth_vc_gpu_hourly.csv"
DATA = Path(__file__).resolve().parents[1] / "data_samples"


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    return samples.generate_synthetic_org()


@pytest.fixture(scope="module")
def shipped_synthetic() -> pd.DataFrame:
    return pd.read_parquet(DATA / samples.SYNTHETIC_FILE)


@pytest.fixture(scope="module")
def helios() -> pd.DataFrame:
    return samples.load_sample("helios")


def _series(df: pd.DataFrame, team: str, gpu_type: str) -> pd.DataFrame:
    return df[(df[TEAM] == team) & (df[GPU_TYPE] == gpu_type)]


# --- synthetic ------------------------------------------------------------------------------------
def test_shipped_synthetic_equals_regeneration(synthetic: pd.DataFrame, shipped_synthetic: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(shipped_synthetic, synthetic, check_exact=True)


def test_generation_is_seeded(synthetic: pd.DataFrame) -> None:
    other = samples.generate_synthetic_org(seed=1)
    assert other.shape == synthetic.shape
    assert not np.array_equal(other[GPUS].to_numpy(), synthetic[GPUS].to_numpy())


def test_shipped_synthetic_is_labelled() -> None:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(DATA / samples.SYNTHETIC_FILE).schema_arrow.metadata
    assert b"SYNTHETIC" in meta[b"gpuplan.note"]
    assert "SYNTHETIC" in samples.SAMPLES["synthetic"]
    assert "synthetic" in samples.SYNTHETIC_FILE
    assert "SYNTHETIC" in samples.load_sample("synthetic").attrs["note"]


def test_synthetic_covers_18_months_hourly(synthetic: pd.DataFrame) -> None:
    assert synthetic[TIMESTAMP].min() == pd.Timestamp("2024-06-01 00:00")
    assert synthetic[TIMESTAMP].max() == pd.Timestamp("2025-11-30 23:00")
    span_days = (synthetic[TIMESTAMP].max() - synthetic[TIMESTAMP].min()) / pd.Timedelta(days=1)
    assert span_days >= 18 * 30
    for _, ts in synthetic.groupby([TEAM, GPU_TYPE])[TIMESTAMP]:
        steps = ts.diff().dropna().unique()
        assert list(steps) == [pd.Timedelta(hours=1)]


def test_synthetic_org_shape(synthetic: pd.DataFrame) -> None:
    assert 18 <= synthetic[TEAM].nunique() <= 24
    assert synthetic[GPU_TYPE].nunique() >= 3
    assert {"NVIDIA H100", "NVIDIA A100", "NVIDIA L4", "NVIDIA A10G"} <= set(synthetic[GPU_TYPE])
    n_series = synthetic.groupby([TEAM, GPU_TYPE]).ngroups
    assert 25 <= n_series <= 35
    types_per_team = synthetic.groupby(TEAM)[GPU_TYPE].nunique()
    assert (types_per_team == 1).sum() > (types_per_team == 2).sum() > 0
    assert synthetic[PROJECT].notna().all()
    assert synthetic.groupby(TEAM)[PROJECT].nunique().max() >= 3


def test_synthetic_magnitudes(synthetic: pd.DataFrame) -> None:
    assert (synthetic[GPUS] >= 0).all()
    total = synthetic.groupby(TIMESTAMP)[GPUS].sum()
    assert 200 <= total.mean() <= 1000
    # H100 carries the largest spend at list-price ratios (H100 ~ 2.5x A100, ~7x L4/A10G per GPU-hour)
    price = {"NVIDIA H100": 6.88, "NVIDIA A100": 2.75, "NVIDIA L4": 0.85, "NVIDIA A10G": 1.0}
    spend = synthetic.groupby(GPU_TYPE)[GPUS].sum() * pd.Series(price)
    assert spend.idxmax() == "NVIDIA H100"


def test_synthetic_utilization(synthetic: pd.DataFrame) -> None:
    util = synthetic[UTILIZATION]
    assert util.dropna().between(0, 1).all()
    assert util[synthetic[GPUS] > 0].notna().all()
    per_team = synthetic.groupby(TEAM)[UTILIZATION].mean()
    assert per_team["ml-platform"] < 0.4 < per_team["llm-pretrain"]


def test_intermittent_series_exists(synthetic: pd.DataFrame) -> None:
    zero_share = synthetic.assign(z=synthetic[GPUS] == 0).groupby([TEAM, GPU_TYPE])["z"].mean()
    assert (zero_share > 0.5).any()
    eval_series = _series(synthetic, "model-eval", "NVIDIA H100")[GPUS]
    assert (eval_series == 0).mean() > 0.5 and eval_series.max() >= 16


def test_serving_team_has_weekly_and_daily_seasonality(synthetic: pd.DataFrame) -> None:
    s = _series(synthetic, "recsys-serving", "NVIDIA L4")
    weekend = s[TIMESTAMP].dt.dayofweek >= 5
    assert s.loc[~weekend, GPUS].mean() > 1.2 * s.loc[weekend, GPUS].mean()
    by_hour = s.groupby(s[TIMESTAMP].dt.hour)[GPUS].mean()
    assert by_hour.max() > 1.5 * by_hour.min()


def test_step_change_exists(synthetic: pd.DataFrame) -> None:
    s = _series(synthetic, "llm-pretrain", "NVIDIA H100").set_index(TIMESTAMP)[GPUS]
    weekly = s.resample("7D").mean()
    jumps = weekly.diff().abs()
    assert jumps.max() >= 40
    assert (jumps / weekly.shift()).max() >= 0.3


def test_late_start_rows_are_absent_and_wind_down_reaches_zero(synthetic: pd.DataFrame) -> None:
    start = synthetic[TIMESTAMP].min()
    firsts = synthetic.groupby([TEAM, GPU_TYPE])[TIMESTAMP].min()
    late = firsts[firsts > start + pd.Timedelta(days=30)]
    assert len(late) >= 2
    assert ("multimodal", "NVIDIA H100") in late.index
    legacy = _series(synthetic, "nlp-legacy", "NVIDIA A100").set_index(TIMESTAMP)[GPUS]
    assert legacy.iloc[:24 * 30].mean() > 15
    assert (legacy.iloc[-24 * 30:] == 0).all()


def test_trends_grow_and_decline(synthetic: pd.DataFrame) -> None:
    month = synthetic[TIMESTAMP].dt.to_period("M")
    first = synthetic[month == month.min()].groupby([TEAM, GPU_TYPE])[GPUS].mean()
    last = synthetic[month == month.max()].groupby([TEAM, GPU_TYPE])[GPUS].mean()
    ratio = (last / first).dropna()
    assert (ratio > 1.5).any()
    assert ratio[("llm-pretrain", "NVIDIA A100")] < 0.8


# --- helios ---------------------------------------------------------------------------------------
def test_shipped_helios_equals_rebuild(tmp_path: Path) -> None:
    rebuilt = samples.write_helios_sample(samples.build_helios_sample(FIXTURE_TRACE), tmp_path / "h.csv")
    assert rebuilt.read_bytes() == (DATA / samples.HELIOS_FILE).read_bytes()


def test_helios_shape_and_totals(helios: pd.DataFrame) -> None:
    raw = pd.read_csv(FIXTURE_TRACE)
    assert helios[TEAM].nunique() == 16
    assert len(helios) == 16 * 744
    assert (helios.groupby(TEAM).size() == 744).all()
    assert set(helios[GPU_TYPE]) == {"NVIDIA Tesla V100"}
    assert helios[GPUS].sum() == pytest.approx(raw["gpus_demand"].sum(), rel=1e-12)
    assert list(helios.columns) == [TIMESTAMP, TEAM, GPU_TYPE, GPUS]


def test_helios_timestamps_shifted_to_utc(helios: pd.DataFrame) -> None:
    raw = pd.read_csv(FIXTURE_TRACE)
    raw_ts = pd.to_datetime(raw["timestamp"])
    assert helios[TIMESTAMP].min() == raw_ts.min() - pd.Timedelta(hours=8) == pd.Timestamp("2020-04-30 16:00")
    assert helios[TIMESTAMP].max() == pd.Timestamp("2020-05-31 15:00")
    expected = pd.DataFrame({TIMESTAMP: raw_ts - pd.Timedelta(hours=8), TEAM: raw["team"],
                             "demand": raw["gpus_demand"]})
    joined = helios.merge(expected, on=[TIMESTAMP, TEAM], how="outer", validate="one_to_one")
    assert joined[GPUS].notna().all() and joined["demand"].notna().all()
    assert (joined[GPUS] == joined["demand"]).all()
    shipped = pd.read_csv(DATA / samples.HELIOS_FILE, nrows=3)
    assert shipped[TIMESTAMP].str.endswith("Z").all()


# --- loaders --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(samples.SAMPLES))
def test_every_shipped_sample_validates(name: str) -> None:
    raw_path = samples.sample_path(name)
    raw = pd.read_parquet(raw_path) if raw_path.suffix == ".parquet" else pd.read_csv(raw_path)
    df, report = validate_usage(raw, source=raw_path.name)
    assert report.gap_hours_filled == 0 and report.aggregated_subhourly_rows == 0
    assert report.rows_out == len(raw)
    loaded = samples.load_sample(name)
    pd.testing.assert_frame_equal(loaded, df)
    assert loaded.attrs["sample"] == name


def test_load_sample_honours_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GPUPLAN_DATA_DIR", str(tmp_path))
    samples.write_helios_sample(samples.build_helios_sample(FIXTURE_TRACE), tmp_path / samples.HELIOS_FILE)
    assert len(samples.load_sample("helios")) == 16 * 744
    with pytest.raises(KeyError, match="unknown sample"):
        samples.load_sample("nope")


def test_forecasting_does_not_import_optimizer_or_streamlit() -> None:
    text = Path(samples.__file__).read_text()
    assert "import optimizer" not in text and "from optimizer" not in text
    assert "streamlit" not in text


def test_the_planned_events_are_the_synthetic_orgs_own_runs_launches_and_wind_down(synthetic: pd.DataFrame) -> None:
    """Each planned run moves its series by its GPUs (less the hours its failures take), each launch starts its
    series and ramps it to about its base, and the usage without them (remove_events) has no step at a run's
    start: what a platform team running `gpuplan anomalies --events` would give."""
    from forecasting.events import remove_events

    plan = samples.planned_events()
    assert {e.kind for e in plan} == {"add", "wind_down", "ramp_up"} and all(e.end is not None for e in plan)
    hourly = synthetic.groupby([TEAM, GPU_TYPE, TIMESTAMP], as_index=False)[GPUS].sum()
    base = remove_events(hourly, plan)
    for e in plan:
        s = _series(hourly, e.team, e.gpu_type).set_index(TIMESTAMP)[GPUS]
        if e.kind == "add":
            week = pd.Timedelta(days=7)
            run, before = s[e.start:e.start + week].mean(), s[e.start - week:e.start - pd.Timedelta(hours=1)].mean()
            assert 0.5 * e.gpus <= run - before <= 1.5 * e.gpus, (e.team, e.start)   # experiment jobs move it too
            b = _series(base, e.team, e.gpu_type).set_index(TIMESTAMP)[GPUS]
            step = b[e.start:e.start + week].mean() - b[e.start - week:e.start - pd.Timedelta(hours=1)].mean()
            assert abs(step) <= 0.5 * e.gpus, (e.team, e.start)
        elif e.kind == "ramp_up":
            assert s.index.min() == e.start   # the series starts with its launch
            held = s[e.end:e.end + pd.Timedelta(days=7)].mean()
            assert 0.6 * e.gpus <= held <= 1.5 * e.gpus and s[:e.start + pd.Timedelta(days=2)].mean() < 0.3 * held


def test_the_shipped_plan_file_is_the_generators_plan() -> None:
    """data_samples/synthetic_org_plan.yaml (what `make samples` writes) reads back as planned_events()."""
    from forecasting.events import FIELDS, events_frame, load_events

    shipped = events_frame(load_events(DATA / samples.PLAN_FILE))[list(FIELDS)]
    made = events_frame(samples.planned_events())[list(FIELDS)]
    pd.testing.assert_frame_equal(shipped, made)
    assert (DATA / samples.PLAN_FILE).read_text().startswith("# What the SYNTHETIC sample organisation")


def test_usage_package_loads_nothing_above_it() -> None:
    """usage/ (the contract, file IO and ingestion) is the bottom package: reading a billing export loads neither the
    forecasting engine (statsforecast) nor the optimizer, operate or the app."""
    code = ("import sys, usage.schema, usage.io, usage.ingest, usage.ingest.data_lines; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'forecasting', 'optimizer', 'operate', 'app', "
            "'statsforecast', 'pulp', 'streamlit'}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
