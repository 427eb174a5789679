"""Planned events: known future changes to GPU demand, read from a small YAML or CSV file and applied
to a forecast as explicit, listed adjustments.

Units: ``gpus`` is GPUs in use (averaged over each hour, = GPU-hours per hour), the same unit as the
forecast columns; ``factor`` is a dimensionless multiplier; ``start``/``end`` are UTC instants (a bare
date means 00:00 UTC of that day; aware timestamps are converted to UTC). An event is active on
``[start, end)``: ``start`` inclusive, ``end`` exclusive, no ``end`` = until the end of the forecast.

Event kinds (one row / list item each):

* ``add``: ``gpus`` more GPUs of ``gpu_type`` for ``team`` while active (a new project). Every quantile
  moves up by ``gpus``. If the (team, gpu_type) series has no forecast yet it is created (all zeros
  outside the event, model ``event``).
* ``set``: demand of the series is exactly ``gpus`` while active (all quantiles = ``gpus``: the
  uncertainty is gone). Creates the series if needed.
* ``scale``: multiply the series (mean and every quantile) by ``factor`` (>= 0) while active.
  Without ``gpu_type`` it applies to every GPU type of the team.
* ``wind_down``: the team's demand falls linearly from 100% at ``start`` to 0 at ``end`` (required)
  and stays 0 after it; every quantile is multiplied by the ramp. Without ``gpu_type`` it applies to
  every GPU type of the team.
* ``ramp_up``: ``gpus`` more GPUs of ``gpu_type`` reached linearly: none at ``start``, all of them at
  ``end`` (required), held after it (a launch whose traffic grows over weeks). Every quantile moves up by
  the ramp's GPUs; it creates the series if needed, as ``add`` does.

Events apply in file order (a ``set`` followed by an ``add`` gives ``gpus_set + gpus_add``). A forecast
row covers ``[t, t + period)`` (one hour for the hourly contract, one day for the long-term daily
frame); an event that covers only part of a row's period changes it pro rata, and a row inside a
wind-down ramp gets the ramp's average over the row, so the change in GPU-hours is exact.

File formats
------------
YAML (``.yaml``/``.yml``; read with ``yaml.safe_load``): a list of mappings, or a mapping with an
``events:`` list (other top-level keys such as ``description`` are ignored)::

    events:
      - {team: llm-pretrain, gpu_type: NVIDIA H100, kind: add, gpus: 128,
         start: 2026-02-01, end: 2026-05-01, note: "foundation-140b pretraining"}
      - {team: nlp-legacy, kind: wind_down, start: 2026-01-01, end: 2026-03-01}

CSV (``.csv``): header ``team,gpu_type,kind,start,end,gpus,factor,note`` (only ``team``, ``kind``,
``start`` are required as columns); empty cells are missing values.

Fields: ``team`` (required), ``kind`` (required), ``start`` (required), ``end``, ``gpu_type``
(required for add/set), ``gpus`` (required for add/set, >= 0), ``factor`` (required for scale, >= 0),
``note`` (free text shown in the adjustments table).

Every mistake raises :class:`EventsError` (a :class:`usage.schema.UsageError`) whose text is one
line naming the file, the YAML item (1-based) or CSV line, the field and the fix.

Adjustments frame
-----------------
:func:`apply_events` returns, beside the adjusted forecast, one row per (event, series) with the columns
of :data:`ADJUSTMENT_COLUMNS`: ``team, gpu_type, start, end, kind, value, delta_gpu_hours, source, note``.
``value`` is ``gpus`` for add/set/ramp_up, ``factor`` for scale, 0 (the target fraction) for wind_down and the
annual rate for ``trend`` and ``growth`` rows written by :mod:`forecasting.longterm`; ``delta_gpu_hours`` is the
change of the series' mean forecast in GPU-hours over the forecast rows; ``source`` names the file and
item (or the setting) the adjustment came from.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from usage import schema as S

KINDS = ("add", "set", "scale", "wind_down", "ramp_up")
FIELDS = ("team", "gpu_type", "kind", "start", "end", "gpus", "factor", "note")
REQUIRED_FIELDS = ("team", "kind", "start")

DATE = "date"
"""Time column of daily frames (the long-term forecast); hourly frames use ``schema.TIMESTAMP``."""

# adjustments frame
START = "start"
END = "end"
KIND = "kind"
VALUE = "value"
DELTA_GPU_HOURS = "delta_gpu_hours"
SOURCE = "source"
NOTE = "note"
ADJUSTMENT_COLUMNS = (S.TEAM, S.GPU_TYPE, START, END, KIND, VALUE, DELTA_GPU_HOURS, SOURCE, NOTE)
EVENT_MODEL = "event"
"""``model`` of forecast rows of a series that only exists because an event created it."""

_QUANTILE_RE = re.compile(r"p\d{2}")


class EventsError(S.UsageError):
    """A mistake in a planned-events file: one line naming file, item/line, field and fix."""

    def __init__(self, source: str, message: str, *, item: int | None = None, line: int | None = None,
                 field: str | None = None, fix: str | None = None) -> None:
        where = ([f"item {item}"] if item is not None else []) + ([f"line {line}"] if line is not None else []) \
            + ([f"field '{field}'"] if field is not None else [])
        super().__init__(source, message, row=line, column=field, fix=fix, where=where)
        self.item = item
        self.field = field


@dataclass(frozen=True)
class Event:
    """One planned change of demand (see the module docstring for the kinds).

    Attributes:
        team: team the event applies to.
        kind: ``add``, ``set``, ``scale``, ``wind_down`` or ``ramp_up``.
        start: first instant (naive UTC) the event is active.
        end: instant (naive UTC, exclusive) it stops; ``None`` = open-ended (required for wind_down and
            ramp_up: where the ramp ends).
        gpu_type: GPU model; ``None`` (scale/wind_down only) = every GPU type of the team.
        gpus: GPUs added (add; ramp_up at its end) or the demand level (set), >= 0.
        factor: multiplier (scale), >= 0.
        note: free text shown in the adjustments table.
        source: file name the event came from.
        item: 1-based YAML item index, or ``None``.
        line: CSV line number (header = line 1), or ``None``.
    """

    team: str
    kind: str
    start: pd.Timestamp
    end: pd.Timestamp | None = None
    gpu_type: str | None = None
    gpus: float | None = None
    factor: float | None = None
    note: str = ""
    source: str = "events"
    item: int | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            self.error(f"unknown kind '{self.kind}'", "kind", f"use one of {', '.join(KINDS)}")
        if self.end is not None and self.end <= self.start:
            self.error(f"end {_fmt(self.end)} is not after start {_fmt(self.start)}", "end",
                       "end must be later than start (it is exclusive); leave it empty for open-ended events")
        if self.kind in ("add", "set", "ramp_up"):
            if self.gpu_type is None:
                self.error(f"missing gpu_type, required for kind '{self.kind}'", "gpu_type",
                           "name the GPU model, e.g. NVIDIA H100")
            if self.gpus is None:
                self.error(f"missing gpus, required for kind '{self.kind}'", "gpus", "give the GPUs in use, e.g. 64")
        if self.gpus is not None and not (math.isfinite(self.gpus) and self.gpus >= 0):
            self.error(f"gpus {self.gpus:g} is negative" if self.gpus < 0 else f"gpus {self.gpus} is not finite",
                       "gpus", "gpus must be a number >= 0; to reduce demand use kind scale or set")
        if self.kind == "scale" and self.factor is None:
            self.error("missing factor, required for kind 'scale'", "factor", "give a multiplier, e.g. 1.3 for +30%")
        if self.factor is not None and not (math.isfinite(self.factor) and self.factor >= 0):
            self.error(f"factor {self.factor:g} is negative" if self.factor < 0 else "factor is not finite",
                       "factor", "factor must be a number >= 0 (0.5 halves demand)")
        if self.kind == "wind_down" and self.end is None:
            self.error("missing end, required for kind 'wind_down'", "end",
                       "give the date demand reaches 0, e.g. 2026-03-01")
        if self.kind == "ramp_up" and self.end is None:
            self.error("missing end, required for kind 'ramp_up'", "end",
                       "give the date the ramp reaches all its GPUs, e.g. 2026-03-01")

    @property
    def where(self) -> str:
        """``file item N`` / ``file line N``: where the event was defined."""
        if self.item is not None:
            return f"{self.source} item {self.item}"
        if self.line is not None:
            return f"{self.source} line {self.line}"
        return self.source

    @property
    def value(self) -> float:
        """The number shown in the adjustments table (GPUs for add/set/ramp_up, factor for scale, 0 for wind_down)."""
        if self.kind in ("add", "set", "ramp_up"):
            return float(self.gpus or 0.0)
        if self.kind == "scale":
            return float(self.factor if self.factor is not None else 1.0)
        return 0.0

    def error(self, message: str, field: str | None, fix: str | None = None) -> None:
        """Raise an :class:`EventsError` located at this event."""
        raise EventsError(self.source, message, item=self.item, line=self.line, field=field, fix=fix)


def _fmt(ts: pd.Timestamp | None) -> str:
    if ts is None:
        return ""
    return f"{ts:%Y-%m-%d}" if ts == ts.normalize() else f"{ts:%Y-%m-%dT%H:%M}Z"


# --- reading --------------------------------------------------------------------------------------
def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _parse_time(value: Any, fail) -> pd.Timestamp:
    if isinstance(value, dt.date | dt.datetime | pd.Timestamp | str | np.datetime64):
        try:
            ts = pd.Timestamp(value.strip() if isinstance(value, str) else value)
        except (ValueError, TypeError, OverflowError):
            ts = None
        if ts is not None and not pd.isna(ts):
            if ts.tzinfo is not None:
                ts = ts.tz_convert("UTC").tz_localize(None)
            return ts
    fail(f"cannot parse {value!r} as a date", "use ISO 8601, e.g. 2026-02-01 or 2026-02-01T00:00:00Z")
    raise AssertionError  # unreachable: fail raises


def _parse_number(value: Any, fail) -> float:
    if isinstance(value, bool):
        fail(f"{value!r} is not a number", "write a number, e.g. 64")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        number = None
    if number is None or not math.isfinite(number):
        fail(f"{value!r} is not a number", "write a number, e.g. 64")
    return number


def _event_from_record(record: Mapping[str, Any], source: str, *, item: int | None = None,
                       line: int | None = None, known_gpu_types: set[str] | None = None) -> Event:
    def fail_at(field: str | None):
        def fail(message: str, fix: str | None = None) -> None:
            raise EventsError(source, message, item=item, line=line, field=field, fix=fix)
        return fail

    if not isinstance(record, Mapping):
        fail_at(None)(f"expected a mapping of fields, got {type(record).__name__}",
                      f"write each event as {{team: ..., kind: ..., start: ...}} with fields {', '.join(FIELDS)}")
    for key in record:
        if str(key).strip() not in FIELDS:
            fail_at(str(key))("unknown field", f"fields are {', '.join(FIELDS)}")
    rec = {str(k).strip(): v for k, v in record.items()}
    for name in REQUIRED_FIELDS:
        if _missing(rec.get(name)):
            fail_at(name)(f"missing {name}", {"team": "name the team, e.g. llm-pretrain",
                                              "kind": f"use one of {', '.join(KINDS)}",
                                              "start": "give the first day, e.g. 2026-02-01"}[name])
    kind = str(rec["kind"]).strip()
    if kind not in KINDS:
        fail_at("kind")(f"unknown kind '{kind}'", f"use one of {', '.join(KINDS)}")
    gpu_type = None if _missing(rec.get("gpu_type")) else str(rec["gpu_type"]).strip()
    if gpu_type is not None and known_gpu_types is not None and gpu_type not in known_gpu_types:
        examples = ", ".join(sorted(known_gpu_types)[:6])
        fail_at("gpu_type")(f"gpu_type '{gpu_type}' is not offered by any catalog instance",
                            f"use a catalog gpu_model such as {examples}")
    start = _parse_time(rec["start"], fail_at("start"))
    end = None if _missing(rec.get("end")) else _parse_time(rec["end"], fail_at("end"))
    gpus = None if _missing(rec.get("gpus")) else _parse_number(rec["gpus"], fail_at("gpus"))
    factor = None if _missing(rec.get("factor")) else _parse_number(rec["factor"], fail_at("factor"))
    note = "" if _missing(rec.get("note")) else str(rec["note"]).strip()
    return Event(team=str(rec["team"]).strip(), kind=kind, start=start, end=end, gpu_type=gpu_type, gpus=gpus,
                 factor=factor, note=note, source=source, item=item, line=line)


def parse_events(records: Iterable[Mapping[str, Any]], source: str = "events", *,
                 known_gpu_types: set[str] | None = None) -> tuple[Event, ...]:
    """Validate in-memory event records (e.g. rows edited in the app) the way a YAML file is.

    Args:
        records: mappings with the fields of the module docstring.
        source: name used in error messages.
        known_gpu_types: GPU models some catalog instance offers; ``None`` skips that check.

    Returns:
        The events in the given order; item numbers are 1-based positions.

    Raises:
        EventsError: one line naming source, item, field and fix.
    """
    return tuple(_event_from_record(rec, source, item=i, known_gpu_types=known_gpu_types)
                 for i, rec in enumerate(records, 1))


def load_events(path: str | Path, *, known_gpu_types: set[str] | None = None) -> tuple[Event, ...]:
    """Read and validate a planned-events file (``.yaml``/``.yml`` or ``.csv``).

    Args:
        path: the file.
        known_gpu_types: GPU models some catalog instance offers; ``None`` skips that check.

    Returns:
        The events in file order.

    Raises:
        EventsError: one line naming the file, item (YAML) or line (CSV), field and fix.
    """
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".csv"):
        raise EventsError(name, f"unsupported file type '{path.suffix or '(none)'}'",
                          fix="write the events as .yaml, .yml or .csv")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EventsError(name, f"cannot read the file ({exc.__class__.__name__}: "
                                f"{getattr(exc, 'strerror', None) or exc})",
                          fix="check the path and that it is a UTF-8 text file") from None
    if suffix == ".csv":
        return _load_csv(text, name, known_gpu_types)
    return _load_yaml(text, name, known_gpu_types)


def _load_yaml(text: str, name: str, known_gpu_types: set[str] | None) -> tuple[Event, ...]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise EventsError(name, f"not valid YAML ({problem})", line=mark.line + 1 if mark is not None else None,
                          fix="check indentation and quote text containing ':' or '#'") from None
    if isinstance(data, Mapping):
        if "events" not in data:
            raise EventsError(name, "no 'events' list", fix="put the events in a list under the key 'events:'")
        data = data["events"]
    if data is None:
        return ()
    if not isinstance(data, list):
        raise EventsError(name, f"expected a list of events, got {type(data).__name__}",
                          fix="write one '- {team: ..., kind: ..., start: ...}' item per event")
    return parse_events(data, name, known_gpu_types=known_gpu_types)


def _load_csv(text: str, name: str, known_gpu_types: set[str] | None) -> tuple[Event, ...]:
    import io

    if not text.strip():
        return ()
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise EventsError(name, f"not a valid CSV ({first})",
                          fix=f"one header line ({','.join(FIELDS)}) and one event per line; quote commas") from None
    df.columns = [str(c).strip() for c in df.columns]
    for col in df.columns:
        if col not in FIELDS:
            raise EventsError(name, "unknown column", line=1, field=col, fix=f"columns are {', '.join(FIELDS)}")
    for col in REQUIRED_FIELDS:
        if col not in df.columns:
            raise EventsError(name, "missing column", line=1, field=col,
                              fix=f"the header needs at least {', '.join(REQUIRED_FIELDS)}")
    records = df.to_dict(orient="records")
    return tuple(_event_from_record(rec, name, line=S.csv_row(i), known_gpu_types=known_gpu_types)
                 for i, rec in enumerate(records))


def events_frame(events: Sequence[Event]) -> pd.DataFrame:
    """The events as a table (for display and for writing back as CSV)."""
    rows = [{"team": e.team, "gpu_type": e.gpu_type, "kind": e.kind, "start": e.start, "end": e.end,
             "gpus": e.gpus, "factor": e.factor, "note": e.note, SOURCE: e.where} for e in events]
    return pd.DataFrame(rows, columns=[*FIELDS, SOURCE])


# --- applying -------------------------------------------------------------------------------------
def empty_adjustments() -> pd.DataFrame:
    """An adjustments frame with no rows and the contract's columns."""
    return pd.DataFrame({S.TEAM: pd.Series(dtype=object), S.GPU_TYPE: pd.Series(dtype=object),
                         START: pd.Series(dtype="datetime64[ns]"), END: pd.Series(dtype="datetime64[ns]"),
                         KIND: pd.Series(dtype=object), VALUE: pd.Series(dtype=float),
                         DELTA_GPU_HOURS: pd.Series(dtype=float), SOURCE: pd.Series(dtype=object),
                         NOTE: pd.Series(dtype=object)})


