"""Named locks, so that one process at a time runs digests, ingests, fits the model or schedules.

PostgreSQL: `pg_try_advisory_lock` on a connection kept open for the lock's life. The server
gives it to one session only, and frees it when that session ends, so a holder that died (or
whose connection was cut) never blocks anyone. A row in ``locks`` says who holds it, for messages.

SQLite: a row in ``locks``, read and written in one transaction that holds the database's write
lock (`_begin_write`), so two processes cannot both find it free. A row left by a process that
died is taken over: on this host when its pid is gone *or now belongs to another process* (the
start time recorded with the pid differs from the running one's), from another host when its
heartbeat stopped for `stale_after`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import DigestError, StoreLockedError
from .schema import locks

#: How long a PostgreSQL lock of a holder known dead may take to be freed by the server.
DEAD_HOLDER_WAIT_S = 10.0


def lock_key(name: str) -> int:
    """The advisory lock number of `name` (a signed 64-bit integer, stable across processes)."""
    digest = hashlib.sha256(f"digest:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat from the third on (state, ppid, ...), None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.rsplit(")", 1)[-1].split()


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), None if unknown: with the pid it names
    one process, even after the pid is reused."""
    fields = _stat(pid)
    try:
        return int(fields[19]) if fields else None  # field 22, starttime
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Owner:
    """A process as a lock row records it: ``host:pid`` or ``host:pid:start``."""

    host: str
    pid: int
    start: int | None

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, process_start(pid))

    @classmethod
    def parse(cls, owner: str, host: str, pid: int) -> Owner:
        last = owner.rsplit(":", 1)[-1]
        # Rows written before start times were recorded say host:pid only.
        start = int(last) if owner.count(":") >= 2 and last.isdigit() else None
        return cls(host, pid, start)

    def __str__(self) -> str:
        base = f"{self.host}:{self.pid}"
        return base if self.start is None else f"{base}:{self.start}"

    def alive(self) -> bool:
        """On this host: is the process that took the lock still running?"""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        fields = _stat(self.pid)
        if fields and fields[0] in ("Z", "X"):  # exited, not yet reaped by its parent
            return False
        if self.start is None:
            return True
        running = process_start(self.pid)
        return running is None or running == self.start


def _utc(value: dt.datetime) -> dt.datetime:
    # PostgreSQL's are in the session's time zone (core._utc says why).
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


