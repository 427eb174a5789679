"""``gpuplan app`` stopped by its PID frees the port: the signal reaches the Streamlit child (issue 15 item 13).

A real ``gpuplan app --port <free port>`` subprocess (its own session, so the test signals only the parent PID,
never the group) is started, waited for until its health check answers, then sent SIGTERM (or SIGINT) on the
parent PID alone. The port must refuse connections within a few seconds, the parent must exit, and no process
it started may be left.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app.launcher import exit_status

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_exit_status_of_a_signalled_child_is_128_plus_the_signal() -> None:
    assert exit_status(-signal.SIGTERM) == 143
    assert exit_status(0) == 0 and exit_status(3) == 3


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to list child processes")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_the_parent_pid_stops_streamlit_and_frees_the_port(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    log = (tmp_path / "app.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "app", "--port", str(port)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "GPUPLAN_STORE": str(tmp_path / "s.duckdb"),
                                 "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    kids: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "app.log").read_text()[-2000:]
            time.sleep(0.3)
        kids = children(proc.pid)
        assert kids, "gpuplan app serves through a child process"
        os.kill(proc.pid, sig)  # the parent PID only, as `kill PID` does
        code = proc.wait(timeout=15)
        deadline = time.monotonic() + 5
        while port_open(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not port_open(port), "the port is still held after the parent exited"
        left = [k for k in kids if alive(k)]
        assert left == [], f"child process(es) {left} left running"
        assert code in (0, 128 + sig), code  # the child's status: Streamlit exits 0 on a clean stop
    finally:
        for k in kids:
            if alive(k):
                os.kill(k, signal.SIGKILL)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
