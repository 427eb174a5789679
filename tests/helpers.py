"""Small hand-checkable catalogs and forecasts for optimizer tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from optimizer import catalog as C
from optimizer.options import term_hours
from usage import schema as S

START = pd.Timestamp("2026-01-01 00:00")


def make_catalog(rows: list[dict]) -> C.Catalog:
    """Catalog from rows with instance_type, purchase_option, price (USD/instance-h), gpus, gpu_model,
    optional upfront (USD), bucket and memory (GiB per GPU, default 80). Region us-east-1."""
    records = []
    for r in rows:
        option = r["purchase_option"]
        term = term_hours(option)
        upfront = float(r.get("upfront", 0.0))
        records.append({
            C.PROVIDER: "aws", C.REGION: "us-east-1", C.INSTANCE_TYPE: r["instance_type"], C.PURCHASE_OPTION: option,
            C.EFFECTIVE_HOURLY: float(r["price"]), C.UPFRONT: upfront,
            C.RECURRING_HOURLY: float(r["price"]) - (upfront / term if term else 0.0),
            C.UPFRONT_IS_ESTIMATE: False, C.TERM_HOURS_COL: term, C.GPU_MODEL: r.get("gpu_model", "NVIDIA A100"),
            C.GPU_COUNT: float(r.get("gpus", 1)), C.GPU_MEMORY: float(r.get("memory", 80.0)),
            C.INTERRUPTION: r.get("bucket", "<5%"),
            C.SNAPSHOT_DATE: "2026-01-01", C.SOURCE: "test"})
    return C.Catalog(table=pd.DataFrame(records), path="test catalog")


def flat_forecast(demand: np.ndarray | list[float], gpu_model: str = "NVIDIA A100", team: str = "t",
                  p10: np.ndarray | None = None, p90: np.ndarray | None = None) -> pd.DataFrame:
    """A forecast whose p10/p50/p90 equal ``demand`` unless given (GPUs per hour from START)."""
    d = np.asarray(demand, dtype=float)
    ts = pd.date_range(START, periods=len(d), freq="h")
    return pd.DataFrame({S.TEAM: team, S.GPU_TYPE: gpu_model, S.TIMESTAMP: ts, S.MEAN: d,
                         S.P10: d if p10 is None else p10, S.P50: d, S.P90: d if p90 is None else p90,
                         S.MODEL: "test"})
