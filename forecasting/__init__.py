"""GPU demand: per-series forecasts with ranges and sample paths, planned events, long-term forecasts, hold-out
accuracy, and the sample organisations. The usage contract and its ingestion are the package below it, :mod:`usage`.

Units: GPUs in use averaged over an hour (= GPU-hours per hour); timestamps are UTC hour starts.
"""

from forecasting.engine import ForecastConfig, ForecastResult, forecast

__all__ = ["ForecastConfig", "ForecastResult", "forecast"]
