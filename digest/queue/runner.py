"""Connecting to the queue, deferring a run's digests, and running a worker.

The queue lives in the store's own PostgreSQL database (procrastinate's tables beside
digest's), so a worker needs nothing but the database URL, the configuration and the shared
output folder (the model is read from there).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import procrastinate
from procrastinate import PsycopgConnector
from procrastinate.schema import SchemaManager

from ..app import DigestApp
from ..errors import DigestError, StoreLockedError
from ..modelstore import fit_reason, model_dir
from ..profiles.sync import SyncReport, stored_profiles, sync_profiles
from ..store import Store
from ..store.backend import parse_url, shown
from . import tasks
from .context import QueueContext
from .work import stale_work

log = logging.getLogger("digest.queue")

#: procrastinate's main table: its schema is installed when this is missing.
JOBS_TABLE = "procrastinate_jobs"


def queue_app(db_url: str, *, pool_size: int = 4) -> procrastinate.App:
    """The procrastinate app of the store at `db_url` (PostgreSQL only), with digest's tasks."""
    url = parse_url(db_url)
    if url.get_backend_name() != "postgresql":
        raise DigestError(
            f"{shown(url)}: the queue needs PostgreSQL (the workers share its jobs, claims and "
            f"leases); use --db postgresql+psycopg://user@host/db, or `digest run` and "
            f"`digest schedule` without --queue on SQLite")
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    app = procrastinate.App(connector=PsycopgConnector(
        conninfo=conninfo, min_size=1, max_size=max(2, pool_size)))
    tasks.register(app)
    return app


def install(store: Store) -> bool:
    """Install procrastinate's tables in the store's database unless they are there."""
    return store.install_schema(JOBS_TABLE, SchemaManager.get_schema())


@dataclass
class Deferred:
    """What `defer_digests` queued."""

    shards: int = 0
    profiles: int = 0
    fit: str | None = None  # why the model is fitted first, when it is
    days: list[str] = field(default_factory=list)


def defer_digests(app: DigestApp, store: Store, days: Mapping[str, dt.date]) -> Deferred:
    """Queue the digests of the profiles in `days` (name -> digest day) as shard jobs; when
    the model must be fitted first, one fit job that defers them once it has."""
    size = app.config.queue.shard_size
    by_day: dict[dt.date, list[str]] = {}
    for name, day in days.items():
        by_day.setdefault(day, []).append(name)
    shards = [job for day, names in sorted(by_day.items())
              for job in tasks.shard_jobs(names, day, size)]
    out = Deferred(len(shards), len(days), days=[d.isoformat() for d in sorted(by_day)])
    if not shards:
        return out
    install(store)
    queue = queue_app(app.db_url)
    with queue.open():
        out.fit = fit_reason(store, model_dir(app.out_dir), now=app.clock())
        if out.fit is not None:
            try:
                queue.configure_task(tasks.FIT).defer(shards=cast(Any, shards))
                return out
            except procrastinate.exceptions.AlreadyEnqueued:
                out.fit = None  # a fit is waiting already: these rank with today's model
        queue.configure_task(tasks.SHARD).batch_defer(*shards)
    return out


@dataclass
class QueuedRun:
    """What `queue_run` did: the profiles sync, the jobs deferred, and names not found."""

    synced: SyncReport
    deferred: Deferred
    unknown: list[str] = field(default_factory=list)


def queue_run(app: DigestApp, names: Sequence[str] = (),
              day: dt.date | None = None) -> QueuedRun:
    """`digest run --queue`: sync the profiles folder into the store (only changed files are
    read), then defer the digests of `names` (a profile's name or file name; none: every
    profile), each of its today in its time zone, or of `day`. Nothing is deferred when a
    name is unknown."""
    queue_app(app.db_url)  # refuses SQLite before anything is written
    now = app.clock()
    with app.open_store() as store:
        synced = sync_profiles(store, app.profiles_dir, now=now)
        wanted: list[str] | None = None
        if names:
            known = store.profile_doc_hashes()
            by_file = {Path(path).stem: name for name, (path, _) in known.items()}
            wanted = [n if n in known else by_file.get(n, "") for n in names]
            unknown = [n for n, found in zip(names, wanted, strict=True) if not found]
            if unknown:
                return QueuedRun(synced, Deferred(), unknown)
        found = stored_profiles(store, wanted)
        days = {p.name: day or now.astimezone(ZoneInfo(p.timezone)).date()
                for p in found.profiles}
        return QueuedRun(synced, defer_digests(app, store, days))


@dataclass
class QueueStatus:
    """What the queue holds: jobs per task and status, deliveries per day and status."""

    jobs: dict[str, dict[str, int]]
    deliveries: dict[str, dict[str, int]]


def queue_status(app: DigestApp, *, days: int = 3) -> QueueStatus:
    """Jobs by task and status (procrastinate's counts) and the last `days` digest days'
    deliveries by status (``claimed`` and ``pending`` are work in flight)."""
    queue = queue_app(app.db_url)
    with app.open_store() as store:
        install(store)
        deliveries = store.delivery_counts(days=days)
    with queue.open():
        rows = queue.job_manager.list_tasks()
    jobs = {str(row["name"]): {k: int(v) for k, v in row.items()
                               if k not in ("name", "jobs_count") and v}
            for row in rows}
    return QueueStatus(jobs, deliveries)


# -- the worker -------------------------------------------------------------------------------


@dataclass
class WorkerSummary:
    """What a worker did before it stopped (a burst worker: once the queue was empty)."""

    rounds: int = 0
    stalled_retried: int = 0
    swept_claims: int = 0
    swept_sends: int = 0
    scheduled_later: int = 0


