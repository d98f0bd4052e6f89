"""The scheduler (``digest schedule``): ingestion and each profile's digest, on time, unattended.

One APScheduler 3 `BlockingScheduler` per database, its jobs persisted in that database
(``apscheduler_jobs``) under stable ids: ``ingest`` and ``digest:<profile>``. Design notes:

* **Sync, never replace.** At start and whenever a profile file or the configuration changes
  (checked every `ScheduleConfig.resync_seconds`, or at once on SIGHUP), the wanted jobs are
  compared with the stored ones: missing jobs are added, a job whose cron or time zone changed
  is rescheduled, one whose other arguments changed is updated in place, jobs of deleted
  profiles are removed, and an unchanged job is not touched. Re-adding with
  ``replace_existing=True`` would recompute the next run time and drop a run that was missed
  while the machine was down; kept as stored, that run fires once after the restart
  (``coalesce``, and a misfire grace of hours).
* **Nothing is lost anyway.** A digest covers everything since the profile's last successful
  delivery, and the ledger refuses a second digest for the same day: a missed run is made up
  by the next one, a doubled one sends nothing.
* **Ingestion first.** Before a digest, its job checks when ingestion last succeeded (a small
  state file in the output folder); if the ingest schedule has fired since, it ingests first.
  The ingest job itself skips a run a digest job already did. So a digest due at the same time
  as ingestion always sees the new papers, and each scheduled ingestion happens once.
* **One job at a time.** Jobs run on a single worker thread: digests never race each other
  for the database or the ``run`` lock. Bookkeeping (heartbeat, re-sync) has its own thread.
* **Standard cron in the profile's time zone** (`digest.cron`), never firing twice for a wall
  clock time that repeats when clocks go back (`WallClockTrigger`).

Jobs are pickled into the store, so they refer to module-level functions by name and take
plain arguments (database URL, configuration path, profiles folder, profile name); each run
builds its own `DigestApp` and so sees the current configuration and profile.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_START,
    JobEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .app import DigestApp, utc_now
from .config import Config, ScheduleConfig, load_config
from .cron import to_trigger
from .deliver import RunResult
from .errors import DigestError, StoreLockedError
from .fsutil import write_atomically
from .ingest import Source
from .profiles import ProfileSet, load_profiles
from .sources.resolve import resolve
from .store import Store
from .types import SourceResult

__all__ = [
    "INGEST_ID",
    "JobInfo",
    "JobSpec",
    "ScheduleConfig",
    "Scheduler",
    "SyncReport",
    "WallClockTrigger",
    "latest_fire_time",
    "list_jobs",
    "paused_scheduler",
    "plan_jobs",
    "run_digest_job",
    "run_ingest_job",
    "schedule_trigger",
    "sync_jobs",
]

logger = logging.getLogger("digest.schedule")

Clock = Callable[[], dt.datetime]

INGEST_ID = "ingest"
DIGEST_PREFIX = "digest:"
DIGEST_FUNC = "digest.schedule:run_digest_job"
INGEST_FUNC = "digest.schedule:run_ingest_job"
JOBS_TABLE = "apscheduler_jobs"
#: The store lock that makes one scheduler per database.
LOCK_NAME = "scheduler"
#: arXiv categories read when a profile names none.
DEFAULT_CATEGORIES = ("cs.CV", "cs.CL", "cs.LG", "cs.AI")
#: After a failed ingestion, digest jobs try again at most this often (not at every digest).
INGEST_RETRY = dt.timedelta(minutes=30)
#: The file, in the output folder, recording when ingestion last ran (see `ensure_ingested`).
STATE_FILE = "schedule-state.json"

_UTC = ZoneInfo("UTC")
#: Scheduled ingestions never overlap one run inside a digest job.
_INGEST_LOCK = threading.Lock()


def schedule_settings(config: Config) -> ScheduleConfig:
    """The ``[schedule]`` section of `config`."""
    return config.schedule


# -- triggers ----------------------------------------------------------------------------------


class WallClockTrigger(BaseTrigger):  # type: ignore[misc]  # apscheduler has no type hints
    """Fire as `inner` does, but at most once per wall-clock time of `timezone`.

    When clocks go back an hour, times in that hour happen twice; APScheduler 3 fires at both
    (``30 2 * * *`` twice on the last Sunday of October in Berlin). Like cron, we keep the
    first. A time skipped when clocks go forward fires once, an hour later by the clock.
    """

    def __init__(self, inner: BaseTrigger, timezone: str) -> None:
        self.inner = inner
        self.timezone = timezone

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime | None:
        zone = ZoneInfo(self.timezone)
        fire: dt.datetime | None = self.inner.get_next_fire_time(previous_fire_time, now)
        while fire is not None and _repeated(_local(fire, zone)):
            fire = self.inner.get_next_fire_time(fire, fire)
        return fire

    def __str__(self) -> str:
        return f"{self.inner} (once per wall-clock time in {self.timezone})"

    def __repr__(self) -> str:
        return f"<WallClockTrigger {self.inner!r} in {self.timezone}>"


def _repeated(local: dt.datetime) -> bool:
    """Whether `local` is the second occurrence of a wall-clock time (clocks went back)."""
    return local.fold == 1 and local.utcoffset() != local.replace(fold=0).utcoffset()


def _local(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """`moment` on the wall clock of `zone`. Through UTC: `astimezone` to the zone a datetime
    already has returns it as it is, even a wall time that does not exist (02:30 when clocks
    jump from 02:00 to 03:00)."""
    return moment.astimezone(_UTC).astimezone(zone)


def schedule_trigger(cron: str, timezone: str) -> BaseTrigger:
    """The trigger of a job: standard cron in `timezone`, each wall-clock time at most once."""
    return WallClockTrigger(to_trigger(cron, timezone), timezone)


def latest_fire_time(trigger: BaseTrigger, now: dt.datetime) -> dt.datetime | None:
    """The last time `trigger` fired at or before `now` (None if not within four years)."""
    for back in (dt.timedelta(hours=1), dt.timedelta(days=1), dt.timedelta(days=8),
                 dt.timedelta(days=32), dt.timedelta(days=367), dt.timedelta(days=1462)):
        fire: dt.datetime | None = trigger.get_next_fire_time(None, now - back)
        if fire is None or fire > now:
            continue
        while True:
            following: dt.datetime | None = trigger.get_next_fire_time(fire, fire)
            if following is None or following > now:
                return fire
            fire = following
    return None


# -- what should be scheduled ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job as it should be in the store. Its trigger is identified by (cron, timezone),
    which are also in `kwargs`, so comparing with a stored job is exact."""

    id: str
    func: str
    name: str
    cron: str
    timezone: str
    kwargs: dict[str, Any]
    misfire_grace_time: int

    def trigger(self) -> BaseTrigger:
        return schedule_trigger(self.cron, self.timezone)


