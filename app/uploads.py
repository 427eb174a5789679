"""Data in: usage or billing files uploaded in the planner's sidebar become a selectable data source.

Accepted: canonical usage CSV/Parquet (``timestamp, team, gpu_type, gpus``), FOCUS 1.0-1.3 exports and AWS
CUR 2.0 / legacy CUR exports, as ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq``. The upload is read by the same
ingestion layer as ``gpuplan ingest`` (:func:`usage.ingest.load_usage`, format detected from the header),
so a bad file is reported as that layer's one-line :class:`usage.schema.UsageError`: the uploaded
file's name, row, column and fix.

Size limit: ``$GPUPLAN_MAX_UPLOAD_MB`` (megabytes, default 200), parsed once by :func:`app.limits.max_upload_mb`
for both ``gpuplan app`` (Streamlit's ``server.maxUploadSize``) and :func:`read_upload`, which enforces it again in
code, so a larger file gets a clear one-line message even when the app runs without that server option. An
invalid value (``abc``, ``0``) is refused by both: ``gpuplan app`` exits with one ``error:`` line and the sidebar
shows the same line instead of the uploader.

The upload is copied into a private temporary folder (mode 0700) for the ingestion layer and the folder is
removed as soon as it is read.

Identity: an upload's data-source id is ``upload:<first 16 hex digits of sha256(content + tag key)>``. The id
is the value of the data-source selectbox (:data:`app.state.DATA_SOURCE_KEY`) and of
``PlannerSettings.sample``, so the cached forecast and plan are keyed by the data's content hash: uploading
the same bytes again reuses them, different bytes never do.

The sidebar widget validates in the uploader's ``on_change`` callback. A valid file is registered and
selected; a bad one only sets the inline error, so the selected data source (the sample by default) and
every other setting of the session stay as they were. Units are those of the canonical usage frame
(``gpus`` = GPU-hours per hour, ``cost_usd`` in USD).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from app import fmt
from app import state as A
from app.limits import DEFAULT_MAX_UPLOAD_MB, MAX_UPLOAD_ENV, max_upload_mb
from optimizer.catalog import Catalog
from usage import schema as S
from usage.ingest import load_usage
from usage.ingest.readers import FORMAT_LABELS, SUPPORTED_SUFFIXES

__all__ = ["DEFAULT_MAX_UPLOAD_MB", "MAX_UPLOAD_ENV", "max_upload_mb", "read_upload", "sidebar_upload"]
UPLOAD_PREFIX = "upload:"
UPLOADER_KEY = "usage_upload"
TAG_KEY_KEY = "upload_tag_key"

HELP_UPLOAD = ("Your own GPU usage: canonical usage (columns timestamp, team, gpu_type, gpus; one row per hour, "
               "team and GPU type), a FOCUS 1.0-1.3 billing export or an AWS CUR 2.0 / legacy CUR export, as .csv, "
               ".csv.gz, .parquet or .pq. The format is detected from the header. A valid file becomes the data "
               "source of every page; a bad one is reported below and nothing else changes.")
HELP_TAG = ("Cost-allocation tag that names the team in FOCUS and CUR exports (e.g. 'team' or 'user_team'). "
            "Usage without the tag is shown as team 'unallocated'.")


@dataclass(frozen=True)
class UploadedUsage:
    """A validated upload.

    Attributes:
        source_id: ``upload:<sha256 prefix>``, the data-source id.
        name: the uploaded file's name.
        sha256: hex digest of the content and tag key.
        size_bytes: file size, bytes.
        format: ``canonical``, ``focus`` or ``cur``.
        usage: the canonical usage frame (GPUs per hour; treat as read-only).
        report: the ingestion report's lines (rows read, GPU-hours, untagged share, notes).
    """

    source_id: str
    name: str
    sha256: str
    size_bytes: int
    format: str
    usage: pd.DataFrame
    report: tuple[str, ...]

    @property
    def label(self) -> str:
        """Selectbox label: file name, format, teams and time span."""
        u = self.usage
        return (f"Uploaded: {self.name} ({FORMAT_LABELS.get(self.format, self.format)}, "
                f"{u[S.TEAM].nunique()} teams, {u[S.TIMESTAMP].min():%Y-%m-%d} to {u[S.TIMESTAMP].max():%Y-%m-%d})")

    @property
    def provenance(self) -> str:
        """What a saved scenario records as its data source: ``upload:<name>#<sha256 prefix>``."""
        return f"{UPLOAD_PREFIX}{self.name}#{self.sha256[:16]}"


def source_id(data: bytes, tag_key: str = "team") -> tuple[str, str]:
    """``(data-source id, sha256 hex)`` of an upload's bytes read with ``tag_key``."""
    digest = hashlib.sha256(data + b"\0tag_key=" + tag_key.encode()).hexdigest()
    return f"{UPLOAD_PREFIX}{digest[:16]}", digest


def is_upload(source: str) -> bool:
    return str(source).startswith(UPLOAD_PREFIX)


def _clean_name(name: str) -> str:
    base = Path(str(name).replace("\\", "/")).name.strip()
    return base or "upload.csv"


