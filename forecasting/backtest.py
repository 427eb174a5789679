"""Hold-out accuracy: forecast the last hours of a usage history from what came before, and score it.

Units: errors are in GPUs (GPUs in use averaged over an hour). MASE scales each series' mean absolute
error by the in-sample mean absolute error of the 24-hour seasonal naive forecast on the training part,
so 1.0 means "as good as repeating yesterday". Coverage is the share of held-out hours whose actual
value lies inside the p10-p90 band (the target for an 80% band is 0.8).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from forecasting import schema as S
from forecasting.engine import ForecastConfig, forecast
from forecasting.models import BASELINES


@dataclass(frozen=True)
class HoldoutResult:
    """Per-series and overall scores of a hold-out test.

    Attributes:
        per_series: team, gpu_type, model, mae, and ``mae_<baseline>`` for each baseline, mase,
            coverage_p10_p90.
        overall: one row per method ("selected" and each baseline): mean MASE over series, total MAE
            (GPUs), and for "selected" the p10-p90 coverage.
        holdout_start: first held-out hour.
    """

    per_series: pd.DataFrame
    overall: pd.DataFrame
    holdout_start: pd.Timestamp


def _scale(train: pd.DataFrame, season: int = 24) -> pd.Series:
    def one(y: np.ndarray) -> float:
        if len(y) <= season:
            return float(np.mean(np.abs(np.diff(y)))) if len(y) > 1 else np.nan
        return float(np.mean(np.abs(y[season:] - y[:-season])))

    scale = train.groupby([S.TEAM, S.GPU_TYPE])[S.GPUS].apply(lambda s: one(s.to_numpy(dtype=float)))
    return scale.replace(0.0, np.nan)


def holdout_accuracy(usage: pd.DataFrame, holdout_hours: int = 168, config: ForecastConfig | None = None,
                     ) -> HoldoutResult:
    """Fit on all but the last ``holdout_hours`` and score the forecasts of the held-out hours.

    The selected forecast is compared with each naive baseline (Naive, SeasonalNaive24,
    SeasonalNaive168) fitted on the same training data.
    """
    config = replace(config or ForecastConfig(), horizon_hours=holdout_hours)
    cut = usage[S.TIMESTAMP].max() - pd.Timedelta(hours=holdout_hours - 1)
    train = usage[usage[S.TIMESTAMP] < cut]
    test = usage[usage[S.TIMESTAMP] >= cut]
    keys = [S.TEAM, S.GPU_TYPE, S.TIMESTAMP]
    sel = forecast(train, config).forecast
    merged = test[keys + [S.GPUS]].merge(sel, on=keys, how="inner")
    merged["abs_err"] = (merged[S.GPUS] - merged[S.MEAN]).abs()
    merged["inside"] = (merged[S.GPUS] >= merged[S.P10]) & (merged[S.GPUS] <= merged[S.P90])
    per = merged.groupby([S.TEAM, S.GPU_TYPE]).agg(model=(S.MODEL, "first"), mae=("abs_err", "mean"),
                                                     coverage_p10_p90=("inside", "mean"))
    for base in BASELINES:
        bcfg = replace(config, models=(base,), cv_windows=0)
        bfc = forecast(train, bcfg).forecast
        b = test[keys + [S.GPUS]].merge(bfc, on=keys, how="inner")
        b["abs_err"] = (b[S.GPUS] - b[S.MEAN]).abs()
        per[f"mae_{base}"] = b.groupby([S.TEAM, S.GPU_TYPE])["abs_err"].mean()
    scale = _scale(train)
    per["mase"] = per["mae"] / scale
    rows = [{"method": "selected", "mean_mase": per["mase"].mean(), "total_mae_gpus": per["mae"].sum(),
             "coverage_p10_p90": merged["inside"].mean()}]
    for base in BASELINES:
        rows.append({"method": base, "mean_mase": (per[f"mae_{base}"] / scale).mean(),
                     "total_mae_gpus": per[f"mae_{base}"].sum(), "coverage_p10_p90": np.nan})
    return HoldoutResult(per_series=per.reset_index(), overall=pd.DataFrame(rows), holdout_start=cut)
