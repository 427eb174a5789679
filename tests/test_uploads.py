"""Uploads: real files (the Helios sample, the FOCUS/CUR fixtures) read as the sidebar reads them, and the
uploader driven through AppTest: a bad file leaves the session as it was, a good one becomes the data source."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import fmt, sidebar
from app import state as A
from app import uploads as U
from forecasting.samples import data_dir
from optimizer.catalog import load_catalog
from usage import schema as S
from usage.ingest import load_usage

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app" / "streamlit_app.py")
FIXTURES = ROOT / "tests" / "fixtures" / "ingest"
CATALOG = load_catalog()


def helios_csv(days: int = 21) -> bytes:
    """The first ``days`` days of the real Helios sample (canonical CSV) as uploaded bytes."""
    text = (data_dir() / "helios_earth_may2020.csv").read_text().splitlines()
    rows = [text[0]] + [line for line in text[1:] if line[:10] < f"2020-05-{days + 1:02d}"]
    return ("\n".join(rows) + "\n").encode()


def test_canonical_csv_upload_matches_the_cli_reader(tmp_path) -> None:
    data = helios_csv()
    up = U.read_upload("earth.csv", data, CATALOG)
    path = tmp_path / "earth.csv"
    path.write_bytes(data)
    expected, _ = load_usage(path, instance_gpus=CATALOG.instance_gpus(), known_gpu_types=CATALOG.gpu_models())
    pd.testing.assert_frame_equal(up.usage.reset_index(drop=True), expected.reset_index(drop=True))
    assert up.format == "canonical"
    assert up.usage[S.TEAM].nunique() == 16
    assert up.size_bytes == len(data)
    assert up.source_id.startswith("upload:") and len(up.source_id) == len("upload:") + 16
    assert up.provenance == f"upload:earth.csv#{up.sha256[:16]}"
    assert "earth.csv" in up.report[0] and str(tmp_path) not in " ".join(up.report)
    assert up.label.startswith("Uploaded: earth.csv (canonical usage, 16 teams, 2020-04-30 to 2020-05-21)")


def test_source_id_is_the_content_hash() -> None:
    a = U.read_upload("a.csv", helios_csv(14), CATALOG)
    same_bytes_other_name = U.read_upload("b.csv", helios_csv(14), CATALOG)
    other = U.read_upload("a.csv", helios_csv(15), CATALOG)
    assert a.source_id == same_bytes_other_name.source_id
    assert a.source_id != other.source_id
    assert U.source_id(b"x", "team")[0] != U.source_id(b"x", "user_team")[0]


def test_parquet_upload(tmp_path) -> None:
    frame = pd.read_csv(io.BytesIO(helios_csv(10)))
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    up = U.read_upload("earth.parquet", buf.getvalue(), CATALOG)
    assert up.format == "canonical"
    assert up.usage[S.GPUS].sum() == pytest.approx(U.read_upload("e.csv", helios_csv(10), CATALOG).usage[S.GPUS].sum())


@pytest.mark.parametrize("fixture, fmt, tag", [("focus12_aws.csv", "focus", "team"), ("cur2.csv", "cur", "user_team"),
                                               ("cur_legacy.csv", "cur", "user_team")])
def test_billing_exports_are_detected_and_read_like_the_cli(fixture, fmt, tag) -> None:
    path = FIXTURES / fixture
    up = U.read_upload(fixture, path.read_bytes(), CATALOG, tag_key=tag)
    expected, report = load_usage(path, tag_key=tag, instance_gpus=CATALOG.instance_gpus(),
                                  known_gpu_types=CATALOG.gpu_models())
    assert up.format == fmt == report.format
    assert up.usage[S.GPUS].sum() == pytest.approx(expected[S.GPUS].sum())
    assert sorted(up.usage[S.TEAM].unique()) == sorted(expected[S.TEAM].unique())


def test_bad_row_names_the_uploaded_file_row_column_and_fix() -> None:
    lines = helios_csv(3).decode().splitlines()
    ts, team, gpu, _ = lines[5].split(",")
    lines[5] = f"{ts},{team},{gpu},-4"  # CSV line 6 (header is line 1)
    with pytest.raises(S.UsageError) as err:
        U.read_upload("my usage.csv", ("\n".join(lines) + "\n").encode(), CATALOG)
    msg = str(err.value)
    assert msg.startswith("my usage.csv, row 6, column 'gpus': ")
    assert "(fix: " in msg and "\n" not in msg and "gpuplan-upload-" not in msg


def test_missing_column_and_unknown_header() -> None:
    with pytest.raises(S.UsageError, match=r"^u\.csv, column 'gpus': missing column 'gpus' \(fix: "):
        U.read_upload("u.csv", b"timestamp,team,gpu_type\n2025-01-01T00:00Z,a,NVIDIA A100\n", CATALOG)
    with pytest.raises(S.UsageError, match=r"^x\.csv: unrecognised columns \(a, b\)"):
        U.read_upload("x.csv", b"a,b\n1,2\n", CATALOG)


def test_size_limit_is_enforced_in_code(monkeypatch) -> None:
    data = helios_csv(3)
    with pytest.raises(S.UsageError, match=r"^big\.csv: file is 0\.\d MB, over the upload limit of 0 MB .*"
                                           r"GPUPLAN_MAX_UPLOAD_MB"):
        U.read_upload("big.csv", data, CATALOG, max_bytes=len(data) - 1)
    assert U.read_upload("ok.csv", data, CATALOG, max_bytes=len(data)).size_bytes == len(data)
    monkeypatch.setenv(U.MAX_UPLOAD_ENV, "1")
    assert U.max_upload_mb() == 1
    with pytest.raises(S.UsageError, match="over the upload limit of 1 MB"):
        U.read_upload("big.csv", b"x" * (1024 * 1024 + 1), CATALOG)
    for bad in ("zero", "0", "-5"):  # refused, as gpuplan app refuses it (one parser: app.limits)
        monkeypatch.setenv(U.MAX_UPLOAD_ENV, bad)
        with pytest.raises(ValueError, match=f"{U.MAX_UPLOAD_ENV}='{bad}' is not a whole number"):
            U.max_upload_mb()


def test_unsupported_type_and_empty_file() -> None:
    with pytest.raises(S.UsageError, match=r"^usage\.xlsx: unsupported file type '\.xlsx' \(fix: upload a \.csv"):
        U.read_upload("usage.xlsx", b"PK\x03\x04", CATALOG)
    with pytest.raises(S.UsageError, match=r"^empty\.csv: file is empty"):
        U.read_upload("dir/empty.csv", b"", CATALOG)


# --- AppTest: the sidebar uploader ----------------------------------------------------------------
@pytest.fixture
def helios_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv(A.DEFAULT_SAMPLE_ENV, "helios")
    monkeypatch.setenv(A.DEFAULT_HOURS_ENV, "168")
    monkeypatch.setenv("GPUPLAN_STORE", str(tmp_path / "scenarios.duckdb"))


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_app_upload_bad_then_good_file(helios_env) -> None:
    at = AppTest.from_file(APP, default_timeout=300)
    ok(at.run())
    at.switch_page("app_pages/whatif.py")
    ok(at.run())
    assert at.selectbox(key=A.DATA_SOURCE_KEY).value == "helios"
    at.slider(key=A.GROWTH_KEY).set_value(20)
    ok(at.run())

    bad = helios_csv(3).decode().replace("NVIDIA Tesla V100", "NVIDIA Tesla V999", 1).encode()
    at.file_uploader(key=U.UPLOADER_KEY).set_value(("bad.csv", bad, "text/csv"))
    ok(at.run())
    errors = [fmt.unplain(e.value) for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Upload rejected, nothing else changed. bad.csv, row 2, "
                                                     "column 'gpu_type': ")
    assert at.session_state[A.UPLOAD_ERROR_KEY].startswith("bad.csv, row 2")
    assert at.selectbox(key=A.DATA_SOURCE_KEY).value == "helios"  # the session is intact
    assert at.slider(key=A.GROWTH_KEY).value == 20

    good = helios_csv(21)
    at.file_uploader(key=U.UPLOADER_KEY).set_value(("earth.csv", good, "text/csv"))
    ok(at.run())
    sid = U.source_id(good)[0]
    assert not at.error
    assert A.UPLOAD_ERROR_KEY not in at.session_state
    box = at.selectbox(key=A.DATA_SOURCE_KEY)
    assert box.value == sid
    assert box.options == [sidebar.source_name(s) for s in [*A.SAMPLES, sid]]  # the box shows names that fit
    assert fmt.plain(A.data_source_label(sid)) in [c.value for c in at.sidebar.caption]  # the full label under it
    assert at.slider(key=A.GROWTH_KEY).value == 20
    # the plan now comes from the uploaded 3 weeks, not the 31-day sample
    assert at.session_state[A.PLAN_SUMMARY_KEY]["expected_usd"] > 0
    assert A.cached_usage(sid)[S.TIMESTAMP].max() == pd.Timestamp("2020-05-21 23:00")
    # the forecast is cached under the upload's content-hash id and starts the hour after the upload ends
    fc = A.cached_forecast(A.ForecastSettings(sid, 168)).forecast
    assert fc[S.TIMESTAMP].min() == pd.Timestamp("2020-05-22 00:00")
    assert fc[S.TIMESTAMP].nunique() == 168

    # switching back to the sample is one selectbox change; the upload stays selectable
    at.selectbox(key=A.DATA_SOURCE_KEY).set_value("helios")
    ok(at.run())
    assert at.selectbox(key=A.DATA_SOURCE_KEY).value == "helios"
    assert len(at.selectbox(key=A.DATA_SOURCE_KEY).options) == len(A.SAMPLES) + 1