def default_sources(profiles: ProfileSet) -> list[str]:
    """The arXiv listing of the profiles' categories, and Hugging Face daily papers."""
    categories: set[str] = set()
    for profile in profiles.profiles:
        categories.update(profile.categories or DEFAULT_CATEGORIES)
    return [f"arxiv:{'+'.join(sorted(categories or DEFAULT_CATEGORIES))}", "hf:"]


def plan_jobs(
    profiles: ProfileSet, settings: ScheduleConfig, *, db_url: str, config_path: str | None,
    profiles_dir: str,
) -> tuple[list[JobSpec], set[str]]:
    """The jobs wanted for `profiles`, and the ids of jobs to keep as they are: those of
    profiles whose file is there but invalid right now (being edited, say)."""
    grace = max(1, int(settings.misfire_grace_hours * 3600))
    base = {"db_url": db_url, "config_path": config_path, "profiles_dir": profiles_dir}
    ingest = {
        "cron": settings.ingest_cron,
        "timezone": settings.ingest_timezone,
        "sources": list(settings.sources if settings.sources is not None
                        else default_sources(profiles)),
    }
    wanted = [JobSpec(
        INGEST_ID, INGEST_FUNC, f"ingest {', '.join(ingest['sources'])}",
        settings.ingest_cron, settings.ingest_timezone, {**base, **ingest}, grace,
    )]
    for profile in profiles.profiles:
        wanted.append(JobSpec(
            DIGEST_PREFIX + profile.name, DIGEST_FUNC, f"digest for {profile.name}",
            profile.schedule, profile.timezone,
            {**base, "profile": profile.name, "cron": profile.schedule,
             "timezone": profile.timezone, "ingest": ingest},
            grace,
        ))
    keep = {DIGEST_PREFIX + Path(error.path).stem for error in profiles.errors}
    return wanted, keep


