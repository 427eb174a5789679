"""The PostgreSQL backend of the scenario store, for a deployment shared by many users (psycopg 3).

Selected by ``GPUPLAN_STORE=postgresql://user@host:5432/db`` (or ``postgres://``; any libpq URL, e.g.
``postgresql:///gpuplan?host=/run/postgresql`` for a unix socket). The same tables, schema versions and public API
as the DuckDB file (:class:`app.store.Store`); the differences are how sessions meet:

* every operation opens its own connection and runs in one ``SERIALIZABLE`` transaction; a write that conflicts
  with another session's (serialization failure, deadlock, the same new name inserted twice) is rolled back and
  run again after a short random back-off, so concurrent saves never lose data and a taken name is reported as
  taken (:class:`app.store.StoreError`), exactly as with the DuckDB file;
* the schema is created or upgraded under a transaction-scoped advisory lock, so sessions opening a new database at
  once create it once; tables are looked up in the connection's current schema (``search_path``);
* credentials come only from the URL or libpq's standard places (``PGPASSWORD``, ``~/.pgpass``, ``PGUSER``...);
  a message shows the URL with its password replaced by ``***``, never the password. Connecting gives up after
  ``connect_timeout`` seconds (10 unless the URL sets it).

Units: times in UTC; money in USD as in :mod:`app.store`. This module never imports streamlit.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote

from app.store import STORE_ENV, WRITE_ATTEMPTS, Store, StoreError, Tx

T = TypeVar("T")
CONNECT_TIMEOUT_S = 10
"""Seconds a connection attempt may take before the store gives up (unless the URL sets ``connect_timeout``)."""
_MIGRATION_LOCK = 0x6770_7570_6C61_6E  # "gpuplan": the advisory lock key that serialises schema creation
_URL_PASSWORD = re.compile(r"(?P<head>^[a-z]+://[^/@:?#]*:)(?P<pw>[^@/?#]*)(?=@)", re.IGNORECASE)
_PARAM_PASSWORD = re.compile(r"(?P<head>password=)(?P<pw>[^&\s]*)", re.IGNORECASE)


def redact(url: str) -> str:
    """``url`` with any password (``user:secret@`` or ``?password=secret``) replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + "***", str(url))
    return _PARAM_PASSWORD.sub(lambda m: m["head"] + "***", text)


def _passwords(url: str) -> list[str]:
    found = [m["pw"] for m in (*_URL_PASSWORD.finditer(url), *_PARAM_PASSWORD.finditer(url)) if m["pw"]]
    return [p for pw in found for p in {pw, unquote(pw)}]


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise StoreError(f"{STORE_ENV} names a PostgreSQL server but psycopg is not installed (fix: pip install "
                         f"'psycopg[binary]', or set {STORE_ENV} to a .duckdb file path)") from None
    return psycopg


class _PgTx(Tx):
    def __init__(self, con: Any) -> None:
        self.con = con

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")  # the shared SQL holds no literal '?' or '%'

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(self._sql(sql), list(params)).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(self._sql(sql), list(params))


class PostgresStore(Store):
    """The store in a PostgreSQL database (schema created or upgraded on open).

    Args:
        url: a ``postgresql://`` or ``postgres://`` URL (libpq syntax); the password, if any, may be in it or in
            ``PGPASSWORD`` / ``~/.pgpass``.

    Raises:
        StoreError: the URL is malformed, the server cannot be reached or refuses the login, or the database holds
            another application's tables or a newer schema (one line naming the setting and the fix).
    """

    kind = "postgresql"
    _what_db = "PostgreSQL schema"
    _fresh_hint = ("a new database (e.g. postgresql://user@host/gpuplan), or give gpuplan its own schema with "
                   "?options=-csearch_path%3Dgpuplan")

    def __init__(self, url: str) -> None:
        self._url = str(url)
        self._secrets = _passwords(self._url)
        self._pg = _psycopg()
        try:
            from psycopg.conninfo import conninfo_to_dict

            params = conninfo_to_dict(self._url)
        except self._pg.Error as exc:
            raise self._error("is not a valid PostgreSQL URL", exc,
                              "write it as postgresql://user@host:5432/database") from None
        self._extra = {} if "connect_timeout" in params else {"connect_timeout": CONNECT_TIMEOUT_S}
        self._migrate()

    @property
    def location(self) -> str:
        return redact(self._url)

    def _clean(self, text: str) -> str:
        line = " ".join(str(text).split())
        for secret in self._secrets:
            line = line.replace(secret, "***")
        return redact(line)

    def _error(self, what: str, exc: BaseException, fix: str) -> StoreError:
        return StoreError(f"{STORE_ENV}={self.location} {what} ({exc.__class__.__name__}: {self._clean(str(exc))}) "
                          f"(fix: {fix})")

    def _connect(self, serializable: bool = True) -> Any:
        pg = self._pg
        level = pg.IsolationLevel.SERIALIZABLE if serializable else pg.IsolationLevel.READ_COMMITTED
        try:
            con = pg.connect(self._url, **self._extra)
            con.isolation_level = level
            return con
        except pg.OperationalError as exc:
            raise self._error("cannot be reached or refused the login", exc, f"start the server or correct the "
                              f"host, port, database and user in {STORE_ENV}; give the password in PGPASSWORD or "
                              "~/.pgpass") from None
        except pg.Error as exc:
            raise self._error("is not a valid PostgreSQL URL", exc,
                              "write it as postgresql://user@host:5432/database") from None

    def _failed(self, exc: BaseException) -> StoreError:
        return self._error("failed", exc, f"check that the user in {STORE_ENV} may create and write tables in that "
                                          "database, then try again")

    def _migrate(self) -> None:
        def work(tx: Tx) -> None:
            tx.run("SELECT pg_advisory_xact_lock(?)", [_MIGRATION_LOCK])
            tables = [r[0] for r in tx.rows("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = current_schema() ORDER BY table_name")]
            self._migrate_in(tx, tables)

        # READ COMMITTED: once the lock is granted, the next statement sees the schema another session committed.
        self._run(work, "the store schema", serializable=False)

    @contextlib.contextmanager
    def _read(self) -> Iterator[Tx]:
        pg = self._pg
        con = self._connect()
        try:
            with con:
                yield _PgTx(con)
        except StoreError:
            raise
        except pg.Error as exc:
            raise self._failed(exc) from None
        finally:
            con.close()

    def _write(self, work: Callable[[Tx], T], what: str) -> T:
        return self._run(work, what, serializable=True)

    def _run(self, work: Callable[[Tx], T], what: str, *, serializable: bool) -> T:
        pg = self._pg
        retry = (pg.errors.SerializationFailure, pg.errors.DeadlockDetected, pg.errors.UniqueViolation)
        pause = 0.01
        for attempt in range(WRITE_ATTEMPTS):
            con = self._connect(serializable)
            try:
                with con:  # commits when the block ends, rolls back when it raises
                    result = work(_PgTx(con))
                return result
            except retry as exc:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise StoreError(f"{self.location}: {what} is being saved by other sessions and stayed in "
                                     f"conflict {WRITE_ATTEMPTS} times ({exc.__class__.__name__}) (fix: save it "
                                     "again)") from None
            except StoreError:
                raise
            except pg.Error as exc:
                raise self._failed(exc) from None
            finally:
                con.close()
            time.sleep(random.uniform(0.5, 1.5) * pause)
            pause = min(pause * 1.6, 0.25)
        raise AssertionError("unreachable")  # pragma: no cover
