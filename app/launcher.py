"""Run a child process in the foreground and forward stop signals to it (``gpuplan app`` runs Streamlit so).

Stopping ``gpuplan app`` by its PID (``kill PID``: SIGTERM; Ctrl-C or ``kill -INT``: SIGINT; a closed terminal:
SIGHUP) must stop the Streamlit server it started, or the server keeps the port. The parent installs handlers that
send the same signal to the child, waits for the child to exit and exits with the child's status (128 + N when
the child was ended by signal N, as a shell reports it). No units: process ids, signal numbers, exit codes.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence

FORWARDED = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))


def exit_status(returncode: int) -> int:
    """A child's ``returncode`` as a process exit status: a negative code (ended by signal N) becomes 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def run_forwarding_signals(cmd: Sequence[str]) -> int:
    """Run ``cmd``, forward SIGTERM/SIGINT/SIGHUP received meanwhile to it, and return its exit status.

    Args:
        cmd: the program and its arguments.

    Returns:
        The child's exit status (:func:`exit_status`), once it has exited; the child is always waited for.
    """
    proc = subprocess.Popen(list(cmd))

    def forward(signum: int, _frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        while True:
            try:
                return exit_status(proc.wait())
            except KeyboardInterrupt:  # pragma: no cover - only if a handler was replaced meanwhile
                forward(signal.SIGINT, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:  # pragma: no cover - only when wait() itself failed
            proc.kill()
            proc.wait()
