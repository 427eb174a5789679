"""GPU demand: usage contract and ingestion, per-series forecasts with ranges, hold-out accuracy.

Units: GPUs in use averaged over an hour (= GPU-hours per hour); timestamps are UTC hour starts.
"""

from forecasting.engine import ForecastConfig, ForecastResult, forecast

__all__ = ["ForecastConfig", "ForecastResult", "forecast"]
