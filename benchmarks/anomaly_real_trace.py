"""Anomaly detection on a real trace no design choice has seen: SenseTime Helios Earth, May 2020, 16 teams.

``benchmarks/anomaly_detection.py`` chose every rule and setting of ``operate/anomalies.py`` on the synthetic org.
This script runs the shipped detector, as it is (module defaults, nothing re-tuned), on the real Helios trace
(``data_samples/helios_earth_may2020.csv``: GPUs in use per virtual cluster, hourly, 2020-04-30 16:00 to
2020-05-31 15:00 UTC, CC BY 4.0, see data_samples/README.md) with the same six Done-when anomalies injected by
:func:`benchmarks.anomaly_detection.inject`, and the two baselines at the thresholds that benchmark chose on its
TUNING set (rolling z-score ``|z| >= 10``, rolling MAD ``|z| >= 5``).

The trace is 31 days long: the window is its last 14 days (the detector needs 14 days of history before it), so the
anomalies start on days 2-6 of the window (drifts on day 2: their 5-day ramp ends inside it). Ten cases (seeds
0-9), the same window; each injects into 7 of the 14 teams with a mean of at least 2 GPUs, the 9 other teams'
series are the untouched ones. Recall, false-alarm rate and precision as in the synthetic benchmark.

Run: ``python benchmarks/anomaly_real_trace.py`` (about a minute).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.anomaly_detection import (  # noqa: E402
    baseline_rows,
    inject,
    per_kind,
    score_case,
    table,
    untouched_series,
)
from forecasting.samples import load_sample  # noqa: E402
from operate.anomalies import CUSUM_H, CUSUM_K, HOUR_Z, AnomalyConfig, find, fit_window  # noqa: E402

LOOKBACK_DAYS = 14
SEEDS = tuple(range(10))
BASELINES = {"rolling z-score": (10.0, False), "rolling MAD": (5.0, True)}
"""Baseline -> (threshold, robust): the thresholds the synthetic benchmark chose on its TUNING set."""


OURS = ("forecast ranges (ours)", (HOUR_Z, CUSUM_K, CUSUM_H))
"""Our detector and its shipped setting (hour score, CUSUM slack, CUSUM level)."""
NO_RETURN = ("ours without the return rule", (HOUR_Z, CUSUM_K, CUSUM_H))
"""The same without the rule that a spike's usage must go back after it (``return_share``), added 2026-12-05 from
the synthetic design data; on this trace it raised the false alarms (docs/benchmarks.md), so both are shown."""


def run(usage: pd.DataFrame) -> dict[tuple[str, object], dict[str, float]]:
    """Summed counts per (method, setting) over the cases, as :func:`benchmarks.anomaly_detection.table` reads them."""
    as_of = usage["timestamp"].max() + pd.Timedelta(hours=1)
    config = AnomalyConfig(lookback_days=LOOKBACK_DAYS)
    totals: dict[tuple[str, object], dict[str, float]] = {}
    for seed in SEEDS:
        injected, injections = inject(usage, as_of, seed, LOOKBACK_DAYS)
        untouched = untouched_series(usage, injections)
        window = fit_window(injected, as_of, config)
        actual = window.observe(injected)
        results = {OURS: score_case(find(window, actual, lambda _g: 1.0, config).table, injections, untouched,
                                    kinds=True),
                   NO_RETURN: score_case(find(window, actual, lambda _g: 1.0, replace(config, return_share=None)).table,
                                         injections, untouched, kinds=True)}
        cache: dict = {}
        for name, (threshold, robust) in BASELINES.items():
            rows = baseline_rows(injected, as_of, threshold, robust, cache, LOOKBACK_DAYS)
            results[(name, threshold)] = score_case(rows, injections, untouched, kinds=False)
        for name, res in results.items():
            acc = totals.setdefault(name, {"cases": 0})
            acc["cases"] += 1
            for k, v in res.items():
                acc[k] = acc.get(k, 0) + v
    return totals


def main() -> None:
    usage = load_sample("helios")
    totals = run(usage)
    print(f"Helios Earth, window = the last {LOOKBACK_DAYS} days, {len(SEEDS)} cases (seeds {SEEDS[0]}-{SEEDS[-1]}); "
          "detector and baseline thresholds as shipped / as tuned on the synthetic org")
    print(table(totals, dict(totals.keys())))
    print("ours per anomaly: " + per_kind(totals[OURS]))


if __name__ == "__main__":
    main()