def infer_period(times: pd.Series | pd.Index, time_col: str) -> pd.Timedelta:
    """Length of one forecast row: the most common step between distinct times (1 h / 1 day if unknown)."""
    uniq = pd.Index(pd.unique(pd.to_datetime(pd.Series(times)))).sort_values()
    if len(uniq) >= 2:
        steps = pd.Series(np.diff(uniq.to_numpy())).value_counts()
        return pd.Timedelta(steps.index[0])
    return pd.Timedelta(days=1) if time_col == DATE else pd.Timedelta(hours=1)


def _overlap(a: np.ndarray, b: np.ndarray, lo: np.datetime64 | None, hi: np.datetime64 | None) -> np.ndarray:
    """Length (ns, float) of [a, b) ∩ [lo, hi) per element; ``None`` = unbounded."""
    left = a if lo is None else np.maximum(a, lo)
    right = b if hi is None else np.minimum(b, hi)
    return np.clip((right - left).astype("timedelta64[ns]").astype(np.int64), 0, None).astype(float)


def active_fraction(t: np.ndarray, period: pd.Timedelta, start: pd.Timestamp,
                    end: pd.Timestamp | None) -> np.ndarray:
    """Share of each row's period ``[t, t + period)`` inside ``[start, end)`` (0-1)."""
    t = np.asarray(t, dtype="datetime64[ns]")
    p = np.timedelta64(int(period.value), "ns")
    hi = None if end is None else np.datetime64(end.to_datetime64(), "ns")
    return _overlap(t, t + p, np.datetime64(start.to_datetime64(), "ns"), hi) / float(period.value)


