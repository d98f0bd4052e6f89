"""The daemon: one scheduler per database, its jobs in sync with the profiles folder."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_START,
    JobEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from ..app import DigestApp, utc_now
from ..config import ScheduleConfig, load_config
from ..errors import DigestError, StoreLockedError
from ..modelstore import ModelCache
from ..profiles import load_profiles
from ..store import Store
from .batch import BatchingExecutor
from .jobs import (
    JobInfo,
    JobSpec,
    SyncReport,
    jobstore,
    list_jobs,
    paused_scheduler,
    plan_jobs,
    shut_down,
    sync_jobs,
)
from .runs import run_digest_batch, schedule_settings
from .triggers import UTC

logger = logging.getLogger("digest.schedule")

Clock = Callable[[], dt.datetime]

#: The store lock that makes one scheduler per database.
LOCK_NAME = "scheduler"
class Scheduler:
    """The daemon: a `BlockingScheduler` over the database's job store, kept in sync with the
    profiles folder. `run` blocks until `stop` (or SIGTERM/SIGINT, which call it); an
    instance runs once. SIGHUP re-reads the profiles at once."""

    def __init__(self, *, db_url: str, profiles_dir: str, config_path: str | None = None,
                 settings: ScheduleConfig | None = None, clock: Clock = utc_now,
                 batching: bool = True, queue: bool = False) -> None:
        self.db_url = db_url
        self.profiles_dir = profiles_dir
        self.config_path = config_path
        #: Fixed settings; None reads ``[schedule]`` of the configuration at every sync.
        self.settings = settings
        self.clock = clock
        #: Digest jobs due together run as one batch (`batch`); False runs each on its own,
        #: as before batching (the benchmark's baseline).
        self.batching = batching
        #: Digests due are deferred to the queue (`tick`) instead of delivered here.
        self.queue = queue
        self.models = ModelCache()
        self._aps: BlockingScheduler | None = None
        self._store: Store | None = None
        self._sync_lock = threading.Lock()
        self._stop_lock = threading.Lock()
        self._stop_requested = False
        self._stopper: threading.Thread | None = None
        self._fingerprint: tuple[Any, ...] | None = None

    @classmethod
    def for_app(cls, app: DigestApp, *, config_path: str | None,
                settings: ScheduleConfig | None = None, queue: bool = False) -> Scheduler:
        return cls(db_url=app.db_url, profiles_dir=app.profiles_dir, config_path=config_path,
                   settings=settings, clock=app.clock, queue=queue)

    # -- planning ---------------------------------------------------------------------------

    def current_settings(self) -> ScheduleConfig:
        if self.settings is not None:
            return self.settings
        return schedule_settings(load_config(self.config_path))

    def plan(self) -> tuple[list[JobSpec], set[str]]:
        """The wanted jobs and the ids to keep, from the profiles folder as it is now."""
        if not Path(self.profiles_dir).is_dir():
            # Not "no profiles": removing every job because a folder is unmounted is wrong.
            raise DigestError(f"{self.profiles_dir}: the profiles folder is missing")
        profiles = load_profiles(self.profiles_dir)
        for error in profiles.errors:
            for problem in error.problems:
                logger.warning("invalid profile: %s", problem)
        return plan_jobs(profiles, self.current_settings(), db_url=self.db_url,
                         config_path=self.config_path, profiles_dir=self.profiles_dir)

    def list_jobs(self) -> list[JobInfo]:
        """Each job and its next run time in its own time zone (the scheduler need not run)."""
        wanted, keep = self.plan()
        return list_jobs(self.db_url, wanted, keep=keep, now=self.clock())

    def sync(self, scheduler: BaseScheduler | None = None, *,
             force: bool = True) -> SyncReport | None:
        """Sync the stored jobs with the profiles (on the running scheduler, or a paused one
        when it is not running). Without `force`, only when a file changed since last time."""
        with self._sync_lock:
            fingerprint = self._files_fingerprint()
            if not force and fingerprint == self._fingerprint:
                return None
            wanted, keep = self.plan()
            if scheduler is None:
                with paused_scheduler(self.db_url) as paused:
                    report = sync_jobs(paused, wanted, keep=keep, now=self.clock())
            else:
                report = sync_jobs(scheduler, wanted, keep=keep, now=self.clock())
            self._fingerprint = fingerprint
        if report.changed:
            logger.info("jobs synced: %s", report)
        return report

    def _files_fingerprint(self) -> tuple[Any, ...]:
        paths = sorted(Path(self.profiles_dir).glob("*.y*ml"))
        config = Path(self.config_path) if self.config_path else Path("digest.toml")
        marks = []
        for path in [*paths, config]:
            try:
                info = path.stat()
            except OSError:
                continue
            marks.append((str(path), info.st_mtime_ns, info.st_size))
        return tuple(marks)

    # -- running ----------------------------------------------------------------------------

    def run(self) -> None:
        """Take the database's scheduler lock (StoreLockedError if another scheduler has it),
        sync the jobs, and run them until `stop`. Returns after the job in flight finished."""
        store = Store.open(self.db_url)
        try:
            store.acquire_lock(LOCK_NAME, now=self.clock())
        except StoreLockedError as exc:
            store.close()
            held = str(exc).removesuffix("; wait for it to finish")
            raise StoreLockedError(f"{held}: a scheduler is already running on this database, "
                                   "and only one may; stop it first") from None
        except BaseException:
            store.close()
            raise
        self._store = store
        restore: dict[int, Any] = {}
        try:
            report = self.sync()
            settings = self.current_settings()
            aps = BlockingScheduler(
                jobstores={"default": jobstore(self.db_url), "internal": MemoryJobStore()},
                executors={"default": self._executor(), "internal": ThreadPoolExecutor(1)},
                job_defaults={"coalesce": True, "max_instances": 1,
                              "misfire_grace_time": max(1, int(settings.misfire_grace_hours
                                                                * 3600))},
                timezone=UTC,
            )
            aps.add_job(self._maintain, IntervalTrigger(seconds=settings.resync_seconds),
                        id="maintain", name="heartbeat and profile re-sync",
                        jobstore="internal", executor="internal", misfire_grace_time=None)
            aps.add_listener(self._on_job_event,
                             EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
            aps.add_listener(self._on_start, EVENT_SCHEDULER_START)
            self._aps = aps
            if threading.current_thread() is threading.main_thread():
                restore = self._install_signals()
            logger.info("scheduler started on %s (pid %d): %s", self.db_url, os.getpid(),
                        report)
            if not self._stop_requested:
                aps.start()
        finally:
            for signum, handler in restore.items():
                signal.signal(signum, handler)
            if self._stopper is not None:
                self._stopper.join()
            self._aps = None
            with contextlib.suppress(DigestError):
                store.release_lock(LOCK_NAME)
            store.close()
            self._store = None
            logger.info("scheduler stopped")

    def _executor(self) -> Any:
        if self.queue:
            from .tick import defer_batch  # procrastinate only when asked for

            return BatchingExecutor(functools.partial(defer_batch, clock=self.clock))
        if not self.batching:
            return ThreadPoolExecutor(1)
        return BatchingExecutor(functools.partial(run_digest_batch, clock=self.clock,
                                                  models=self.models))

    def stop(self) -> None:
        """Stop taking jobs, let the one in flight finish, and make `run` return. Safe from any
        thread and from a signal handler (the waiting happens in a thread of its own)."""
        with self._stop_lock:
            self._stop_requested = True
            aps = self._aps
            if aps is None or not aps.running or self._stopper is not None:
                return
            self._stopper = threading.Thread(target=self._shutdown, args=(aps,),
                                             name="digest-scheduler-stop")
            self._stopper.start()

    def _shutdown(self, aps: BlockingScheduler) -> None:
        logger.info("stopping: waiting for the job in flight")
        shut_down(aps, wait=True)

    def _on_start(self, event: Any) -> None:
        if self._stop_requested:  # a signal came before the scheduler was running
            self.stop()

    def _install_signals(self) -> dict[int, Any]:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            self.stop()

        def on_hangup(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=self._resync_now, name="digest-resync", daemon=True).start()

        previous: dict[int, Any] = {}
        for signum, handler in ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop),
                                (signal.SIGHUP, on_hangup)):
            previous[signum] = signal.signal(signum, handler)
        return previous

    def _resync_now(self) -> None:
        if self._aps is not None:
            try:
                logger.info("SIGHUP: profiles re-read: %s", self.sync(self._aps, force=True))
            except Exception:
                logger.exception("re-sync failed; jobs kept as they were")

    def _maintain(self) -> None:
        """Every few seconds: refresh the lock, and re-sync if a profile or the config changed."""
        if self._store is not None:
            try:
                self._store.heartbeat(LOCK_NAME, now=self.clock())
            except DigestError as exc:
                logger.warning("heartbeat failed: %s", exc)
        if self._aps is not None and self._aps.running:
            try:
                self.sync(self._aps, force=False)
            except Exception:  # a bad edit must not stop the daemon
                logger.exception("re-sync failed; jobs kept as they were")

    def _on_job_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_ERROR:
            logger.error("job %s crashed: %s: %s", event.job_id,
                         type(event.exception).__name__, event.exception,
                         exc_info=(type(event.exception), event.exception,
                                   event.exception.__traceback__),
                         extra={"job": event.job_id, "status": "failed",
                                "error": str(event.exception)})
        elif event.code == EVENT_JOB_MISSED:
            logger.warning("job %s: missed its run at %s by more than the grace time; the next "
                           "run covers it", event.job_id, event.scheduled_run_time,
                           extra={"job": event.job_id, "status": "missed"})
        else:
            logger.warning("job %s: still running at its next run time; that run skipped",
                           event.job_id, extra={"job": event.job_id, "status": "skipped"})
