"""Locks that hold, on SQLite and on a real PostgreSQL: one holder at a time among racing
processes, a clear error for the others, a dead holder's lock taken over (also when its pid was
reused), concurrent first opens that migrate once, and database errors mapped to ours."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from stores import Backend, query

from digest.app import DigestApp
from digest.cli import sample_path
from digest.config import Config
from digest.errors import StoreConflictError, StoreLockedError
from digest.modelstore import ensure
from digest.sources.resolve import FileSource
from digest.store import MIGRATIONS, Store
from digest.store.locks import process_start
from digest.store.schema import locks

NOW = dt.datetime(2026, 7, 1, 7, 0, tzinfo=dt.UTC)
RACERS, ROUNDS = 6, 10
fork = multiprocessing.get_context("fork")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as store:
        yield store


def _race(url: str, barrier: Barrier, results: Any) -> None:
    with Store.open(url) as store:
        for round_ in range(ROUNDS):
            barrier.wait()
            try:
                store.acquire_lock("run", now=NOW)
                outcome = "held"
            except StoreLockedError as exc:
                outcome = str(exc)
            barrier.wait()  # every racer has tried while the winner holds it
            if outcome == "held":
                store.release_lock("run")
            results.put((round_, os.getpid(), outcome))
            barrier.wait()


def test_six_processes_racing_for_the_run_lock_ten_rounds_one_holder_each(store_url: str) -> None:
    Store.open(store_url).close()
    barrier, results = fork.Barrier(RACERS, timeout=60), fork.Queue()
    racers = [fork.Process(target=_race, args=(store_url, barrier, results))
              for _ in range(RACERS)]
    for p in racers:
        p.start()
    outcomes = [results.get(timeout=120) for _ in range(RACERS * ROUNDS)]
    for p in racers:
        p.join(30)
        assert p.exitcode == 0

    for round_ in range(ROUNDS):
        this = [o for r, _, o in outcomes if r == round_]
        assert this.count("held") == 1, (round_, this)
        for lost in (o for o in this if o != "held"):
            assert lost.startswith(f"{store_url}: another digest process holds the 'run' lock "
                                   "(pid "), lost
            assert lost.endswith("wait for it to finish")
            # In UTC, whatever the database's time zone (tests/stores.py sets PostgreSQL's).
            assert f"since {NOW:%Y-%m-%d %H:%M} UTC)" in lost, lost


def _open(url: str, barrier: Barrier, results: Any) -> None:
    barrier.wait()
    try:
        Store.open(url).close()
        results.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        results.put(f"{type(exc).__name__}: {exc}")


def test_six_processes_opening_a_new_database_at_once_migrate_it_once(
    store_backend: Backend, tmp_path: Path
) -> None:
    for attempt in range(3):
        url = store_backend.new_url(tmp_path / str(attempt))
        barrier, results = fork.Barrier(RACERS, timeout=60), fork.Queue()
        openers = [fork.Process(target=_open, args=(url, barrier, results))
                   for _ in range(RACERS)]
        for p in openers:
            p.start()
        outcomes = [results.get(timeout=120) for _ in range(RACERS)]
        for p in openers:
            p.join(30)

        assert outcomes == ["ok"] * RACERS
        assert query(url, "SELECT version FROM schema_version") == [(len(MIGRATIONS),)]


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _plant(store: Store, pid: int, owner: str) -> None:
    """A lock row as another process on this host would have left it."""
    with store.engine.begin() as conn:
        conn.execute(locks.delete())
        conn.execute(locks.insert().values(
            name="run", owner=owner, host=socket.gethostname(), pid=pid,
            acquired_at=NOW, heartbeat_at=NOW))


def test_a_lock_held_by_a_live_process_is_refused_naming_it(store: Store) -> None:
    holder = fork.Process(target=_hold_until_killed, args=(store_url_of(store),))
    ready = _start_holder(holder)
    try:
        with pytest.raises(StoreLockedError) as caught:
            store.acquire_lock("run", now=NOW)
        assert f"another digest process holds the 'run' lock (pid {holder.pid} on " in str(
            caught.value)
        assert ready
    finally:
        os.kill(holder.pid or 0, signal.SIGKILL)
        holder.join()
    # Killed without a chance to release: its lock is free (pid gone; on PostgreSQL its session
    # ends as soon as the server notices, which acquire_lock waits for).
    store.acquire_lock("run", now=NOW)
    store.release_lock("run")


def store_url_of(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


_ready = fork.Event()


def _hold_until_killed(url: str, name: str = "run") -> None:
    store = Store.open(url)
    store.acquire_lock(name, now=NOW)
    _ready.set()
    signal.pause()


def _start_holder(holder: Any) -> bool:
    _ready.clear()
    holder.start()
    return _ready.wait(60)


def test_a_lock_whose_pid_was_reused_by_another_process_is_taken_over(store: Store) -> None:
    other = _sleeper()  # alive, on this host, but not the process that took the lock
    try:
        start = process_start(other.pid)
        assert start is not None
        _plant(store, other.pid, f"{socket.gethostname()}:{other.pid}:{start + 12345}")
        store.acquire_lock("run", now=NOW)
        rows = query(store_url_of(store), "SELECT pid FROM locks WHERE name = 'run'")
        assert rows == [(os.getpid(),)]
        store.release_lock("run")
    finally:
        other.kill()
        other.wait()


def test_a_sqlite_lock_of_a_live_process_with_its_start_time_holds(store: Store) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's advisory lock, not the row, says who holds it")
    other = _sleeper()
    try:
        owner = f"{socket.gethostname()}:{other.pid}:{process_start(other.pid)}"
        _plant(store, other.pid, owner)
        with pytest.raises(StoreLockedError, match=f"pid {other.pid} on"):
            store.acquire_lock("run", now=NOW)
        _plant(store, other.pid, f"{socket.gethostname()}:{other.pid}")  # an old-style row
        with pytest.raises(StoreLockedError, match=f"pid {other.pid} on"):
            store.acquire_lock("run", now=NOW)
    finally:
        other.kill()
        other.wait()


def test_a_unique_key_conflict_is_a_clear_one_line_error(store: Store) -> None:
    row = {"name": "x", "owner": "h:1", "host": "h", "pid": 1, "acquired_at": NOW,
           "heartbeat_at": NOW}
    with store.engine.begin() as conn:
        conn.execute(locks.insert().values(**row))
    with pytest.raises(StoreConflictError) as caught, store._errors(), \
            store.engine.begin() as conn:
        conn.execute(locks.insert().values(**row))
    message = str(caught.value)
    assert message.startswith(f"{store.url}: another process wrote the same row at the same time")
    assert "\n" not in message


def test_a_postgresql_statement_behind_a_row_lock_gives_up_with_a_clear_error(
    store: Store,
) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("lock_timeout is PostgreSQL's (SQLite: test_faults)")
    url = store_url_of(store)
    quick = Store.open(url + "?options=-c%20lock_timeout%3D300ms")
    with store.engine.connect() as holder, holder.begin():
        holder.execute(sa.text("LOCK TABLE subscriptions IN ACCESS EXCLUSIVE MODE"))
        with pytest.raises(StoreLockedError, match=r"locked by another process .*lock timeout"):
            quick.set_subscribed("ada", False, now=NOW)
    quick.close()


def test_ingestion_is_a_singleton_too(store: Store, tmp_path: Path) -> None:
    holder = fork.Process(target=_hold_until_killed, args=(store_url_of(store), "ingest"))
    assert _start_holder(holder)
    try:
        app = DigestApp(Config(out_dir=str(tmp_path / "out")), store_url_of(store),
                        str(tmp_path / "profiles"))
        with pytest.raises(StoreLockedError, match="holds the 'ingest' lock"):
            app.ingest([FileSource(sample_path(), "jsonl")])
    finally:
        os.kill(holder.pid or 0, signal.SIGKILL)
        holder.join()
    assert store.info().papers == 0


def test_a_model_fit_waits_for_another_process_fitting(store: Store, tmp_path: Path) -> None:
    url = store_url_of(store)
    app = DigestApp(Config(out_dir=str(tmp_path / "out")), url, str(tmp_path / "profiles"))
    app.ingest([FileSource(sample_path(), "jsonl")])
    holder = fork.Process(target=_hold_until_killed, args=(url, "model"))
    assert _start_holder(holder)
    killer = threading.Timer(2.0, os.kill, args=(holder.pid, signal.SIGKILL))
    killer.start()
    started = time.monotonic()
    try:
        loaded = ensure(store, tmp_path / "out" / "model", now=NOW, force=True)
    finally:
        killer.join()
        holder.join()
    assert time.monotonic() - started >= 1.5  # it waited for the other fit to end
    assert loaded.fitted_because == "asked to refit"
    assert loaded.model.n_docs == 483


def test_a_postgresql_lock_whose_connection_was_cut_is_free_and_its_holder_learns_it(
    store: Store,
) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    store.acquire_lock("run", now=NOW)
    with store.engine.connect() as admin:
        cut = admin.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_locks "
            "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()")).all()
    assert cut == [(True,)]

    with Store.open(store_url_of(store)) as other:
        other.acquire_lock("run", now=NOW)  # free at once: the session that held it is gone
        for _ in range(2):  # the old holder finds out at its next heartbeat, and each after
            with pytest.raises(StoreLockedError) as caught:
                store.heartbeat("run", now=NOW)
            assert str(caught.value).startswith(f"{store.url}: the 'run' lock was lost with its "
                                                "connection to the database (")
            assert "\n" not in str(caught.value)
        store.release_lock("run")  # and letting go of what it lost is quiet
        other.release_lock("run")
