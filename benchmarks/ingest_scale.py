"""Ingest at scale: rows per second and peak memory of ``load_usage`` on canonical CSV, Parquet and CUR.

Units: rows are data rows of the input file; time in seconds; memory is the peak resident set size
(``ru_maxrss``, MB) of a fresh subprocess that reads one file, and ``above imports`` is that peak minus
the peak after importing the libraries (what reading the file itself costs).

Each case runs in its own subprocess so peaks do not mix. The files are generated in a temporary folder
by DuckDB (hourly usage of ``series`` team x GPU series, so ``rows / series`` hours each; the CUR file
has the same GPU-hours as instance line items of catalog GPU instance types with a ``user_team`` tag, plus
one non-GPU row in ten). The baseline, run by the same script, is the pre-streaming canonical reader:
``pandas.read_csv`` / ``read_parquet`` of the whole file then :func:`usage.schema.validate_usage`;
ratios are ``baseline / streaming`` for time and memory.

Usage::

    python benchmarks/ingest_scale.py                       # 1 M and 10 M rows, every format, with baseline
    python benchmarks/ingest_scale.py --rows 1000000 --no-baseline
    python benchmarks/ingest_scale.py --rows 1000000 --no-baseline --compare-tree /tmp/base   # same files, the
        # streaming reader of another source tree (e.g. ``git archive`` of an earlier commit) as the baseline
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
SERIES = 1000
TEAMS = 200
GPU_TYPES = ("NVIDIA A100", "NVIDIA H100", "NVIDIA A10G", "NVIDIA L4", "NVIDIA T4")
CUR_TYPES = (("p4d.24xlarge", 8), ("p5.48xlarge", 8), ("g5.xlarge", 1), ("g6.xlarge", 1), ("g4dn.xlarge", 1))

RUNNER = r"""
import json, resource, sys, time
import pandas as pd
from usage.ingest import load_usage
from usage.schema import validate_usage
from optimizer.catalog import load_catalog
kind, path, mode = sys.argv[1:4]
gpus = load_catalog().instance_gpus()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
if mode == "baseline":
    text = {c: str for c in ("team", "gpu_type")}
    raw = (pd.read_csv(path, dtype=text, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
           if kind == "csv" else pd.read_parquet(path))
    usage, _ = validate_usage(raw, path)
    rows = len(raw)
else:
    usage, report = load_usage(path, instance_gpus=gpus)
    rows = report.rows_read
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "out_rows": len(usage), "gpu_hours": float(usage["gpus"].sum()),
                  "seconds": seconds, "peak_mb": peak, "import_mb": base}))
