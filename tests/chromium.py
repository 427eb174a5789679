"""What the browser tests share: where Debian's Chromium is and a free localhost port for the app under test.

The ``browser`` fixture itself is in tests/conftest.py. Chromium comes from the Debian package ``chromium`` (``make
test`` installs it); ``GPUPLAN_CHROMIUM`` names another binary.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("GPUPLAN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason=f"no Chromium at {CHROMIUM}: install the Debian packages 'chromium "
                                           "chromium-driver' (make test does) or set GPUPLAN_CHROMIUM")
"""Skip marker of every browser test module."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