@dataclass
class SyncReport:
    """What `sync_jobs` did, by job id."""

    added: list[str] = field(default_factory=list)
    #: Cron or time zone changed: a new trigger and next run time.
    rescheduled: list[str] = field(default_factory=list)
    #: Other arguments changed: updated in place, the next run time kept.
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.rescheduled or self.updated or self.removed)

    def __str__(self) -> str:
        parts = [f"{what} {', '.join(ids)}" for what, ids in (
            ("added", self.added), ("rescheduled", self.rescheduled),
            ("updated", self.updated), ("removed", self.removed),
        ) if ids]
        if self.unchanged:
            parts.append(f"{len(self.unchanged)} unchanged")
        return "; ".join(parts) or "no jobs"


def sync_jobs(
    scheduler: BaseScheduler, wanted: Sequence[JobSpec], *, keep: Collection[str] = (),
    jobstore: str = "default", now: dt.datetime | None = None,
) -> SyncReport:
    """Make the jobs of `jobstore` what `wanted` says, touching only what differs.

    `scheduler` must be started (paused is fine): a stopped one cannot read its stores.
    """
    now = now or utc_now()
    report = SyncReport()
    existing = {job.id: job for job in scheduler.get_jobs(jobstore=jobstore)}
    for spec in wanted:
        job = existing.get(spec.id)
        if job is None:
            scheduler.add_job(
                spec.func, spec.trigger(), id=spec.id, name=spec.name, kwargs=spec.kwargs,
                jobstore=jobstore, executor="default", misfire_grace_time=spec.misfire_grace_time,
                coalesce=True, max_instances=1,
            )
            report.added.append(spec.id)
        elif (job.func_ref, job.kwargs.get("cron"), job.kwargs.get("timezone")) != (
            spec.func, spec.cron, spec.timezone
        ):
            trigger = spec.trigger()
            scheduler.modify_job(
                spec.id, jobstore, func=spec.func, trigger=trigger, kwargs=spec.kwargs,
                name=spec.name, misfire_grace_time=spec.misfire_grace_time,
                next_run_time=trigger.get_next_fire_time(None, now),
            )
            report.rescheduled.append(spec.id)
        elif (job.kwargs, job.name, job.misfire_grace_time) != (
            spec.kwargs, spec.name, spec.misfire_grace_time
        ):
            scheduler.modify_job(spec.id, jobstore, kwargs=spec.kwargs, name=spec.name,
                                 misfire_grace_time=spec.misfire_grace_time)
            report.updated.append(spec.id)
        else:
            report.unchanged.append(spec.id)
    wanted_ids = {spec.id for spec in wanted}
    for job_id in existing:
        if job_id not in wanted_ids and job_id not in keep:
            scheduler.remove_job(job_id, jobstore)
            report.removed.append(job_id)
    return report


# -- the jobs (module level: the store keeps them by name) -------------------------------------


def _app(db_url: str, config_path: str | None, profiles_dir: str) -> DigestApp:
    return DigestApp(load_config(config_path), db_url, profiles_dir)


def run_ingest_job(*, db_url: str, config_path: str | None, profiles_dir: str, cron: str,
                   timezone: str, sources: list[str]) -> str:
    """The ``ingest`` job: ingest unless a digest job already did since this scheduled time."""
    try:
        app = _app(db_url, config_path, profiles_dir)
        results = ensure_ingested(app, {"cron": cron, "timezone": timezone, "sources": sources},
                                  now=app.clock())
    except DigestError as exc:
        _log("ingest", "failed", error=str(exc))
        return "failed"
    if results is None:
        return "skipped"
    return "ingested" if all(r.error is None for r in results) else "failed"


def run_digest_job(*, db_url: str, config_path: str | None, profiles_dir: str, profile: str,
                   cron: str, timezone: str, ingest: Mapping[str, Any]) -> str:
    """A ``digest:<profile>`` job: ingest first if due, then the profile's digest of today
    (in its time zone). Returns the run's status; expected failures are logged, not raised."""
    job = f"digest {profile}"
    try:
        app = _app(db_url, config_path, profiles_dir)
    except DigestError as exc:
        _log(job, "failed", error=str(exc))
        return "failed"
    try:
        ensure_ingested(app, ingest, now=app.clock())
    except DigestError as exc:  # the digest still goes out, with the papers already stored
        _log("ingest", "failed", error=str(exc))
    try:
        found = app.profiles([profile])
        if not found.profiles:
            problems = "; ".join(p for e in found.errors for p in e.problems)
            raise DigestError(f"profile {profile!r} is invalid: {problems}")
        (wanted,) = found.profiles
        day = app.clock().astimezone(ZoneInfo(wanted.timezone)).date()
        (result,) = app.run([wanted], day=day)
    except DigestError as exc:
        _log(job, "failed", error=str(exc))
        return "failed"
    _log_run(result, day)
    return result.status