def wind_down_factor(t: np.ndarray, period: pd.Timedelta, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Average over each row's period of the ramp that is 1 before ``start``, falls linearly to 0 at
    ``end`` and is 0 after it."""
    t = np.asarray(t, dtype="datetime64[ns]").astype(np.int64).astype(float)
    p = float(period.value)
    s, e = float(start.value), float(end.value)
    a, b = t, t + p
    before = np.clip(np.minimum(b, s) - a, 0, None)
    u, v = np.maximum(a, s), np.minimum(b, e)
    inside = np.clip(v - u, 0, None)
    ramp = np.where(inside > 0, ((e - u) + (e - v)) / 2.0 / (e - s), 0.0)
    return (before + ramp * inside) / p


def ramp_up_gpus(ev: Event, t: np.ndarray, period: pd.Timedelta) -> np.ndarray:
    """GPUs a ``ramp_up`` event adds to each row (its mean over the row's period): 0 before ``start``, linear to
    ``gpus`` at ``end``, ``gpus`` after it."""
    return (1.0 - wind_down_factor(t, period, ev.start, ev.end)) * float(ev.gpus)


def value_columns(frame: pd.DataFrame, quantile_cols: Sequence[str] | None = None) -> list[str]:
    """``mean`` plus the quantile columns (default: every ``pNN`` column) of a forecast frame."""
    if quantile_cols is None:
        quantile_cols = [c for c in frame.columns if _QUANTILE_RE.fullmatch(str(c))]
    missing = [c for c in (S.MEAN, *quantile_cols) if c not in frame.columns]
    if missing:
        raise ValueError(f"forecast frame has no column '{missing[0]}'")
    return [S.MEAN, *quantile_cols]


def apply_events(forecast_frame: pd.DataFrame, events: Sequence[Event], *, time_col: str | None = None,
                 quantile_cols: Sequence[str] | None = None, period: pd.Timedelta | None = None,
                 strict: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply planned events to a forecast and list what each one changed.

    Works on the hourly forecast contract (``team, gpu_type, timestamp, mean, p10, p50, p90`` [+ p05,
    p95], model) and on the long-term daily frame (``date`` instead of ``timestamp``).

    Args:
        forecast_frame: the forecast (GPUs per hour, >= 0); not modified.
        events: events in the order to apply them.
        time_col: ``timestamp`` or ``date``; default: whichever the frame has.
        quantile_cols: quantile columns to move with the event; default: every ``pNN`` column.
        period: length of one row; default: the most common step between the frame's times.
        strict: raise when a scale or wind_down event matches no series (a misspelt team) instead
            of listing it with a zero change.

    Returns:
        ``(adjusted, adjustments)``: the adjusted forecast (same columns, sorted by team, gpu_type,
        time; series created by add/set events have model ``event``) and one row per (event, series)
        in :data:`ADJUSTMENT_COLUMNS`.

    Raises:
        EventsError: with ``strict``, for a scale/wind_down event that matches no series.
    """
    if time_col is None:
        time_col = S.TIMESTAMP if S.TIMESTAMP in forecast_frame.columns else DATE
    for col in (S.TEAM, S.GPU_TYPE, time_col):
        if col not in forecast_frame.columns:
            raise ValueError(f"forecast frame has no column '{col}'")
    cols = value_columns(forecast_frame, quantile_cols)
    out = forecast_frame.copy()
    out[time_col] = pd.to_datetime(out[time_col])
    for col in cols:
        out[col] = out[col].astype(float)
    grid = pd.Index(pd.unique(out[time_col])).sort_values()
    period = period if period is not None else infer_period(grid, time_col)
    hours_per_row = period / pd.Timedelta(hours=1)
    rows: list[dict[str, Any]] = []
    if not events:
        return out, empty_adjustments()

    for ev in events:
        existing = out[[S.TEAM, S.GPU_TYPE]].drop_duplicates()
        if ev.gpu_type is None:
            targets = [tuple(x) for x in existing[existing[S.TEAM] == ev.team].itertuples(index=False)]
        else:
            targets = [(ev.team, ev.gpu_type)]
        have = set(map(tuple, existing.itertuples(index=False)))
        if not targets or (ev.kind in ("scale", "wind_down") and targets[0] not in have):
            if strict:
                field = "team" if ev.gpu_type is None or ev.team not in set(existing[S.TEAM]) else "gpu_type"
                ev.error(f"{ev.kind} matches no forecast series ({ev.team}"
                         f"{', ' + ev.gpu_type if ev.gpu_type else ''})", field,
                         "check the spelling against the forecast's teams and GPU types")
            rows.append(_adjustment_row(ev, ev.team, ev.gpu_type or "", 0.0, "matched no forecast series"))
            continue
        for team, gpu in targets:
            note = ev.note
            if (team, gpu) not in have:
                out = _new_series(out, team, gpu, time_col, grid, cols)
                note = (note + "; " if note else "") + "new series"
            mask = ((out[S.TEAM] == team) & (out[S.GPU_TYPE] == gpu)).to_numpy()
            t = out.loc[mask, time_col].to_numpy(dtype="datetime64[ns]")
            values = out.loc[mask, cols].to_numpy(dtype=float)
            before = values[:, 0].sum()
            if ev.kind == "wind_down":
                values = values * wind_down_factor(t, period, ev.start, ev.end)[:, None]
            elif ev.kind == "ramp_up":
                values = values + ramp_up_gpus(ev, t, period)[:, None]
            else:
                f = active_fraction(t, period, ev.start, ev.end)[:, None]
                if ev.kind == "add":
                    values = values + f * float(ev.gpus)
                elif ev.kind == "set":
                    values = values * (1.0 - f) + f * float(ev.gpus)
                else:  # scale
                    values = values * (1.0 + f * (float(ev.factor) - 1.0))
            values = np.clip(values, 0.0, None)
            out.loc[mask, cols] = values
            rows.append(_adjustment_row(ev, team, gpu, (values[:, 0].sum() - before) * hours_per_row, note))

    out = out.sort_values([S.TEAM, S.GPU_TYPE, time_col], kind="stable").reset_index(drop=True)
    adjustments = pd.DataFrame(rows, columns=list(ADJUSTMENT_COLUMNS))
    adjustments[START] = pd.to_datetime(adjustments[START])
    adjustments[END] = pd.to_datetime(adjustments[END])
    return out, adjustments


WIND_DOWN_FLOOR = 0.1
"""Smallest share of a wind-down's ramp that :func:`remove_events` divides usage by (near the end of a wind-down
the usage is mostly noise around 0, and dividing it by a ramp near 0 would blow that noise up)."""


def remove_events(usage: pd.DataFrame, events: Sequence[Event], value_col: str = S.GPUS,
                  period: pd.Timedelta | None = None) -> pd.DataFrame:
    """Past usage without what the planned ``events`` did to it: the inverse of :func:`apply_events`, for a forecast
    fitted on the usage without them, to which :func:`apply_events` then adds every event (its start and its end,
    whenever they fall) instead of the forecast carrying part of a planned run forward.

    Per row of a (team, gpu_type) series, while the event is active: ``add`` and ``ramp_up`` subtract their GPUs
    (not below 0; a ramp-up's also after its end, where it holds), ``scale`` divides by its factor (a factor of 0
    leaves the usage), ``wind_down`` divides by its ramp (never by less than :data:`WIND_DOWN_FLOOR`; after its end
    the usage is left as it is). A ``set`` leaves the usage: what the series would have done instead is not known
    (the forecast's ``set`` holds it to the event's level anyway).

    Args:
        usage: one row per (team, gpu_type, timestamp) with ``value_col`` (GPUs); not modified.
        events: the planned events.
        value_col: the column of GPUs.
        period: the length of a row (default one hour).

    Returns:
        The same frame with ``value_col`` adjusted.
    """
    period = pd.Timedelta(hours=1) if period is None else period
    out = usage.copy()
    if not events or out.empty:
        return out
    values = out[value_col].to_numpy(dtype=float).copy()
    t = out[S.TIMESTAMP].to_numpy(dtype="datetime64[ns]")
    for ev in events:
        rows = (out[S.TEAM] == ev.team).to_numpy()
        if ev.gpu_type is not None:
            rows &= (out[S.GPU_TYPE] == ev.gpu_type).to_numpy()
        if not rows.any() or ev.kind == "set":
            continue
        if ev.kind == "wind_down":
            ramp = wind_down_factor(t[rows], period, ev.start, ev.end)
            inside = active_fraction(t[rows], period, ev.start, ev.end) > 0
            values[rows] = np.where(inside, values[rows] / np.maximum(ramp, WIND_DOWN_FLOOR), values[rows])
            continue
        if ev.kind == "ramp_up":
            values[rows] = np.maximum(values[rows] - ramp_up_gpus(ev, t[rows], period), 0.0)
            continue
        f = active_fraction(t[rows], period, ev.start, ev.end)
        if ev.kind == "add":
            values[rows] = np.maximum(values[rows] - f * float(ev.gpus), 0.0)
        elif float(ev.factor) > 0:   # scale
            values[rows] = values[rows] / (1.0 + f * (float(ev.factor) - 1.0))
    out[value_col] = values
    return out


def in_history(events: Sequence[Event], usage: pd.DataFrame) -> tuple[Event, ...]:
    """The events that start before the end of the usage (its last hour + 1 h): the ones that already moved it.
    An event that starts later changes only the forecast."""
    if not events or usage.empty:
        return ()
    end = pd.Timestamp(usage[S.TIMESTAMP].max()) + pd.Timedelta(hours=1)
    return tuple(ev for ev in events if ev.start < end)


def without_events(usage: pd.DataFrame, events: Sequence[Event]) -> pd.DataFrame:
    """The usage a forecast is fitted on when the planned ``events`` are applied to that forecast afterwards.

    :func:`apply_events` adds every event whole to a forecast's rows. A forecast fitted on usage that already
    carries an event (a run in its second week, a wind-down half done) would count it twice: once as the level
    the models learnt, once as the event. So the usage is summed per (team, gpu_type, hour) and what the events
    that start before its end (:func:`in_history`) did is taken out (:func:`remove_events`). When no event
    starts before the end of the usage, the usage is returned as it is (the same frame: nothing to take out).

    Args:
        usage: canonical usage (``timestamp, team, gpu_type, gpus``, any other columns); not modified.
        events: the planned events that will be applied to the forecast.

    Returns:
        ``usage`` itself, or one row per (team, gpu_type, timestamp) with ``gpus`` without the events (the
        frame's ``attrs`` kept).
    """
    past = in_history(events, usage)
    if not past:
        return usage
    hourly = usage.groupby([S.TEAM, S.GPU_TYPE, S.TIMESTAMP], as_index=False, observed=True)[S.GPUS].sum()
    out = remove_events(hourly, past)
    out.attrs = dict(usage.attrs)
    return out


NOT_SEEN_SHARE = 0.5
"""An ``add`` or ``ramp_up`` event in the usage is reported as not seen in it when the series used fewer GPUs than the
event adds in more than this share of the event's hours before the end of the usage."""


def not_seen(events: Sequence[Event], usage: pd.DataFrame) -> tuple[str, ...]:
    """Warnings for the ``add`` and ``ramp_up`` events that started before the end of the usage but that the usage
    does not show: their series used fewer GPUs than the event adds in more than :data:`NOT_SEEN_SHARE` of the
    event's hours in it (a run in progress is part of its series' usage, so the usage is at least the run).
    :func:`without_events` takes every such event out of the usage (down to 0 GPUs), so a run dated before it began
    would lower the forecast under it; one line each, naming the event and the fix."""
    past = [ev for ev in in_history(events, usage) if ev.kind in ("add", "ramp_up") and ev.gpus]
    if not past:
        return ()
    first = pd.Timestamp(usage[S.TIMESTAMP].min())
    end = pd.Timestamp(usage[S.TIMESTAMP].max()) + pd.Timedelta(hours=1)
    out = []
    for ev in past:
        rows = usage[(usage[S.TEAM] == ev.team) & (usage[S.GPU_TYPE] == ev.gpu_type) & (usage[S.TIMESTAMP] >= ev.start)]
        stop = min(end, ev.end) if ev.end is not None else end
        hours = pd.date_range(max(ev.start.floor("h"), first), stop, freq="h", inclusive="left")
        if not len(hours):
            continue
        used = rows.groupby(S.TIMESTAMP)[S.GPUS].sum().reindex(hours, fill_value=0.0).to_numpy(dtype=float)
        t = hours.to_numpy(dtype="datetime64[ns]")
        event = (ramp_up_gpus(ev, t, pd.Timedelta(hours=1)) if ev.kind == "ramp_up"
                 else active_fraction(t, pd.Timedelta(hours=1), ev.start, ev.end) * float(ev.gpus))
        judged = event > 0
        short = float(np.mean(used[judged] < event[judged] - 1e-9)) if judged.any() else 0.0
        if short > NOT_SEEN_SHARE:
            out.append(f"warning: {ev.where}: {ev.team} / {ev.gpu_type} used fewer GPUs than the event's "
                       f"{float(ev.gpus):g} in {short:.0%} of its {int(judged.sum())} hours before the end of the "
                       f"data, so it was probably not running yet; it is taken out of the usage the forecast is "
                       f"fitted on all the same (fix: start it at the end of the data, {_fmt(end)}, or later)")
    return tuple(out)


def _adjustment_row(ev: Event, team: str, gpu: str, delta: float, note: str) -> dict[str, Any]:
    return {S.TEAM: team, S.GPU_TYPE: gpu, START: ev.start, END: ev.end, KIND: ev.kind, VALUE: ev.value,
            DELTA_GPU_HOURS: float(delta), SOURCE: ev.where, NOTE: note}


def _new_series(out: pd.DataFrame, team: str, gpu: str, time_col: str, grid: pd.Index,
                cols: list[str]) -> pd.DataFrame:
    """Append an all-zero series on the frame's time grid (model ``event``)."""
    new = pd.DataFrame({time_col: grid})
    new[S.TEAM] = team
    new[S.GPU_TYPE] = gpu
    for col in cols:
        new[col] = 0.0
    if S.MODEL in out.columns:
        new[S.MODEL] = EVENT_MODEL
    new = new.reindex(columns=out.columns)
    if out.empty:
        return new
    return pd.concat([out, new], ignore_index=True)
