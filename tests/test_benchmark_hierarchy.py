"""benchmarks/hierarchy_accuracy.py: data set structure, hold-out cuts and the summary arithmetic."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmarks.hierarchy_accuracy import (
    HOLDOUT_HOURS,
    MIN_HISTORY_HOURS,
    alibaba_gpu_spec,
    cuts,
    markdown,
    per_holdout,
    run,
    summary,
    worse_anywhere,
)
from forecasting.engine import ForecastConfig
from forecasting.hierarchy import LEVEL, LEVEL_BOTTOM, LEVEL_GPU, LEVEL_TEAM, LEVEL_TOTAL, build_hierarchy
from forecasting.samples import load_sample
from usage import schema as S


def test_alibaba_gpu_spec_groups_17_constraints_under_3_catalog_models():
    usage = alibaba_gpu_spec()
    gpu_of = usage.groupby(S.TEAM)[S.GPU_TYPE].unique()
    assert len(gpu_of) == 17 and (gpu_of.str.len() == 1).all()   # a constraint is billed on one model
    gpu_of = gpu_of.str[0]
    assert gpu_of["T4"] == "NVIDIA T4 Tensor Core" and gpu_of["G2"] == "NVIDIA A100"
    assert gpu_of["V100M16/V100M32"] == "NVIDIA Tesla V100"
    assert gpu_of["any"] == gpu_of["T4"]                             # no constraint: the cheapest model of all
    assert gpu_of.value_counts().to_dict() == {"NVIDIA T4 Tensor Core": 8, "NVIDIA Tesla V100": 7, "NVIDIA A100": 2}
    h = build_hierarchy(usage)
    assert len(h.distinct) == 1 + 3 + 17    # teams are their single bottom series, GPU models are real nodes
    # the organisation total is the trace's hourly sum (815 hours)
    csv = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "openb_gpu_hourly_by_gpu_spec.csv"
    raw = pd.read_csv(csv).groupby("timestamp")["gpus_in_use"].sum()
    total = h.long[h.long[S.UID] == "total"][S.Y].to_numpy()
    assert len(total) == 815 and total == pytest.approx(raw.to_numpy(), abs=1e-9)


def test_cuts_end_a_week_apart_and_skip_origins_without_enough_history():
    usage = load_sample("helios")   # 744 hours
    last, first = usage[S.TIMESTAMP].max(), usage[S.TIMESTAMP].min()
    out = cuts(usage, origins=4, skip=0, keep_hours=None)
    assert [back for back, _ in out] == [0, 1, 2, 3]
    for back, cut in out[:3]:
        assert cut[S.TIMESTAMP].max() == last - pd.Timedelta(hours=HOLDOUT_HOURS * back)
    # the third origin leaves exactly 744 - 3 * 168 = 240 hours of history; the fourth only 72
    holdout_start = out[2][1][S.TIMESTAMP].max() - pd.Timedelta(hours=HOLDOUT_HOURS - 1)
    assert (holdout_start - first) / pd.Timedelta(hours=1) == MIN_HISTORY_HOURS == 240
    assert out[3][1] is None
    (back, cut), = cuts(usage, origins=1, skip=1, keep_hours=300)
    assert back == 1 and cut[S.TIMESTAMP].nunique() == 300 + HOLDOUT_HOURS


def test_summary_takes_worst_and_geometric_mean_and_scores_fallbacks_under_the_method_asked_for():
    rows = []
    for back, ratio, used in ((0, 0.5, "wls_var"), (1, 2.0, "wls_var->wls_struct")):
        for level in (LEVEL_TOTAL, LEVEL_GPU, LEVEL_TEAM, LEVEL_BOTTOM):
            rows.append({"dataset": "d", "weeks_back": back, "method": "base", "used": "base", LEVEL: level,
                         "mae_vs_base": 1.0, "coverage_p10_p90": 0.8})
            rows.append({"dataset": "d", "weeks_back": back, "method": "wls_var", "used": used, LEVEL: level,
                         "mae_vs_base": ratio if level == LEVEL_TEAM else 1.0, "coverage_p10_p90": 0.7})
    table = pd.DataFrame(rows)
    summ = summary(table).set_index(["method", LEVEL])
    team = summ.loc[("wls_var", LEVEL_TEAM)]
    assert team["worst"] == 2.0 and team["geo_mean"] == pytest.approx(1.0) and team["worse"] == 1
    assert team["fallbacks"] == 1 and team["holdouts"] == 2
    assert summ.loc[("base", LEVEL_TOTAL), "worst"] == 1.0
    assert worse_anywhere(table).to_dict() == {"wls_var": 1}
    summ = summary(table)
    summ["worse_any"] = summ["method"].map(worse_anywhere(table)).fillna(0).astype(int)
    assert "| `wls_var` | 1.000 / 1.000 | 1.000 / 1.000 | 2.000 / 1.000 | 1.000 / 1.000 | 1 | 1 |" in markdown(summ)


def test_wls_var_total_keeps_the_alibaba_qos_total_on_the_last_week():
    """One real hold-out end to end: wls_var_total keeps the total at its base forecast (ratio 1)."""
    table = run(["alibaba_qos"], 1, 0, ["wls_var_total", "bottom_up"], ForecastConfig(horizon_hours=HOLDOUT_HOURS),
                say=lambda _msg: None)
    wide = per_holdout(table)
    assert wide.loc[("alibaba_qos", 0, "wls_var_total"), LEVEL_TOTAL] == pytest.approx(1.0, abs=1e-4)
    assert wide.loc[("alibaba_qos", 0, "bottom_up"), LEVEL_TEAM] == pytest.approx(1.0, abs=1e-9)
    assert set(table["used"]) == {"base", "wls_var_total", "bottom_up"}


def test_default_wls_var_is_better_than_pinning_the_total_below_it_on_earlier_synthetic_weeks():
    """Why the default is wls_var (forecasting.hierarchy docstring): on synthetic weeks 3-6 back (hold-outs not
    used for reporting), pinning the total (wls_var_total) pushes its error onto the teams. Measured geometric
    means, team / team-gpu: wls_var 0.992 / 0.971, wls_var_total 1.081 / 1.061."""
    from forecasting.hierarchy import HierarchyConfig

    assert HierarchyConfig().method == "wls_var"
    table = run(["synthetic"], 4, 3, ["wls_var", "wls_var_total"], ForecastConfig(horizon_hours=HOLDOUT_HOURS),
                say=lambda _msg: None)
    summ = summary(table).set_index(["method", LEVEL])["geo_mean"]
    for level in (LEVEL_TEAM, LEVEL_BOTTOM):
        assert summ[("wls_var", level)] < 1.0 < summ[("wls_var_total", level)]
