"""What differs between the backends: opening an engine, and turning its errors into ours.

SQLite (the embedded default) runs in WAL mode with foreign keys on and a 30 s busy timeout; we
issue BEGIN ourselves so a transaction spans everything run in it. PostgreSQL (psycopg 3) gets a
`lock_timeout` (as long as SQLite's busy timeout) and a `statement_timeout`, so a statement behind
a held row lock or a runaway query fails with a clear error instead of waiting forever.

Database errors become `StoreError` (or a subclass) here, on one line, with the URL (its password
hidden) in front: a lock timeout or "database is locked" is `StoreLockedError`, a unique-key
conflict, serialization failure or deadlock is `StoreConflictError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import URL, make_url

from ..errors import StoreConflictError, StoreError, StoreLockedError

#: How long a statement waits for a lock another process holds (SQLite: its busy timeout).
LOCK_TIMEOUT_S = 30
#: The longest a single statement may run on PostgreSQL (a ranking streams papers in batches, so
#: no one statement comes near it).
STATEMENT_TIMEOUT_S = 600

# SQLSTATE codes (PostgreSQL appendix A) of the errors that have a message of their own.
_LOCK_NOT_AVAILABLE = "55P03"
_QUERY_CANCELED = "57014"
_CONFLICTS = {"23505": "another process wrote the same row at the same time",
              "40001": "a concurrent transaction conflicted with this one (serialization "
                       "failure); nothing of it was written, try again",
              "40P01": "a deadlock with another process; nothing of it was written, try again"}


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"{url}: not a database URL ({exc})") from None


def shown(url: URL) -> str:
    """The URL as messages show it: the password hidden."""
    return url.render_as_string(hide_password=True)


def create_engine(url: URL) -> Engine:
    kwargs: dict[str, Any] = {}
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{shown(url)}: cannot create its folder: {exc}") from None
        kwargs["connect_args"] = {"timeout": LOCK_TIMEOUT_S, "isolation_level": None}
    elif backend == "postgresql" and "options" not in url.query:
        # Set at connection start (libpq options), so no rollback can undo them; a URL that
        # says ?options=... chooses its own.
        kwargs["connect_args"] = {"options": f"-c lock_timeout={LOCK_TIMEOUT_S}s "
                                             f"-c statement_timeout={STATEMENT_TIMEOUT_S}s"}
    if backend == "postgresql":
        # A connection the server dropped (a restart, pg_terminate_backend, a proxy's idle
        # timeout) is replaced when taken from the pool instead of failing the next
        # transaction: in a queue worker, often the one that records a message as sent.
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(url, **kwargs)
    except (sa.exc.ArgumentError, ImportError) as exc:
        hint = " (pip install 'digest-papers[postgres]')" if backend == "postgresql" else ""
        raise StoreError(f"{shown(url)}: cannot open: {exc}{hint}") from None
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def translate(where: str, exc: sa.exc.DBAPIError) -> StoreError:
    """The project's error for a database error, on one line, naming `where` (the URL)."""
    text = " ".join(line.strip() for line in str(exc.orig).splitlines() if line.strip())
    code = getattr(exc.orig, "sqlstate", None)
    if code == _LOCK_NOT_AVAILABLE or (
        isinstance(exc, sa.exc.OperationalError) and ("locked" in text or "busy" in text)
    ):
        return StoreLockedError(f"{where}: the database is locked by another process ({text})")
    if code == _QUERY_CANCELED:
        return StoreError(f"{where}: a statement ran longer than {STATEMENT_TIMEOUT_S} s and was "
                          f"cancelled ({text})")
    if code in _CONFLICTS:
        return StoreConflictError(f"{where}: {_CONFLICTS[code]} ({text})")
    if isinstance(exc, sa.exc.IntegrityError) and "UNIQUE constraint failed" in text:
        return StoreConflictError(f"{where}: {_CONFLICTS['23505']} ({text})")
    return StoreError(f"{where}: {text}")


def comparable(dialect: str, values: Iterable[str]) -> list[str]:
    """The `values` a text column could hold, for a lookup. Text that is not valid Unicode (a
    lone surrogate: a command-line argument in another encoding arrives so) is stored by
    neither backend and cannot even be sent; PostgreSQL's text cannot hold a NUL either and
    refuses a statement comparing with one (a feedback link's ``?paper=%00``, a seed written
    ``"\\0"`` in YAML). Such a value matches nothing: it is dropped, not sent."""
    nul_ok = dialect != "postgresql"
    return [value for value in values
            if (nul_ok or "\x00" not in value) and (value.isascii() or _encodable(value))]


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # pysqlite's own transaction handling is off (isolation_level=None): we say BEGIN
        # ourselves so that a transaction really spans everything SQLAlchemy runs in it.
        # IMMEDIATE (asked for by the migrations) takes the write lock at once, waiting for it.
        immediate = conn.get_execution_options().get("digest_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def insert_ignore(conn: Connection, table: sa.Table) -> Any:
    """An INSERT that skips rows whose unique key exists (each dialect's own way)."""
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    return table.insert().prefix_with("IGNORE")


def _wal(cursor: Any) -> None:
    """Put the database in WAL mode (it stays so; later connections only check). Switching
    needs the database to itself, and SQLite answers "database is locked" at once, without its
    busy timeout, while another process migrates a new database or holds it: then this
    connection goes on as it is (its statements wait for the lock as usual, and the next
    connection switches the mode)."""
    (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
    if str(mode).lower() == "wal":
        return
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
