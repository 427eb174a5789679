"""A throw-away PostgreSQL server for tests: initdb into a new temporary folder, ``pg_ctl start`` on a free port
listening only on a unix socket inside that folder (no TCP, nothing outside the folder), stopped and removed at
the end. The binaries come from ``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package, which
``make test`` installs) or the PATH; without them the tests that need a server are skipped, saying so.

initdb and postgres refuse to run as root: when the tests run as root, the folder is handed to the unprivileged
``postgres`` user (created by the Debian package) and the server commands run as that user through ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"
"""The unprivileged user the server runs as when the tests run as root."""
SUPERUSER = "gpuplan_test"
"""The database superuser initdb creates (trust authentication on the private socket only)."""


def bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: the newest ``/usr/lib/postgresql/<version>/bin``, else the
    PATH's; None when PostgreSQL's server binaries are not installed."""
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.glob("*/bin") if (p / "initdb").exists() and (p / "pg_ctl").exists()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0) if root.exists() else []
    if versions:
        return versions[-1]
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and (Path(found).parent / "initdb").exists() else None


def missing_reason() -> str | None:
    """Why a server cannot be started here (None when it can)."""
    if bin_dir() is None:
        return ("PostgreSQL server binaries (initdb, pg_ctl) are not installed (fix: `make test` installs the "
                "postgresql package with apt, or run apt-get install postgresql)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root and there is no '{SERVER_USER}' user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is not installed"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class PgServer:
    """A running test server: connect through ``url(database)``."""

    socket_dir: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for ``database`` on this server (unix socket, the test superuser, no password)."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}&port={self.port}"

    def new_database(self) -> str:
        """Create an empty database with a fresh name; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def running_server(password: str | None = None) -> Iterator[PgServer]:
    """Start a server in a new temporary folder; stop it and remove the folder when the block ends.

    Args:
        password: the superuser's password, required at login (scram-sha-256); None: trust (no password).

    Raises:
        RuntimeError: initdb or pg_ctl failed (their output is in the message).
    """
    bins = bin_dir()
    if bins is None:
        raise RuntimeError(missing_reason() or "no PostgreSQL binaries")
    base = Path(tempfile.mkdtemp(prefix="gpuplan-pg-"))  # under /tmp: the server user can reach it
    data, sock, log = base / "data", base / "sock", base / "server.log"
    sock.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        for path in (base, sock):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = _free_port()

    def run(*args: str) -> None:
        done = subprocess.run(_as_server_user([str(bins / args[0]), *args[1:]]), capture_output=True, text=True,
                              timeout=120, cwd=base)
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]} "
                               f"{tail}")

    started = False
    try:
        auth = ["--auth=trust"]
        if password is not None:
            pwfile = base / "pw"
            pwfile.write_text(password + "\n")
            if os.geteuid() == 0:
                os.chown(pwfile, user.pw_uid, user.pw_gid)
            auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        run("initdb", "-D", str(data), "-U", SUPERUSER, *auth, "-E", "UTF8", "--no-sync", "--no-locale")
        options = f"-p {port} -k {sock} -c listen_addresses='' -c fsync=off -c max_connections=60"
        run("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start")
        started = True
        yield PgServer(socket_dir=sock, port=port)
    finally:
        if started:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