def ensure_ingested(app: DigestApp, ingest: Mapping[str, Any], *,
                    now: dt.datetime) -> list[SourceResult] | None:
    """Ingest the configured sources unless that already succeeded after the latest scheduled
    ingestion time (or failed less than `INGEST_RETRY` ago). None when nothing was done."""
    with _INGEST_LOCK:
        due = latest_fire_time(schedule_trigger(ingest["cron"], ingest["timezone"]), now)
        state_path = app.out_dir / STATE_FILE
        state = _read_state(state_path)
        succeeded, tried = state.get("ingest_succeeded"), state.get("ingest_tried")
        if succeeded is not None and (due is None or succeeded >= due):
            logger.debug("ingest: up to date (last success %s)", succeeded)
            return None
        if tried is not None and due is not None and tried >= due and now - tried < INGEST_RETRY:
            logger.info("ingest: skipped, it failed at %s UTC; trying again after %s UTC",
                        f"{tried:%H:%M}", f"{tried + INGEST_RETRY:%H:%M}")
            return None
        today = now.astimezone(ZoneInfo(ingest["timezone"])).date()
        sources: list[Source] = []
        ok = True
        for spec in ingest["sources"]:
            try:
                sources.append(resolve(spec, today=today))
            except ValueError as exc:
                _log(f"ingest {spec}", "failed", error=str(exc))
                ok = False
        results = app.ingest(sources, today=today)
        for result in results:
            _log_ingest(result)
        ok = ok and all(r.error is None for r in results)
        state["ingest_tried"] = now
        if ok:
            state["ingest_succeeded"] = now
        _write_state(state_path, state)
        return results


def _read_state(path: Path) -> dict[str, dt.datetime]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {key: dt.datetime.fromisoformat(value) for key, value in data.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        logger.warning("%s: unreadable (%s); ingesting as if never done", path, exc)
        return {}


def _write_state(path: Path, state: Mapping[str, dt.datetime]) -> None:
    text = json.dumps({key: value.isoformat() for key, value in state.items()}, indent=1)
    try:
        write_atomically(path, text.encode("utf-8"))
    except OSError as exc:  # the papers are stored; at worst the next digest ingests again
        logger.warning("%s: cannot record the ingestion: %s", path, exc)


def _log(job: str, status: str, *, papers: int | None = None, error: str | None = None,
         detail: str = "", failed: bool = False) -> None:
    message = f"{job}: {status}"
    if papers is not None:
        message += f", {papers} papers"
    if detail:
        message += f" {detail}"
    if error:
        message += f" ({error})"
    level = logging.ERROR if failed or status == "failed" else logging.INFO
    logger.log(level, "%s", message,
               extra={"job": job, "status": status, "papers": papers, "error": error})


def _log_run(result: RunResult, day: dt.date) -> None:
    papers = len(result.papers) if result.status in ("sent", "empty") else None
    _log(f"digest {result.profile}", result.status, papers=papers, error=result.error,
         detail=f"for {day.isoformat()}", failed=not result.ok)


def _log_ingest(result: SourceResult) -> None:
    status = "failed" if result.error else "not modified" if result.not_modified else "ingested"
    detail = (f"({result.new} new, {result.updated} updated, {result.unchanged} unchanged, "
              f"{len(result.rejected)} rejected)")
    _log(f"ingest {result.source}", status, error=result.error,
         detail="" if result.error else detail)


# -- the scheduler ------------------------------------------------------------------------------


def _jobstore(db_url: str) -> SQLAlchemyJobStore:
    options: dict[str, Any] = {}
    if db_url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 30}  # wait for the digest store's writes
    return SQLAlchemyJobStore(url=db_url, tablename=JOBS_TABLE, engine_options=options)


@contextlib.contextmanager
def paused_scheduler(db_url: str) -> Iterator[BaseScheduler]:
    """A started but paused scheduler over the job store of `db_url`: it reads and edits the
    stored jobs and runs none. For syncing at start-up, ``--list``, and tests."""
    Store.open(db_url).close()  # creates the database (and its folder) like every command
    scheduler = BackgroundScheduler(jobstores={"default": _jobstore(db_url)}, timezone=_UTC)
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        _shut_down(scheduler, wait=False)


