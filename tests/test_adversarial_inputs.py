"""Adversarial input suite: hostile names, encodings, delimiters, values, sizes and paths.

Every case either reads correctly (checked against the numbers the file holds) or fails with one
:class:`UsageError` line naming the file, the row or column, and the fix. Reusable: add a row to a
parameter table to cover a new case. Files are real files in ``tmp_path`` read through
:func:`usage.ingest.load_usage` (DuckDB), the CLI in a subprocess, or the policy reader.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forecasting.engine import ForecastConfig, forecast
from forecasting.hierarchy import build_hierarchy
from operate.policy import load_policy
from optimizer.catalog import load_catalog
from usage import schema as S
from usage.ingest import load_usage
from usage.schema import UsageError

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "ingest"
HEADER = "timestamp,team,gpu_type,gpus\n"
GPU = "NVIDIA A100"


@pytest.fixture(scope="module")
def instance_gpus():
    return load_catalog().instance_gpus()


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def rows(*cells: tuple[str, str, str, str], sep: str = ",") -> str:
    return HEADER.replace(",", sep) + "".join(sep.join(c) + "\n" for c in cells)


def one_line_error(path: Path, **kw) -> UsageError:
    with pytest.raises(UsageError) as info:
        load_usage(path, **kw)
    text = str(info.value)
    assert "\n" not in text and "Traceback" not in text and "(fix: " in text
    assert len(text) < 800, text
    return info.value


# --- timestamps --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1, 1_000, 1_000_000, 1_000_000_000], ids=["s", "ms", "us", "ns"])
def test_unix_epoch_timestamps_are_read_in_the_unit_their_size_implies(tmp_path, scale):
    # Four weeks of hourly Unix times: they used to collapse into 1970-01-01 00:00 (read as nanoseconds).
    start = 1735689600  # 2025-01-01T00:00:00Z
    n = 4 * 7 * 24
    text = HEADER + "".join(f"{(start + 3600 * i) * scale},ml,{GPU},{i % 5}\n" for i in range(n))
    usage, report = load_usage(write(tmp_path / "epoch.csv", text))
    assert len(usage) == n and report.validation.gap_hours_filled == 0
    assert usage[S.TIMESTAMP].iloc[0] == pd.Timestamp("2025-01-01 00:00")
    assert usage[S.TIMESTAMP].iloc[-1] == pd.Timestamp("2025-01-28 23:00")
    assert usage[S.GPUS].sum() == pytest.approx(sum(i % 5 for i in range(n)))


def test_epoch_integers_in_parquet_and_in_a_pandas_frame(tmp_path):
    ts = np.array([1735689600, 1735693200], dtype=np.int64)
    pq.write_table(pa.table({"timestamp": ts, "team": ["a", "a"], "gpu_type": [GPU] * 2, "gpus": [1.0, 2.0]}),
                   tmp_path / "epoch.parquet")
    usage, _ = load_usage(tmp_path / "epoch.parquet")
    assert usage[S.TIMESTAMP].tolist() == [pd.Timestamp("2025-01-01 00:00"), pd.Timestamp("2025-01-01 01:00")]
    frame = pd.DataFrame({"timestamp": ts, "team": "a", "gpu_type": GPU, "gpus": [1.0, 2.0]})
    checked, _ = S.validate_usage(frame)
    assert checked[S.TIMESTAMP].tolist() == usage[S.TIMESTAMP].tolist()


@pytest.mark.parametrize("value", ["1970-01-01T00:00:00Z", "0", "2150-01-01T00:00:00Z"])
def test_timestamps_outside_the_plausible_range_are_refused(tmp_path, value):
    path = write(tmp_path / "old.csv", rows(("2025-01-01T00:00:00Z", "ml", GPU, "1"), (value, "ml", GPU, "1")))
    err = one_line_error(path)
    assert (err.row, err.column) == (3, "timestamp") and "outside 2000-2099" in str(err)


# --- names -------------------------------------------------------------------------------------------------

HOSTILE_NAMES = ["ml|research", "a|b|c", "%7C", "100%", "=HYPERLINK(\"http://x\")", "+cmd", "@sum", "-1",
                 "名前", "team 🚀", "quote\"d", "semi;colon", "x" * 2000]


@pytest.mark.parametrize("team", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_team_names_round_trip_through_ingest_and_series_ids(tmp_path, team):
    frame = pd.DataFrame({"timestamp": ["2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z"], "team": team,
                          "gpu_type": "research|" + GPU, "gpus": [3.0, 4.0]})
    path = tmp_path / "names.csv"
    frame.to_csv(path, index=False)
    usage, _ = load_usage(path)
    assert set(usage[S.TEAM]) == {team} and set(usage[S.GPU_TYPE]) == {"research|" + GPU}
    team_back, gpu_back = S.split_uid(S.series_id(usage[S.TEAM], usage[S.GPU_TYPE]))
    assert team_back.tolist() == usage[S.TEAM].tolist() and gpu_back.tolist() == usage[S.GPU_TYPE].tolist()
    assert S.split_key(S.series_id(usage[S.TEAM], usage[S.GPU_TYPE]).iloc[0]) == (team, "research|" + GPU)


def test_a_team_with_a_pipe_stays_one_team_through_forecast_and_hierarchy():
    # 'ml|research' used to come back as team 'ml', GPU type 'research|NVIDIA A100'.
    hours = pd.date_range("2025-01-01", periods=24 * 21, freq="h")
    level = 4 + 2 * np.sin(np.arange(len(hours)) * 2 * np.pi / 24)
    usage = pd.concat([pd.DataFrame({S.TIMESTAMP: hours, S.TEAM: team, S.GPU_TYPE: GPU, S.GPUS: level + k})
                       for k, team in enumerate(["ml|research", "ml"])], ignore_index=True)
    result = forecast(usage, ForecastConfig(horizon_hours=24, models=("SeasonalNaive24", "Naive"), cv_windows=2))
    pairs = set(zip(result.forecast[S.TEAM], result.forecast[S.GPU_TYPE], strict=True))
    assert pairs == {("ml|research", GPU), ("ml", GPU)}
    nodes = build_hierarchy(usage).nodes
    assert nodes[S.UID].is_unique
    assert set(nodes.loc[nodes["level"] == "team", S.TEAM]) == {"ml|research", "ml"}


# --- NULL cells --------------------------------------------------------------------------------------------

def test_literal_null_is_an_empty_cell(tmp_path):
    text = ("timestamp,team,gpu_type,gpus,project,cost_usd\n"
            f"2025-01-01T00:00:00Z,ml,{GPU},2,NULL,NULL\n2025-01-01T01:00:00Z,ml,{GPU},3,p1,1.5\n")
    usage, _ = load_usage(write(tmp_path / "null.csv", text))
    assert usage[S.PROJECT].isna().tolist() == [True, False] and usage[S.COST_USD].isna().tolist() == [True, False]
    assert usage[S.GPUS].tolist() == [2.0, 3.0]
    err = one_line_error(write(tmp_path / "nullteam.csv", rows(("2025-01-01T00:00:00Z", "NULL", GPU, "1"))))
    assert (err.row, err.column) == (2, "team") and "empty team" in str(err)


def test_real_focus_10_sample_reads_its_gpu_rows_from_the_charge_description(instance_gpus):
    # FinOps Foundation's FOCUS 1.0 sample (excerpt, CC BY 4.0): GPU instances are named only in
    # ChargeDescription; NULL Tags cells; 10 GPU rows, 7.969723 GPU-hours.
    usage, report = load_usage(FIXTURES / "focus10_finops_sample_excerpt.csv", instance_gpus=instance_gpus)
    assert report.format == "focus" and report.rows_read == 50 and report.gpu_rows_kept == 10
    assert report.gpu_hours == pytest.approx(7.969723)
    by_gpu = usage.groupby(S.GPU_TYPE)[S.GPUS].sum()
    assert by_gpu["NVIDIA A10G"] == pytest.approx(6.283056)    # g5.4xlarge: 1 GPU each
    assert by_gpu["NVIDIA Tesla M60"] == pytest.approx(1.686667)
    assert "FOCUS 1.0 export (no column added after FOCUS 1.0)" in report.notes
    assert report.untagged_share == pytest.approx(1.0)


@pytest.mark.parametrize(("extra", "version"), [((), "1.0"), (("SkuMeter",), "1.1"), (("InvoiceId",), "1.2"),
                                                (("ServiceProviderName",), "1.3")])
def test_focus_version_is_the_one_the_columns_show(extra, version):
    from usage.ingest.focus import focus_version

    assert focus_version(["ChargePeriodStart", "ConsumedQuantity", "ProviderName", *extra]) == version


# --- gpus values -------------------------------------------------------------------------------------------

BAD_GPUS = [("1e12", "above the plausible maximum"), ("1e308", "above the plausible maximum"),
            ("1000001", "above the plausible maximum"), ("inf", "not a finite number"),
            ("-inf", "not a finite number"), ("nan", "not a finite number"), ("true", "is a boolean"),
            ("FALSE", "is a boolean"), ("12,5", "is not a number"), ("", "is empty"), ("-1", "is negative")]


@pytest.mark.parametrize(("value", "problem"), BAD_GPUS, ids=[v or "empty" for v, _ in BAD_GPUS])
def test_implausible_gpus_values_name_row_column_and_bound(tmp_path, value, problem):
    text = rows(("2025-01-01T00:00:00Z", "ml", GPU, "2"), ("2025-01-01T01:00:00Z", "ml", GPU, f'"{value}"'))
    err = one_line_error(write(tmp_path / "gpus.csv", text))
    assert (err.row, err.column) == (3, "gpus") and problem in str(err)


def test_the_bound_holds_for_parquet_booleans_and_pandas_frames(tmp_path):
    pq.write_table(pa.table({"timestamp": ["2025-01-01T00:00:00Z"], "team": ["a"], "gpu_type": [GPU],
                             "gpus": [True]}), tmp_path / "b.parquet")
    err = one_line_error(tmp_path / "b.parquet")
    assert (err.row, err.column) == (1, "gpus") and "boolean" in str(err)
    frame = pd.DataFrame({"timestamp": ["2025-01-01T00:00:00Z"] * 2, "team": ["a", "b"], "gpu_type": GPU,
                          "gpus": [1.0, 1e308]})
    with pytest.raises(UsageError, match="row 3, column 'gpus': gpus value 1e[+]308 is above the plausible"):
        S.validate_usage(frame)
    frame = pd.DataFrame({"timestamp": [0, 3600], "team": "a", "gpu_type": GPU, "gpus": [1.0, 1.0]})
    with pytest.raises(UsageError, match="row 2, column 'timestamp': timestamp 0 .read as 1970-01-01 00:00 UTC"):
        S.validate_usage(frame, plausible_dates=True)
    assert S.MAX_GPUS == 1_000_000


def test_a_million_gpus_is_still_accepted(tmp_path):
    usage, _ = load_usage(write(tmp_path / "max.csv", rows(("2025-01-01T00:00:00Z", "ml", GPU, "1000000"))))
    assert usage[S.GPUS].tolist() == [1_000_000.0]


# --- delimiters, encodings, headers ------------------------------------------------------------------------

@pytest.mark.parametrize("sep", [",", ";", "\t", "|"], ids=["comma", "semicolon", "tab", "pipe"])
def test_delimiters_are_detected(tmp_path, sep):
    text = rows(("2025-01-01T00:00:00Z", "ml", GPU, "2.5"), ("2025-01-01T01:00:00Z", "ml", GPU, "3.5"), sep=sep)
    usage, report = load_usage(write(tmp_path / "d.csv", text))
    assert report.format == "canonical" and usage[S.GPUS].tolist() == [2.5, 3.5]


@pytest.mark.parametrize(("encoding", "named"), [("utf-16", "UTF-16"), ("utf-16-le", "UTF-16"),
                                                 ("utf-32", "UTF-32"), ("latin-1", "Latin-1"),
                                                 ("cp1252", "Windows-1252")])
def test_other_encodings_are_named_with_the_fix(tmp_path, encoding, named):
    text = rows(("2025-01-01T00:00:00Z", "José€" if encoding == "cp1252" else "José", GPU, "2"))
    err = one_line_error(write(tmp_path / "enc.csv", text, encoding))
    assert named in str(err) and "UTF-8" in str(err) and "save the file as UTF-8" in str(err)


def test_utf8_with_bom_and_non_ascii_names_read(tmp_path):
    usage, _ = load_usage(write(tmp_path / "bom.csv", rows(("2025-01-01T00:00:00Z", "José", GPU, "2")), "utf-8-sig"))
    assert usage[S.TEAM].tolist() == ["José"]


def test_duplicate_header_names_are_refused(tmp_path):
    text = "timestamp,team,gpu_type,gpus,gpus\n2025-01-01T00:00:00Z,ml,NVIDIA A100,1,2\n"
    err = one_line_error(write(tmp_path / "dup.csv", text))
    assert err.column == "gpus" and "appears twice" in str(err) and "columns 4 and 5" in str(err)


def test_unrecognised_header_message_is_short(tmp_path):
    header = ",".join(f"column_{i}_" + "x" * 300 for i in range(14))
    err = one_line_error(write(tmp_path / "wide.csv", header + "\n" + ",".join("1" * 14) + "\n"))
    assert "unrecognised columns" in str(err) and "14 in all" in str(err)


def test_policy_yaml_in_utf16_names_the_encoding(tmp_path):
    path = write(tmp_path / "policy.yaml", "idle:\n  utilization_below: 0.1\n", "utf-16")
    with pytest.raises(UsageError, match=r"policy\.yaml: file is UTF-16 text .* not UTF-8 \(fix: save the file"):
        load_policy(path)
    path = write(tmp_path / "latin.yaml", "# café\nidle:\n  utilization_below: 0.1\n", "latin-1")
    with pytest.raises(UsageError, match=r"latin\.yaml, line 1: file is not UTF-8 text \(byte 0xE9"):
        load_policy(path)


# --- paths -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["x*.csv", "x?.csv", "[x].csv", "x{a,b}.csv"])
def test_file_names_with_glob_characters_are_read_literally(tmp_path, name):
    write(tmp_path / name, rows(("2025-01-01T00:00:00Z", "ml", GPU, "4")))
    for other in ("xa.csv", "x.csv", "xb.csv"):
        write(tmp_path / other, rows(("2025-01-01T00:00:00Z", "ml", GPU, "100")))
    usage, _ = load_usage(tmp_path / name)
    assert usage[S.GPUS].tolist() == [4.0]


def test_billing_file_names_with_glob_characters_are_read_literally(tmp_path, instance_gpus):
    # A CUR export named 'cur*.csv' beside 'cur-2.csv' used to be read as the glob of both (GPU-hours doubled).
    original = (FIXTURES / "cur2.csv").read_bytes()
    (tmp_path / "cur*.csv").write_bytes(original)
    (tmp_path / "cur-2.csv").write_bytes(original)
    alone, _ = load_usage(FIXTURES / "cur2.csv", instance_gpus=instance_gpus)
    named, report = load_usage(tmp_path / "cur*.csv", instance_gpus=instance_gpus)
    assert report.format == "cur" and named[S.GPUS].sum() == pytest.approx(alone[S.GPUS].sum())


def test_a_folder_mixing_formats_names_the_files(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write(folder / "a.csv", rows(("2025-01-01T00:00:00Z", "ml", GPU, "4")))
    write(folder / "b.csv", "ChargePeriodStart,ConsumedQuantity,ProviderName\n2025-01-01,1,AWS\n")
    err = one_line_error(folder)
    assert err.source.endswith("b.csv") and "a.csv" in str(err) and "canonical" in str(err)
    pd.DataFrame({"x": [1]}).to_parquet(folder / "c.parquet")
    err = one_line_error(folder)
    assert "a.csv is CSV" in str(err) and "c.parquet is Parquet" in str(err)


# --- sizes -------------------------------------------------------------------------------------------------

def test_sub_hourly_duplicates_and_gaps_match_the_pandas_rules(tmp_path):
    text = rows(("2025-01-01T00:00:00Z", "ml", GPU, "4"), ("2025-01-01T00:30:00Z", "ml", GPU, "2"),
                ("2025-01-01T03:00:00Z", "ml", GPU, "5"))
    usage, report = load_usage(write(tmp_path / "s.csv", text))
    expected, expected_report = S.validate_usage(pd.read_csv(tmp_path / "s.csv"))
    assert usage[S.GPUS].tolist() == expected[S.GPUS].tolist() == [3.0, 0.0, 0.0, 5.0]
    assert usage[S.TIMESTAMP].tolist() == expected[S.TIMESTAMP].tolist()
    assert report.validation.notes == expected_report.notes
    dup = rows(("2025-01-01T00:00:00Z", "ml", GPU, "4"), ("2025-01-01T01:00:00Z", "ml", GPU, "4"),
               ("2025-01-01T00:00:00+00:00", "ml", GPU, "4"))
    err = one_line_error(write(tmp_path / "dup.csv", dup))
    assert err.row == 4 and "also on row 2" in str(err)


def test_gap_filling_is_bounded(tmp_path):
    cells = [(t, f"team{k}", GPU, "1") for k in range(8) for t in ("2000-01-01T00:00:00Z", "2099-12-31T00:00:00Z")]
    err = one_line_error(write(tmp_path / "span.csv", rows(*cells)))
    assert err.column == "timestamp" and "spans" in str(err) and "empty hours" in str(err)


def test_many_series_and_rows_read_exactly(tmp_path):
    hours = pd.date_range("2025-01-01", periods=500, freq="h")
    frame = pd.DataFrame({"timestamp": np.tile(hours.strftime("%Y-%m-%dT%H:%M:%SZ"), 40),
                          "team": np.repeat([f"t{i:02d}" for i in range(40)], 500), "gpu_type": GPU,
                          "gpus": np.arange(20_000) % 13})
    frame.sample(frac=1.0, random_state=1).to_csv(tmp_path / "big.csv", index=False)
    usage, report = load_usage(tmp_path / "big.csv")
    assert len(usage) == 20_000 and report.validation.series == 40
    assert usage[S.GPUS].sum() == pytest.approx(frame["gpus"].sum())
    first = usage[usage[S.TEAM] == "t07"]
    assert first[S.GPUS].tolist() == list(np.arange(7 * 500, 8 * 500) % 13)


# --- the CLI -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "encoding", "expected"), [
    (rows(("2025-01-01T00:00:00Z", "ml", GPU, "1e308")), "utf-8", "row 2, column 'gpus'"),
    (rows(("2025-01-01T00:00:00Z", "ml", GPU, "1")), "utf-16", "UTF-16"),
])
def test_cli_ingest_prints_one_error_line(tmp_path, content, encoding, expected):
    path = write(tmp_path / "in.csv", content, encoding)
    before = path.read_bytes()
    proc = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "ingest", str(path),
                           "--out", str(tmp_path / "out.csv")], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out.csv").exists()
    assert path.read_bytes() == before
