"""Canonical usage validation: every user mistake is one line naming file, row, column and fix."""

from __future__ import annotations

import pandas as pd
import pytest

from usage import schema as S

KNOWN = {"NVIDIA A100", "NVIDIA H100"}


def frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["timestamp", "team", "gpu_type", "gpus"])


GOOD = [("2025-01-01T00:00:00Z", "a", "NVIDIA A100", 4.0), ("2025-01-01T01:00:00Z", "a", "NVIDIA A100", 5.5)]


def error_for(df: pd.DataFrame) -> S.UsageError:
    with pytest.raises(S.UsageError) as info:
        S.validate_usage(df, "usage.csv", known_gpu_types=KNOWN)
    message = str(info.value)
    assert "\n" not in message and message.startswith("usage.csv")
    return info.value


def test_good_frame_passes_and_reports():
    df, report = S.validate_usage(frame(GOOD), "usage.csv", known_gpu_types=KNOWN)
    assert list(df[S.GPUS]) == [4.0, 5.5]
    assert report.rows_in == 2 and report.series == 1 and report.gap_hours_filled == 0
    assert df[S.TIMESTAMP].dt.tz is None and df[S.TIMESTAMP].iloc[0] == pd.Timestamp("2025-01-01 00:00")


def test_missing_column():
    e = error_for(frame(GOOD).drop(columns=["gpus"]))
    assert e.column == "gpus" and "missing column 'gpus'" in str(e)


def test_unparseable_timestamp_names_row_and_column():
    e = error_for(frame([GOOD[0], ("yesterday", "a", "NVIDIA A100", 1.0)]))
    assert (e.row, e.column) == (3, "timestamp") and "yesterday" in str(e) and "ISO 8601" in str(e)


def test_negative_gpus():
    e = error_for(frame([GOOD[0], ("2025-01-01T01:00Z", "a", "NVIDIA A100", -2)]))
    assert (e.row, e.column) == (3, "gpus") and "negative" in str(e)


def test_non_numeric_gpus():
    e = error_for(frame([("2025-01-01T00:00Z", "a", "NVIDIA A100", "four")]))
    assert (e.row, e.column) == (2, "gpus") and "'four'" in str(e)


@pytest.mark.parametrize("value", [float("nan"), None, "  "])
def test_blank_gpus_cell_is_called_empty_not_a_numpy_repr(value):
    e = error_for(frame([GOOD[0], ("2025-01-01T01:00Z", "a", "NVIDIA A100", value)]))
    assert (e.row, e.column) == (3, "gpus") and "gpus value is empty" in str(e)
    assert "nan" not in str(e).lower().replace("fix", "")


def test_error_values_are_shown_as_plain_python():
    import numpy as np

    assert S.shown(np.float64(2.5)) == "2.5" and S.shown("four") == "'four'" and S.shown(np.int64(3)) == "3"
    assert S.bad_value("gpus value", np.float64(np.inf), "is not a number") == "gpus value inf is not a number"


def test_duplicate_key_names_both_rows():
    e = error_for(frame([GOOD[0], GOOD[1], GOOD[0]]))
    assert e.row == 4 and "also on row 2" in str(e) and "duplicate" in str(e)


def test_unknown_gpu_type():
    e = error_for(frame([("2025-01-01T00:00Z", "a", "NVIDIA A1000", 1)]))
    assert (e.row, e.column) == (2, "gpu_type") and "A1000" in str(e) and "NVIDIA A100" in str(e)


def test_subhourly_rows_are_aggregated_to_hourly_means_and_reported():
    rows = [(f"2025-01-01T00:{m:02d}:00Z", "a", "NVIDIA A100", g) for m, g in ((0, 2), (15, 4), (30, 6), (45, 8))]
    rows.append(("2025-01-01T01:00:00Z", "a", "NVIDIA A100", 3))
    df, report = S.validate_usage(frame(rows), "usage.csv", known_gpu_types=KNOWN)
    assert list(df[S.GPUS]) == [5.0, 3.0]
    assert report.aggregated_subhourly_rows == 4 and "aggregated" in report.notes[0]


def test_gaps_are_filled_with_zero_and_reported():
    rows = [("2025-01-01T00:00Z", "a", "NVIDIA A100", 2), ("2025-01-01T03:00Z", "a", "NVIDIA A100", 2)]
    df, report = S.validate_usage(frame(rows), "usage.csv", known_gpu_types=KNOWN)
    assert list(df[S.GPUS]) == [2.0, 0.0, 0.0, 2.0]
    assert report.gap_hours_filled == 2 and "2 missing hours" in report.notes[0]


def test_timezone_aware_values_convert_to_utc_and_naive_values_are_utc():
    rows = [("2025-01-01T09:00:00+09:00", "a", "NVIDIA A100", 1), ("2025-01-01 01:00", "a", "NVIDIA A100", 1)]
    df, _ = S.validate_usage(frame(rows), "usage.csv", known_gpu_types=KNOWN)
    assert list(df[S.TIMESTAMP]) == [pd.Timestamp("2025-01-01 00:00"), pd.Timestamp("2025-01-01 01:00")]


def test_utilization_outside_unit_interval():
    df = frame(GOOD).assign(utilization=[0.5, 1.7])
    e = error_for(df)
    assert (e.row, e.column) == (3, "utilization")
