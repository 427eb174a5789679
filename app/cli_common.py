"""What every ``gpuplan`` command module shares: the Typer app, the consoles, the one-line errors, the guard
around each command, the option types, and the loaders and forecast helpers several commands call.

Every user mistake (bad file, bad option, unknown option, an operating-system error such as a read-only or
missing folder) ends with one line on stderr starting with ``error:`` and exit status 2, never a traceback.
Every command runs through :func:`guarded_command`: its input files are protected (an output that is an input,
or lies inside an input folder, is refused before any work) and any ``OSError`` becomes one line naming the path.
Files are written atomically (temporary file, then rename) with the umask's permissions.

Command modules (:mod:`app.cli` and the ``app/cli_*.py`` files) import this module and register their commands on
:data:`app`; only :mod:`app.cli` imports the command modules (so the ``gpuplan`` entry point has them all), and no
command module imports :mod:`app.cli`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from typer.core import TyperGroup

try:  # typer vendors its own click (typer._click); older typer uses the click package
    from typer._click import exceptions as click_errors
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_errors  # type: ignore[no-redef]
    from click import get_current_context  # type: ignore[no-redef]

from optimizer.billing import BillingError
from optimizer.catalog import Catalog, CatalogError
from optimizer.inputs import PlanningError
from usage import schema as S
from usage.io import OutputError, os_error_text, prepare_output, protecting

# Wide, unwrapped output when piped (cron jobs, CI logs): one error stays one line. No console markup: team,
# project and file names from user data are printed as they are ("[bold]x" is not styled, "[x]" not dropped).
out = Console(width=None if sys.stdout.isatty() else 140, soft_wrap=not sys.stdout.isatty(), markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)


def _usage_error(exc: click_errors.UsageError) -> None:
    """An option-parser error (unknown or missing option, bad value) as the documented one ``error:`` line."""
    ctx = exc.ctx or get_current_context(silent=True)
    command = ctx.command_path if ctx is not None else "gpuplan"
    message = " ".join(exc.format_message().split())
    err.print(f"error: {command}: {message} (fix: see {command} --help)", markup=False, highlight=False,
              soft_wrap=True)
    raise typer.Exit(2)


class OneLineErrorGroup(TyperGroup):
    """The ``gpuplan`` command group: click's usage errors become one ``error:`` line (exit 2) instead of a
    usage box; ``gpuplan`` or ``gpuplan catalog`` without a command still prints the help."""

    def make_context(self, info_name, args, parent=None, **extra):  # noqa: D102
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click_errors.NoArgsIsHelpError:
            raise
        except click_errors.UsageError as exc:
            _usage_error(exc)

    def invoke(self, ctx):  # noqa: D102
        try:
            return super().invoke(ctx)
        except click_errors.NoArgsIsHelpError:
            raise
        except click_errors.UsageError as exc:
            _usage_error(exc)


app = typer.Typer(cls=OneLineErrorGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="GPU Cost Planner: forecast GPU demand per team and plan what to buy "
                       "(reserved, spot, on-demand).")
catalog_app = typer.Typer(cls=OneLineErrorGroup, no_args_is_help=True, help="Inspect or refresh the price catalog.")
app.add_typer(catalog_app, name="catalog")
USER_ERRORS = (S.UsageError, CatalogError, PlanningError, BillingError, ValueError, OSError)


class UserFacingError(Exception):
    """Raised inside commands for a user mistake; printed as one line."""


@contextmanager
def step(message: str) -> Iterator[Callable[[str], None]]:
    """Show a spinner with the current step on long operations (stderr, so stdout stays clean)."""
    with err.status(message) as status:
        yield lambda msg: status.update(f"{message}: {msg}")


def error_line(exc: BaseException) -> str:
    """The one ``error:`` line of a user mistake (an ``OSError`` names its path, what failed and the fix)."""
    text = os_error_text(exc) if isinstance(exc, OSError) else " ".join(str(exc).split())
    return f"error: {text}"


def fail(exc: BaseException) -> None:
    err.print(error_line(exc), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def is_output_param(name: str) -> bool:
    """Whether a command parameter names a file or folder the command writes (every other path is an input)."""
    return name in ("out_path", "out_dir", "chart") or name.endswith("_out")


def guarded_command(fn: Callable) -> Callable:
    """Wrap a command: protect its input paths, check its output paths up front, turn ``OSError`` into one line.

    Inputs are the command's path parameters that are not outputs (:func:`is_output_param`); an output that is
    an input, or lies inside an input folder, or an output file path that is a folder, is refused with one
    ``error:`` line before any work. Every writer refuses the same (:func:`usage.io.check_output`).
    """
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = signature.bind_partial(*args, **kwargs)
        ctx = get_current_context(silent=True)
        flags = {p.name: (p.opts[0] if getattr(p, "opts", None) else str(p.name).upper())
                 for p in (ctx.command.params if ctx is not None else ())}
        paths = {k: v for k, v in bound.arguments.items() if isinstance(v, Path)}
        inputs = [v for k, v in paths.items() if not is_output_param(k)]
        tables = contextlib.nullcontext()
        if "output_format" in kwargs:  # --output-format: checked up front; csv/json keep stdout for the data
            from app.tables import check_output_format, data_only_stdout

            try:
                kwargs["output_format"] = check_output_format(kwargs["output_format"])
            except ValueError as exc:
                fail(exc)
            tables = data_only_stdout(out, kwargs["output_format"])
        try:
            with tables, protecting(inputs):
                for name, path in paths.items():
                    if is_output_param(name) and name != "out_dir":
                        prepare_output(path, flags.get(name, name))
                    elif name == "out_dir":
                        from usage.io import check_output

                        check_output(path, flags.get(name, name))
                        if path.exists() and not path.is_dir():
                            raise OutputError(f"{flags.get(name, name)} {path} is a file, not a folder (fix: give "
                                              "a folder path)")
                return fn(*args, **kwargs)
        except (OutputError, OSError) as exc:
            fail(exc)

    return wrapper


def guard_all_commands() -> None:
    """Run every registered command (including ``catalog`` ones) through :func:`guarded_command`, once."""
    for typer_app in (app, catalog_app):
        for info in typer_app.registered_commands:
            if info.callback is not None and not getattr(info.callback, "_gpuplan_guarded", False):
                info.callback = guarded_command(info.callback)
                info.callback._gpuplan_guarded = True  # type: ignore[attr-defined]


def load_usage_file(path: Path, fmt: str, tag_key: str, catalog: Catalog) -> pd.DataFrame:
    """Read canonical, FOCUS or CUR usage through the ingestion adapters and report what happened."""
    from usage.ingest import load_usage

    if not path.exists():
        raise S.UsageError(str(path), "file not found", fix="check the path")
    usage, report = load_usage(path, fmt, tag_key=tag_key, instance_gpus=catalog.instance_gpus(),
                               known_gpu_types=catalog.gpu_models())
    for line in report.lines():
        err.print(f"  {line}", markup=False, highlight=False)
    return usage


def parse_start(value: str, flag: str = "--start", example: str = "2025-12-01T00:00Z") -> pd.Timestamp:
    """An hour start given as ISO 8601 (a time zone is converted to UTC, then dropped), or one ``UserFacingError``
    line naming ``flag`` with ``example`` as the fix."""
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise UserFacingError(f"{flag} {value!r} is not an ISO 8601 time (fix: e.g. {example})") from None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if ts != ts.floor("h"):
        raise UserFacingError(f"{flag} {value!r} is not an hour start (fix: e.g. {example})")
    return ts


def split_list(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


def forecast_config(horizon_hours: int, history_hours: int | None, models: str = "default",
                    engine: str = "local"):
    from forecasting.engine import ForecastConfig, default_n_jobs
    from forecasting.models import MODEL_SETS

    if models not in MODEL_SETS:
        raise UserFacingError(f"unknown model set '{models}' (fix: choose one of {', '.join(MODEL_SETS)})")
    return ForecastConfig(horizon_hours=horizon_hours, history_hours=history_hours, models=MODEL_SETS[models],
                          n_jobs=default_n_jobs(MODEL_SETS[models]), engine=engine)


def run_forecast(usage: pd.DataFrame, horizon_hours: int, history_hours: int | None,
                 progress: Callable[[str], None] | None = None, *, models: str = "default", engine: str = "local"):
    from forecasting.engine import forecast

    return forecast(usage, forecast_config(horizon_hours, history_hours, models, engine), progress=progress)


# Options shared by several commands (one definition each).
UsageOpt = Annotated[Path, typer.Option(help="usage file: canonical CSV/Parquet, FOCUS, CUR or GCP billing export")]
FormatOpt = Annotated[str, typer.Option("--format", help="auto|canonical|focus|cur|gcp")]
TagKeyOpt = Annotated[str, typer.Option(help="cost-allocation tag holding the team (FOCUS/CUR)")]
HistoryOpt = Annotated[int, typer.Option(help="fit on at most this many recent hours (0 = all)")]
ModelsOpt = Annotated[str, typer.Option(help="candidate models: default, full (adds AutoETS, AutoTheta) or baselines")]
EngineOpt = Annotated[str, typer.Option(help="where statsforecast runs: local, or dask / ray through Fugue")]
EventsOpt = Annotated[Path | None, typer.Option(
    help="planned events (YAML or CSV): new projects and runs (add), launches (ramp_up), wind-downs")]


def events_file(events: Path | None, cat: Catalog) -> tuple:
    """The planned events of an ``--events`` file (none without one)."""
    if events is None:
        return ()
    from forecasting.events import load_events

    return load_events(events, known_gpu_types=cat.gpu_models())


def say_fitted_without(usage: pd.DataFrame, events: Sequence) -> tuple:
    """Say on stderr which planned events a forecast is fitted without (those that started before the end of the
    usage) and warn of those the usage does not show (:func:`forecasting.events.not_seen`); returns them."""
    from forecasting.events import in_history, not_seen

    past = in_history(events, usage)
    for line in not_seen(past, usage):
        err.print(f"  {line}", markup=False, highlight=False)
    if past:
        err.print(f"  fitting on the usage without {len(past)} planned event{'s' if len(past) > 1 else ''} that "
                  "started before its end (each is counted once, as the event)", markup=False, highlight=False)
    return past


def billing_usage(path: Path, tag_key: str, cat) -> pd.DataFrame | None:
    """The GPU usage of a billing export (to name teams that could move onto a commitment), or None when the
    export has no GPU usage rows (its warnings and notes printed either way)."""
    from operate.commitments import export_usage

    usage, notes = export_usage(path, tag_key, cat.instance_gpus(), cat.gpu_models())
    for note in notes:
        say_note(note)
    return usage


def say_note(note: str) -> None:
    """A warning or note of an ingest or export read, on stderr (``warning: ...`` as it is, others as ``note:``)."""
    err.print(f"  {note}" if note.startswith("warning:") else f"  note: {note}", markup=False, highlight=False)


def fit_usage(usage: pd.DataFrame, events: Sequence) -> pd.DataFrame:
    """The usage a forecast that gets the planned ``events`` applied is fitted on: without what those events already
    did to it (:func:`forecasting.events.without_events`; a run in progress is not counted twice), said on stderr."""
    from forecasting.events import without_events

    return without_events(usage, say_fitted_without(usage, events))


def apply_planned_events(fc: pd.DataFrame, events: Sequence) -> pd.DataFrame:
    """Apply planned events (:func:`events_file`) to a forecast and print each adjustment (shown as such, never
    hidden). A forecast from usage should be fitted on :func:`fit_usage`."""
    if not events:
        return fc
    from forecasting.events import apply_events

    adjusted, adjustments = apply_events(fc, events)
    for _, a in adjustments.iterrows():
        err.print(f"  event {a['kind']} {a['team']} / {a['gpu_type']}: {a['delta_gpu_hours']:+,.0f} GPU-hours"
                  + (f" ({a['note']})" if a.get("note") else ""), markup=False, highlight=False)
    return adjusted
CatalogOpt = Annotated[Path | None, typer.Option(help="price catalog CSV (default: shipped snapshot)")]
