"""Test isolation shared by every module.

Streamlit's ``AppTest`` runs a page script in this process as module ``__main__`` and does not put pytest's own
``__main__`` back. A later test that starts processes with the ``spawn`` method (``dask.distributed.LocalCluster``
in tests/test_engine_dask.py) then makes each child re-run that page script as its main module, which fails
(``NameError: name '__args' is not defined`` for an ``AppTest.from_function`` script), and the cluster never starts.
Every test therefore ends with the ``__main__`` it started with.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _keep_main_module() -> Iterator[None]:
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium driven by Playwright (``tests.chromium.CHROMIUM``), one per test module."""
    from playwright.sync_api import sync_playwright

    from tests.chromium import CHROMIUM

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()