"""


def generate(folder: Path, rows: int) -> dict[str, Path]:
    """Canonical CSV, canonical Parquet and CUR 2.0 CSV files of ``rows`` data rows each."""
    hours = rows // SERIES
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    canonical = f"""
        SELECT strftime(TIMESTAMP '2024-01-01' + INTERVAL (h) HOUR, '%Y-%m-%dT%H:%M:%SZ') AS timestamp,
               'team-' || lpad(CAST(s % {TEAMS} AS VARCHAR), 3, '0') AS team,
               {list(GPU_TYPES)}[1 + (s // {TEAMS}) % {len(GPU_TYPES)}] AS gpu_type,
               round(8 + 6 * sin(h * 2 * pi() / 24) + (hash(s, h) % 100) / 25.0, 2) AS gpus
        FROM range({SERIES}) AS a(s), range({hours}) AS b(h)
    """
    out = {"canonical_csv": folder / f"canonical_{rows}.csv", "parquet": folder / f"canonical_{rows}.parquet",
           "cur_csv": folder / f"cur_{rows}.csv"}
    con.execute(f"COPY ({canonical}) TO '{out['canonical_csv']}' (HEADER, DELIMITER ',')")
    con.execute(f"COPY ({canonical}) TO '{out['parquet']}' (FORMAT PARQUET)")
    types = [t for t, _ in CUR_TYPES]
    cur = f"""
        WITH base AS (SELECT i, i % 10 = 9 AS other, {types}[1 + i % {len(types)}] AS itype
                      FROM range({rows}) AS r(i))
        SELECT 'li-' || i AS identity_line_item_id,
               strftime(TIMESTAMP '2024-01-01' + INTERVAL ((i // 1000) % 8760) HOUR, '%Y-%m-%dT%H:%M:%SZ')
                   AS line_item_usage_start_date,
               strftime(TIMESTAMP '2024-01-01' + INTERVAL ((i // 1000) % 8760 + 1) HOUR, '%Y-%m-%dT%H:%M:%SZ')
                   AS line_item_usage_end_date,
               'Usage' AS line_item_line_item_type,
               CASE WHEN other THEN 'USE1-BoxUsage:m5.large' ELSE 'USE1-BoxUsage:' || itype END
                   AS line_item_usage_type,
               round(0.25 + (hash(i) % 75) / 100.0, 2) AS line_item_usage_amount,
               round(1.5 * (0.25 + (hash(i) % 75) / 100.0), 4) AS line_item_unblended_cost,
               '{{"user_team": "team-' || lpad(CAST(i % {TEAMS} AS VARCHAR), 3, '0') || '"}}' AS resource_tags
        FROM base
    """
    con.execute(f"COPY ({cur}) TO '{out['cur_csv']}' (HEADER, DELIMITER ',')")
    con.close()
    return out


def run(kind: str, path: Path, mode: str, tree: Path = ROOT) -> dict:
    proc = subprocess.run([sys.executable, "-c", RUNNER, kind, str(path), mode], capture_output=True, text=True,
                          cwd=tree, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "runner failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median(runs: list[dict]) -> dict:
    """The run with the median time (its memory peak kept with it)."""
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--no-baseline", action="store_true", help="skip the pandas baseline")
    parser.add_argument("--baseline-max-rows", type=int, default=10_000_000,
                        help="largest file the pandas baseline reads")
    parser.add_argument("--compare-tree", type=Path, default=None,
                        help="run the streaming reader of this source tree on the same files as the baseline; "
                             "ratios are then that tree / this tree")
    parser.add_argument("--repeat", type=int, default=1,
                        help="with --compare-tree: alternate the two readers this many times, report medians "
                             "(shared machines are noisy)")
    args = parser.parse_args()
    print(f"{'file':<22}{'rows':>12}{'mode':>10}{'seconds':>9}{'rows/s':>12}{'peak MB':>9}{'above imports':>15}"
          f"{'time x':>8}{'memory x':>10}")
    with tempfile.TemporaryDirectory(prefix="ingest-scale-") as tmp:
        for rows in args.rows:
            files = generate(Path(tmp), rows)
            for name, path in files.items():
                kind = "parquet" if name == "parquet" else "csv"
                results = {"streaming": run(kind, path, "streaming")}
                if args.compare_tree is not None:
                    mine, theirs = [results["streaming"]], []
                    for k in range(args.repeat):
                        theirs.append(run(kind, path, "streaming", args.compare_tree))
                        if k:
                            mine.append(run(kind, path, "streaming"))
                    results = {"streaming": _median(mine), "baseline": _median(theirs)}
                pandas_baseline = not args.no_baseline and name != "cur_csv" and rows <= args.baseline_max_rows
                if pandas_baseline and "baseline" not in results:
                    results["baseline"] = run(kind, path, "baseline")
                    assert abs(results["baseline"]["gpu_hours"] - results["streaming"]["gpu_hours"]) < 1e-6 * max(
                        1.0, results["baseline"]["gpu_hours"]), "the two readers disagree"
                for mode, r in results.items():
                    ratio = ""
                    if mode == "streaming" and "baseline" in results:
                        b = results["baseline"]
                        ratio = (f"{b['seconds'] / r['seconds']:>8.2f}"
                                 f"{(b['peak_mb'] - b['import_mb']) / max(r['peak_mb'] - r['import_mb'], 1):>10.2f}")
                    print(f"{name:<22}{r['rows']:>12,}{mode:>10}{r['seconds']:>9.1f}{r['rows'] / r['seconds']:>12,.0f}"
                          f"{r['peak_mb']:>9.0f}{r['peak_mb'] - r['import_mb']:>15.0f}{ratio}", flush=True)
            for path in files.values():
                path.unlink()


if __name__ == "__main__":
    main()
