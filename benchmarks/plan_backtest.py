"""Plan backtest on real traces and the synthetic organisation (run: .venv/bin/python benchmarks/plan_backtest.py).

For each trace and origin, the plan is decided on the usage strictly before the origin (forecast, then the
optimizer over 50 joint sample paths, as ``gpuplan plan``), and so are the cloud look-back recommenders
(7/30/60 days); every plan is billed on the realised demand of the next window with the plan.json serving
rule and compared with all on-demand and the hindsight optimum (``optimizer.backtest_plan``), with and
without spot. Ratios of USD totals, so the numbers do not depend on how busy this machine is.

Traces:
- ``helios``: SenseTime Helios Earth, May 2020, 16 teams on V100 (``samples.load_sample('helios')``).
- ``alibaba``: Alibaba cluster-trace-gpu-v2023 ("openb") pod table, ``benchmarks/data/
  openb_pod_list_default_with_gpuspec33.parquet`` (source and license in ``benchmarks/data/ALIBABA_SOURCE.md``),
  turned into hourly GPU demand per QoS class (the trace's only grouping: LS, BE, Burstable, Guaranteed act as
  teams) and catalog GPU model by :func:`alibaba_usage` (mapping in :data:`ALIBABA_GPU_MAP`).
- ``synthetic``: the shipped SYNTHETIC organisation (22 teams, 4 GPU models).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.samples import load_sample
from optimizer import catalog as C
from optimizer.backtest_plan import BacktestPlanConfig, backtest_plan, verdict
from optimizer.catalog import Catalog, load_catalog
from optimizer.options import ON_DEMAND
from usage import schema as S

DATA = Path(__file__).resolve().parent / "data"
ALIBABA_PODS = DATA / "openb_pod_list_default_with_gpuspec33.parquet"

ALIBABA_GPU_MAP = {
    "T4": "NVIDIA T4 Tensor Core",      # g4dn: the same GPU
    "V100M16": "NVIDIA Tesla V100",     # p3 (16 GB)
    "V100M32": "NVIDIA Tesla V100",     # p3dn (32 GB)
    "P100": "NVIDIA Tesla V100",        # AWS offers no P100; the V100 is its successor on AWS
    "A10": "NVIDIA A10G",               # g5: AWS's A10 variant
    "G2": "NVIDIA A100",                # undisclosed internal code on 8-GPU nodes: taken as an 8 x A100 node (p4d)
    "G3": "NVIDIA A100",                # idem (39 nodes of 8 GPUs)
}
"""Alibaba GPU spec -> catalog GPU model. A pod may run on any model its spec lists (``A|B``); it is billed on
the cheapest of them (on-demand USD per GPU-hour in the region: rightsizing); pods without a spec may run on
any GPU of the cluster and get the cheapest of all mapped models."""

ALIBABA_FIRST_HOUR, ALIBABA_LAST_HOUR = 2769, 3583
"""Whole hours inside the trace's observation window (before it the released pod list is nearly empty)."""


def cheapest_model(models: set[str], catalog: Catalog, region: str = "us-east-1") -> str:
    """The GPU model with the lowest on-demand USD per GPU-hour in the region."""
    rows = catalog.region(region)
    od = rows[(rows[C.PURCHASE_OPTION] == ON_DEMAND) & rows[C.GPU_MODEL].isin(models)]
    per_gpu = (od[C.EFFECTIVE_HOURLY] / od[C.GPU_COUNT]).groupby(od[C.GPU_MODEL]).min()
    return str(per_gpu.idxmin())