def run_worker(ctx: QueueContext, *, concurrency: int = 1, burst: bool = False,
               install_signals: bool = True) -> WorkerSummary:
    """Run jobs until stopped (SIGINT/SIGTERM finish the jobs in hand), or with `burst` until
    no job is ready or running anywhere. Before and between rounds it retries the jobs of dead
    workers (no heartbeat for `queue.stalled_after`) and re-queues work they left in the store
    (lapsed claims and send leases)."""
    install(ctx.store())
    queue = queue_app(ctx.app.db_url, pool_size=concurrency + 3)
    tasks.bind(ctx)
    summary = WorkerSummary()
    try:
        asyncio.run(_main(queue, ctx, summary, concurrency=concurrency, burst=burst,
                          install_signals=install_signals))
    finally:
        tasks.bind(None)
        ctx.close()
    return summary


async def _main(queue: procrastinate.App, ctx: QueueContext, summary: WorkerSummary, *,
                concurrency: int, burst: bool, install_signals: bool) -> None:
    settings = ctx.settings
    options: dict[str, Any] = {
        "concurrency": concurrency, "name": ctx.owner,
        "update_heartbeat_interval": settings.heartbeat,
        "stalled_worker_timeout": settings.stalled_after,
        "install_signal_handlers": install_signals,
        "delete_jobs": "successful", "fetch_job_polling_interval": 1.0,
    }
    async with queue.open_async():
        if not burst:
            sweeper = asyncio.create_task(_sweep_forever(queue, ctx, summary))
            try:
                await queue.run_worker_async(wait=True, **options)
            finally:
                sweeper.cancel()
            return
        while True:
            await _sweep(queue, ctx, summary)
            summary.rounds += 1
            await queue.run_worker_async(wait=False, **options)
            running, later = await _still_queued(queue)
            if not running:
                summary.scheduled_later = later
                return
            # Jobs run on other workers (or on dead ones, until they count as stalled).
            await asyncio.sleep(min(2.0, settings.heartbeat))


async def _still_queued(queue: procrastinate.App) -> tuple[int, int]:
    """Jobs ready or running now, and jobs waiting for a later time (retries)."""
    now = dt.datetime.now(dt.UTC)
    manager = queue.job_manager
    todo = list(await manager.list_jobs_async(status="todo"))
    doing = list(await manager.list_jobs_async(status="doing"))
    later = sum(1 for j in todo if j.scheduled_at is not None and j.scheduled_at > now)
    return len(doing) + len(todo) - later, later


async def _sweep_forever(queue: procrastinate.App, ctx: QueueContext,
                         summary: WorkerSummary) -> None:
    while True:
        try:
            await _sweep(queue, ctx, summary)
        except Exception:  # a sweep that fails (the database restarting) is tried again
            log.exception("sweeping for stalled work failed")
        await asyncio.sleep(ctx.settings.sweep_seconds)


async def _sweep(queue: procrastinate.App, ctx: QueueContext, summary: WorkerSummary) -> None:
    """Retry the jobs of dead workers, then queue what dead jobs left in the store."""
    manager = queue.job_manager
    for job in await manager.get_stalled_jobs(
            seconds_since_heartbeat=ctx.settings.stalled_after):
        try:
            await manager.retry_job(job)
        except procrastinate.exceptions.UniqueViolation:
            # Another job with its queueing lock waits (a sweep's, or the next fit): this one
            # runs again as a job of its own, and the dead one is closed.
            await asyncio.to_thread(_requeue_dead, queue, job)
            assert job.id is not None
            await manager.finish_job_by_id_async(job.id, procrastinate.jobs.Status.FAILED,
                                                 delete_job=False)
        except procrastinate.exceptions.ConnectorException as exc:
            # Mostly another worker's sweep retried it first ("Job was not found or has an
            # invalid status to retry"): the others are still this sweep's to retry.
            log.info("job %s of a dead worker not retried here: %s", job.id,
                     str(exc.__cause__ or exc).strip())
            continue
        summary.stalled_retried += 1
        log.warning("job %s (%s) of a dead worker runs again", job.id, job.task_name)
    # Deferring is synchronous here (as in the jobs): off the event loop.
    claims, sends = await asyncio.to_thread(_requeue_stale, queue, ctx)
    summary.swept_claims += claims
    summary.swept_sends += sends


def _requeue_dead(queue: procrastinate.App, job: procrastinate.jobs.Job) -> None:
    try:
        tasks.requeue_unlocked(queue, job.task_name, job.task_kwargs)
    except procrastinate.exceptions.AlreadyEnqueued:
        # A fit (locked by its task) waits already: the dead fit's shards go without it.
        tasks.defer_shards(queue, cast(list[dict[str, Any]], job.task_kwargs.get("shards", [])))


def _requeue_stale(queue: procrastinate.App, ctx: QueueContext) -> tuple[int, int]:
    claims, pending = _stale_locked(ctx)
    shards = 0
    for key, names in claims.items():
        day = dt.date.fromisoformat(key)
        jobs = tasks.shard_jobs(names, day, ctx.settings.shard_size)
        shards += tasks.defer_shards(queue, jobs, lock="sweep")
    sends = 0
    if pending:
        sends = tasks.defer_send(queue, pending, ctx.settings.send_batch, lock="sweep")
    return shards, sends


def _stale_locked(ctx: QueueContext) -> tuple[dict[str, list[str]], Sequence[int]]:
    try:
        with ctx.store().locked("queue-sweep", now=ctx.now()):
            return stale_work(ctx)
    except StoreLockedError:  # another worker is sweeping
        return {}, []
