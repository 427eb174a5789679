"""Atomic file output shared by every stage: write to a temporary file beside the target, then rename,
so a failed or interrupted run never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pandas as pd


def write_atomic(path: str | Path, write: Callable[[IO[str]], Any]) -> Path:
    """Call ``write(fh)`` on a temporary text file in the target folder, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            write(fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_csv_atomic(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a frame as CSV (no index) atomically."""
    return write_atomic(path, lambda fh: df.to_csv(fh, index=False))


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Write an object as indented JSON atomically."""
    return write_atomic(path, lambda fh: (json.dump(obj, fh, indent=2), fh.write("\n")))
