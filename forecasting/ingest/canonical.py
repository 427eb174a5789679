"""Canonical usage files (CSV or Parquet) -> validated usage frame.

Units: ``gpus`` is the average number of GPUs in use in the hour starting at ``timestamp``, i.e. the
GPU-hours of that hour (see :mod:`forecasting.schema`). The file already has the canonical columns
``timestamp, team, gpu_type, gpus`` (optionally ``project, instance_type, purchase_option,
utilization, cost_usd``); this adapter only reads it and runs :func:`forecasting.schema.validate_usage`,
whose errors name the file, the CSV line (header = line 1) and the column.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecasting.ingest.readers import IngestReport, usage_report
from forecasting.schema import (
    GPU_TYPE,
    INSTANCE_TYPE,
    PROJECT,
    PURCHASE_OPTION,
    TEAM,
    UsageError,
    validate_usage,
)

TEXT_COLUMNS = {TEAM: str, GPU_TYPE: str, PROJECT: str, INSTANCE_TYPE: str, PURCHASE_OPTION: str}


def read_canonical(files: list[Path], kind: str, source: str) -> pd.DataFrame:
    """Read canonical usage rows without interpreting them (text columns stay text)."""
    frames = []
    for path in files:
        try:
            if kind == "csv":
                frames.append(pd.read_csv(path, dtype=TEXT_COLUMNS, keep_default_na=False, na_values=[""],
                                          encoding="utf-8-sig"))
            else:
                frames.append(pd.read_parquet(path))
        except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
            text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UsageError(str(path), f"cannot read {kind.upper()} file: {text}",
                             fix=f"check that the file is a complete {kind.upper()} file") from None
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def load_canonical(files: list[Path], kind: str, source: str, *,
                   known_gpu_types: set[str] | None = None) -> tuple[pd.DataFrame, IngestReport]:
    """Read and validate a canonical usage file.

    Args:
        files: the file (or the parts of one data set, read in order).
        kind: ``csv`` or ``parquet``.
        source: file name for messages.
        known_gpu_types: GPU models the catalog offers; ``None`` skips that check.

    Returns:
        (usage frame, report); every row of the file counts as a GPU row.

    Raises:
        UsageError: unreadable file or a validation error naming file, row and column.
    """
    raw = read_canonical(files, kind, source)
    usage, validation = validate_usage(raw, source, known_gpu_types=known_gpu_types)
    return usage, usage_report(source, "canonical", len(raw), len(raw), usage, validation)