def read_upload(name: str, data: bytes, catalog: Catalog, *, tag_key: str = "team",
                max_bytes: int | None = None) -> UploadedUsage:
    """Validate uploaded bytes into canonical usage, exactly as ``gpuplan ingest`` would read the file.

    Args:
        name: the uploaded file's name (its suffix picks CSV or Parquet; errors name it).
        data: the file's bytes.
        catalog: supplies the instance -> GPU mapping for billing exports and the known GPU models.
        tag_key: cost-allocation tag holding the team (FOCUS, CUR).
        max_bytes: size limit in bytes; default ``$GPUPLAN_MAX_UPLOAD_MB`` megabytes.

    Raises:
        UsageError: too large, unsupported type, or bad content; one line naming the file, row, column, fix.
        ValueError: ``$GPUPLAN_MAX_UPLOAD_MB`` is invalid (:func:`app.limits.max_upload_mb`).
    """
    name = _clean_name(name)
    limit = max_upload_mb() * 1024 * 1024 if max_bytes is None else int(max_bytes)
    if len(data) > limit:
        raise S.UsageError(name, f"file is {len(data) / 1024 / 1024:.1f} MB, over the upload limit of "
                                 f"{limit / 1024 / 1024:.0f} MB",
                           fix=f"upload a shorter period or only the GPU instance line items, or start the app "
                               f"with a larger {MAX_UPLOAD_ENV}")
    if not name.lower().endswith(SUPPORTED_SUFFIXES):
        suffix = "".join(Path(name).suffixes[-2:]) or "(none)"
        raise S.UsageError(name, f"unsupported file type '{suffix}'",
                           fix="upload a .csv, .csv.gz, .parquet or .pq file (canonical usage, FOCUS or CUR)")
    tag_key = tag_key.strip() or "team"
    sid, digest = source_id(data, tag_key)
    with tempfile.TemporaryDirectory(prefix="gpuplan-upload-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            usage, report = load_usage(path, "auto", tag_key=tag_key, instance_gpus=catalog.instance_gpus(),
                                       known_gpu_types=catalog.gpu_models())
        except S.UsageError as exc:
            # Name the user's file, not the temporary copy.
            raise S.UsageError(name, exc.message.replace(str(path), name).replace(tmp, ""), row=exc.row,
                               column=exc.column, fix=exc.fix) from None
    usage.attrs["note"] = f"Uploaded file {name} ({FORMAT_LABELS.get(report.format, report.format)})."
    lines = tuple(line.replace(str(path), name) for line in report.lines())
    return UploadedUsage(source_id=sid, name=name, sha256=digest, size_bytes=len(data), format=report.format,
                         usage=usage, report=lines)


# --- Streamlit: the sidebar uploader ----------------------------------------------------------------
def _on_upload(catalog: Callable[[], Catalog]) -> None:
    """Uploader callback (runs before the script): validate, register and select, or set the error."""
    file = st.session_state.get(UPLOADER_KEY)
    st.session_state.pop(A.UPLOAD_ERROR_KEY, None)
    if file is None:  # the user removed the file; the data source stays as it is
        return
    try:
        up = read_upload(file.name, file.getvalue(), catalog(),
                         tag_key=str(st.session_state.get(TAG_KEY_KEY) or "team"))
    except (S.UsageError, ValueError) as exc:
        st.session_state[A.UPLOAD_ERROR_KEY] = str(exc)
        return
    A.register_dataset(up.source_id, up.usage, up.label, up.provenance, up.report)
    mine = [s for s in st.session_state.get(A.UPLOADS_KEY, []) if s != up.source_id]
    st.session_state[A.UPLOADS_KEY] = [*mine, up.source_id]
    st.session_state[A.DATA_SOURCE_KEY] = up.source_id


def sidebar_upload() -> None:
    """The sidebar's 'Your data' section: uploader, tag key, inline error or what the upload holds."""
    sb = st.sidebar
    with sb.expander("Your data (upload)", expanded=bool(st.session_state.get(A.UPLOAD_ERROR_KEY))):
        st.text_input("Team tag key (FOCUS / CUR)", value="team", key=TAG_KEY_KEY, help=HELP_TAG)
        try:
            limit = max_upload_mb()
        except ValueError as exc:
            st.error(fmt.plain(f"error: uploads are off: {exc}"), icon=":material/error:")
            return
        # started by plain `streamlit run`, the server may hold a smaller limit than the code: show the one in force
        limit = min(limit, int(st.get_option("server.maxUploadSize") or limit))
        st.file_uploader(f"Usage or billing file (at most {limit} MB)",
                         type=["csv", "gz", "parquet", "pq"], key=UPLOADER_KEY, help=HELP_UPLOAD,
                         on_change=_on_upload, args=(A.cached_catalog,))
        error = st.session_state.get(A.UPLOAD_ERROR_KEY)
        if error:
            st.error(fmt.plain(f"Upload rejected, nothing else changed. {error}"), icon=":material/error:")
        current = st.session_state.get(A.DATA_SOURCE_KEY)
        if current and is_upload(current) and (info := A.upload_info(current)) is not None:
            st.caption(fmt.plain("Using " + "; ".join(info.report)))