def _shut_down(scheduler: BaseScheduler, *, wait: bool) -> None:
    """Shut `scheduler` down without its last look for due jobs.

    APScheduler 3's loop processes due jobs once more after `shutdown` (paused or not): it
    submits them to the executor just shut down, which refuses, and advances their next run
    time, so the run is lost. With the job stores detached first, that pass finds nothing.
    """
    for alias in ("default", "internal"):
        with contextlib.suppress(KeyError):  # not in this scheduler
            scheduler.remove_jobstore(alias)
    with contextlib.suppress(Exception):  # SchedulerNotRunningError: already stopped
        scheduler.shutdown(wait=wait)


class JobInfo(NamedTuple):
    """A line of ``digest schedule --list``."""

    id: str
    description: str
    #: In the job's own time zone (the profile's); None when it will not run again.
    next_run: dt.datetime | None


def list_jobs(db_url: str, wanted: Sequence[JobSpec], *, keep: Collection[str] = (),
              now: dt.datetime | None = None) -> list[JobInfo]:
    """The wanted jobs with their next run time, as stored (what the scheduler will do), or
    as the trigger says for jobs not stored yet; then stored jobs that the next sync removes."""
    now = now or utc_now()
    with paused_scheduler(db_url) as scheduler:
        stored = {job.id: job for job in scheduler.get_jobs(jobstore="default")}
    lines: list[JobInfo] = []
    for spec in wanted:
        description = f"{spec.cron} ({spec.timezone}): {spec.name}"
        job = stored.get(spec.id)
        next_run: dt.datetime | None
        if job is None:
            next_run = spec.trigger().get_next_fire_time(None, now)
            description += " [added when the scheduler starts]"
        elif (job.kwargs.get("cron"), job.kwargs.get("timezone")) != (spec.cron, spec.timezone):
            next_run = spec.trigger().get_next_fire_time(None, now)
            description += " [rescheduled when the scheduler starts]"
        else:
            next_run = job.next_run_time
            if next_run is not None and next_run <= now:
                late = now - next_run
                description += (" [missed: runs when the scheduler starts]"
                                if late.total_seconds() <= spec.misfire_grace_time
                                else " [missed too long ago: skipped; the next one covers it]")
        zone = ZoneInfo(spec.timezone)
        lines.append(JobInfo(spec.id, description, _local(next_run, zone) if next_run else None))
    wanted_ids = {spec.id for spec in wanted}
    for job_id, job in sorted(stored.items()):
        if job_id not in wanted_ids:
            note = "kept: its profile is invalid" if job_id in keep else "removed at next sync"
            zone = ZoneInfo(job.kwargs.get("timezone", "UTC"))
            nrt = job.next_run_time
            lines.append(JobInfo(job_id, f"{job.name} [{note}]",
                                 _local(nrt, zone) if nrt else None))
    return lines


class Scheduler:
    """The daemon: a `BlockingScheduler` over the database's job store, kept in sync with the
    profiles folder. `run` blocks until `stop` (or SIGTERM/SIGINT, which call it); an
    instance runs once. SIGHUP re-reads the profiles at once."""

    def __init__(self, *, db_url: str, profiles_dir: str, config_path: str | None = None,
                 settings: ScheduleConfig | None = None, clock: Clock = utc_now) -> None:
        self.db_url = db_url
        self.profiles_dir = profiles_dir
        self.config_path = config_path
        #: Fixed settings; None reads ``[schedule]`` of the configuration at every sync.
        self.settings = settings
        self.clock = clock
        self._aps: BlockingScheduler | None = None
        self._store: Store | None = None
        self._sync_lock = threading.Lock()
        self._stop_lock = threading.Lock()
        self._stop_requested = False
        self._stopper: threading.Thread | None = None
        self._fingerprint: tuple[Any, ...] | None = None

    @classmethod
    def for_app(cls, app: DigestApp, *, config_path: str | None,
                settings: ScheduleConfig | None = None) -> Scheduler:
        return cls(db_url=app.db_url, profiles_dir=app.profiles_dir, config_path=config_path,
                   settings=settings, clock=app.clock)

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
                jobstores={"default": _jobstore(self.db_url), "internal": MemoryJobStore()},
                executors={"default": ThreadPoolExecutor(1), "internal": ThreadPoolExecutor(1)},
                job_defaults={"coalesce": True, "max_instances": 1,
                              "misfire_grace_time": max(1, int(settings.misfire_grace_hours
                                                                * 3600))},
                timezone=_UTC,
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
        _shut_down(aps, wait=True)

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
