"""Limits read from the environment, parsed in one place for the ``gpuplan app`` launcher (Streamlit's
``server.maxUploadSize``) and the planner's own checks, so both always give the same answer.

Units: megabytes (MiB, 1024 x 1024 bytes). This module never imports streamlit.
"""

from __future__ import annotations

import os

MAX_UPLOAD_ENV = "GPUPLAN_MAX_UPLOAD_MB"
DEFAULT_MAX_UPLOAD_MB = 200


def max_upload_mb(environ: dict[str, str] | None = None) -> int:
    """The upload limit in megabytes: ``$GPUPLAN_MAX_UPLOAD_MB`` (a whole number >= 1), 200 when unset or empty.

    Raises:
        ValueError: the variable is set to anything else (``abc``, ``0``, ``-5``, ``1.5``): one line with the fix.
    """
    raw = (os.environ if environ is None else environ).get(MAX_UPLOAD_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_UPLOAD_MB
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{MAX_UPLOAD_ENV}={raw!r} is not a whole number of megabytes >= 1 (fix: e.g. "
                         f"{MAX_UPLOAD_ENV}=500, or unset it for the default {DEFAULT_MAX_UPLOAD_MB})")
    return int(raw)