def alibaba_usage(catalog: Catalog, path: Path = ALIBABA_PODS) -> pd.DataFrame:
    """Canonical hourly usage (team = QoS class, gpu_type = catalog model) from the openb pod table.

    A scheduled pod holds ``num_gpu`` GPUs, or ``gpu_milli / 1000`` of one GPU when it shares a GPU, from
    ``scheduled_time`` to ``deletion_time`` (seconds); an hour's demand is the time-weighted mean GPUs held
    (GPU-hours in the hour). Pods never scheduled and CPU-only pods are left out. Timestamps are SYNTHETIC
    (1970-01-01 + hour offset), as in ``benchmarks/data/ALIBABA_SOURCE.md``.
    """
    pods = pd.read_parquet(path)
    pods = pods[pods["scheduled_time"].notna() & (pods["num_gpu"] > 0)].copy()
    pods["gpus"] = np.where(pods["num_gpu"] > 1, pods["num_gpu"], pods["gpu_milli"] / 1000.0)
    everything = set(ALIBABA_GPU_MAP.values())
    choice = {}
    for spec in pods["gpu_spec"].dropna().unique():
        choice[spec] = cheapest_model({ALIBABA_GPU_MAP[s] for s in spec.split("|")}, catalog)
    pods["gpu_type"] = pods["gpu_spec"].map(choice).fillna(cheapest_model(everything, catalog))
    edges = np.arange(ALIBABA_FIRST_HOUR, ALIBABA_LAST_HOUR + 2) * 3600.0
    frames = []
    for (qos, gpu_type), g in pods.groupby(["qos", "gpu_type"]):
        start = g["scheduled_time"].to_numpy(float)[:, None]
        end = np.maximum(g["deletion_time"].to_numpy(float), start[:, 0])[:, None]
        # GPU-seconds held up to each hour edge, then per hour
        held = (np.clip(edges[None, :], start, end) - start) * g["gpus"].to_numpy(float)[:, None]
        per_hour = np.diff(held.sum(axis=0)) / 3600.0
        hours = pd.to_datetime(np.arange(ALIBABA_FIRST_HOUR, ALIBABA_LAST_HOUR + 1), unit="h")
        frames.append(pd.DataFrame({S.TIMESTAMP: hours, S.TEAM: qos, S.GPU_TYPE: gpu_type, S.GPUS: per_hour}))
    usage, _ = S.validate_usage(pd.concat(frames, ignore_index=True), source=path.name,
                                known_gpu_types=catalog.gpu_models())
    return usage


TRACES = {"helios": (lambda cat: load_sample("helios"), 168, 2),
          "alibaba": (alibaba_usage, 168, 2),
          "synthetic": (lambda cat: load_sample("synthetic"), 720, 3)}
"""trace -> (loader, window hours, origins)."""


def run(trace: str, catalog: Catalog, origins: int | None = None) -> tuple[pd.DataFrame, list[str], float]:
    load, hours, default_origins = TRACES[trace]
    usage = load(catalog)
    t0 = time.perf_counter()
    result = backtest_plan(usage, catalog, BacktestPlanConfig(hours=hours, origins=origins or default_origins))
    return result.summary.assign(trace=trace, window_hours=hours), verdict(result.summary), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", default="helios,alibaba,synthetic", help="comma-separated: " + ", ".join(TRACES))
    parser.add_argument("--origins", type=int, default=None, help="override each trace's number of origins")
    parser.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    args = parser.parse_args()
    catalog = load_catalog()
    tables = []
    for trace in args.traces.split(","):
        table, lines, seconds = run(trace.strip(), catalog, args.origins)
        tables.append(table)
        with pd.option_context("display.width", 220, "display.max_columns", 20,
                               "display.float_format", "{:,.3f}".format):
            print(f"\n== {trace}: {int(table['origins'].iloc[0])} origin(s) x {int(table['window_hours'].iloc[0])} h "
                  f"({seconds:.0f} s)")
            print(table.drop(columns=["trace", "window_hours", "hindsight_usd"]).to_string(index=False))
        for line in lines:
            print("  " + line)
    if args.out is not None:
        from usage.io import write_csv_atomic

        write_csv_atomic(pd.concat(tables, ignore_index=True), args.out)


if __name__ == "__main__":
    main()