class LockMixin:
    """Lock methods of `Store` (which provides `engine`, `url`, `_held`, `_errors`,
    `_begin_write`)."""

    engine: Engine
    url: str
    #: PostgreSQL: the connection holding each advisory lock this store took.
    _held: dict[str, Connection]

    def _errors(self) -> Any:  # provided by Store
        raise NotImplementedError

    def _begin_write(self) -> Any:  # provided by LedgerMixin
        raise NotImplementedError

    def acquire_lock(
        self, name: str, *, now: dt.datetime, stale_after: dt.timedelta = dt.timedelta(hours=1)
    ) -> None:
        """Take the lock `name` for this process, or raise StoreLockedError saying who holds it
        (never waits)."""
        if self.engine.dialect.name == "postgresql":
            self._acquire_advisory(name, now)
        else:
            self._acquire_row(name, now, stale_after)

    def _acquire_advisory(self, name: str, now: dt.datetime) -> None:
        if name in self._held:
            return
        with self._errors():
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                if not _try_advisory(conn, name):
                    raise StoreLockedError(self._held_by(name, _holder_row(conn, name), now))
                _write_row(conn, name, Owner.me(), now)
            except BaseException:
                conn.close()
                raise
        self._held[name] = conn

    def _acquire_row(self, name: str, now: dt.datetime, stale_after: dt.timedelta) -> None:
        me = Owner.me()
        with self._begin_write() as conn:
            row = conn.execute(sa.select(locks).where(locks.c.name == name)).first()
            if row is not None and not (row.host == me.host and row.pid == me.pid):
                holder = Owner.parse(row.owner, row.host, row.pid)
                # On this host the process table is the truth; from another host, only a
                # heartbeat that stopped says the holder died.
                dead = (not holder.alive() if holder.host == me.host
                        else now - _utc(row.heartbeat_at) > stale_after)
                if not dead:
                    raise StoreLockedError(self._held_by(name, row, now))
            _write_row(conn, name, me, now)

    def _held_by(self, name: str, row: Any, now: dt.datetime) -> str:
        who = "" if row is None else (
            f" (pid {row.pid} on {row.host}, since {_utc(row.acquired_at):%Y-%m-%d %H:%M} UTC)")
        return (f"{self.url}: another digest process holds the {name!r} lock{who}; "
                "wait for it to finish")

    def heartbeat(self, name: str, *, now: dt.datetime) -> None:
        """Say the holder of `name` is still alive (read from other hosts on SQLite)."""
        query = (locks.update()
                 .where(locks.c.name == name, locks.c.pid == os.getpid())
                 .values(heartbeat_at=now))
        held = self._held.get(name)
        if held is None:
            with self._errors(), self.engine.begin() as conn:
                conn.execute(query)
            return
        try:
            held.execute(query)
        except sa.exc.SQLAlchemyError as exc:
            # Its session ended (the connection was cut, the server restarted): the advisory
            # lock went with it, and another process may hold it now.
            detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
            raise StoreLockedError(f"{self.url}: the {name!r} lock was lost with its connection "
                                   f"to the database ({detail})") from exc

    def release_lock(self, name: str) -> None:
        me = Owner.me()
        mine = (locks.c.name == name) & (locks.c.pid == me.pid) & (locks.c.host == me.host)
        held = self._held.pop(name, None)
        if held is None:
            with self._errors(), self.engine.begin() as conn:
                conn.execute(locks.delete().where(mine))
            return
        # A connection that was cut already lost its advisory lock with its session (and
        # SQLAlchemy then refuses it any statement).
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            held.execute(locks.delete().where(mine))
            held.execute(sa.select(sa.func.pg_advisory_unlock(lock_key(name))))
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            held.close()

    def release_all_locks(self) -> None:
        for name in list(self._held):
            with contextlib.suppress(DigestError):
                self.release_lock(name)

    @contextmanager
    def locked(self, name: str, *, now: dt.datetime) -> Iterator[None]:
        self.acquire_lock(name, now=now)
        try:
            yield
        finally:
            self.release_lock(name)


def _try_advisory(conn: Connection, name: str) -> bool:
    """Take the advisory lock `name` if free. A holder on this host that is already dead frees
    it as soon as the server notices its connection closed, a moment later: wait for that
    (up to `DEAD_HOLDER_WAIT_S`) rather than refuse the next run after a crash."""
    deadline = time.monotonic() + DEAD_HOLDER_WAIT_S
    while True:
        if conn.execute(sa.select(sa.func.pg_try_advisory_lock(lock_key(name)))).scalar():
            return True
        row = conn.execute(sa.select(locks).where(locks.c.name == name)).first()
        if (row is None or row.host != socket.gethostname()
                or Owner.parse(row.owner, row.host, row.pid).alive()
                or time.monotonic() > deadline):
            return False
        time.sleep(0.05)


def _holder_row(conn: Connection, name: str) -> Any:
    """Who holds `name`, for the message. A holder writes its row just after it took the lock,
    so a loser of a close race may look a moment too early: it looks again, briefly."""
    for _ in range(10):
        row = conn.execute(sa.select(locks).where(locks.c.name == name)).first()
        if row is not None:
            return row
        time.sleep(0.05)
    return None


def _write_row(conn: Connection, name: str, owner: Owner, now: dt.datetime) -> None:
    conn.execute(locks.delete().where(locks.c.name == name))
    conn.execute(locks.insert().values(name=name, owner=str(owner), host=owner.host,
                                       pid=owner.pid, acquired_at=now, heartbeat_at=now))
