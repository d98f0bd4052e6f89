"""The stored jobs: what should be scheduled, syncing the job store with it, listing it."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger

from ..app import utc_now
from ..config import ScheduleConfig
from ..profiles import ProfileSet
from ..store import Store
from ..store.backend import create_engine, parse_url
from .triggers import UTC, local_time, schedule_trigger

logger = logging.getLogger("digest.schedule")

INGEST_ID = "ingest"
DIGEST_PREFIX = "digest:"
DIGEST_FUNC = "digest.schedule:run_digest_job"
INGEST_FUNC = "digest.schedule:run_ingest_job"
JOBS_TABLE = "apscheduler_jobs"
#: arXiv categories read when a profile names none.
DEFAULT_CATEGORIES = ("cs.CV", "cs.CL", "cs.LG", "cs.AI")
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


# -- the scheduler ------------------------------------------------------------------------------


def jobstore(db_url: str) -> SQLAlchemyJobStore:
    # The store's own engine settings: on SQLite a busy timeout (wait for the digest store's
    # writes) and synchronous=NORMAL, without which each job's next run time stored when it
    # fires costs a disk flush (30 ms: most of handing 1,000 due jobs to the executor).
    return SQLAlchemyJobStore(engine=create_engine(parse_url(db_url)), tablename=JOBS_TABLE)


@contextlib.contextmanager
def paused_scheduler(db_url: str) -> Iterator[BaseScheduler]:
    """A started but paused scheduler over the job store of `db_url`: it reads and edits the
    stored jobs and runs none. For syncing at start-up, ``--list``, and tests."""
    Store.open(db_url).close()  # creates the database (and its folder) like every command
    scheduler = BackgroundScheduler(jobstores={"default": jobstore(db_url)}, timezone=UTC)
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        shut_down(scheduler, wait=False)


def shut_down(scheduler: BaseScheduler, *, wait: bool) -> None:
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
        lines.append(JobInfo(spec.id, description,
                             local_time(next_run, zone) if next_run else None))
    wanted_ids = {spec.id for spec in wanted}
    for job_id, job in sorted(stored.items()):
        if job_id not in wanted_ids:
            note = "kept: its profile is invalid" if job_id in keep else "removed at next sync"
            zone = ZoneInfo(job.kwargs.get("timezone", "UTC"))
            nrt = job.next_run_time
            lines.append(JobInfo(job_id, f"{job.name} [{note}]",
                                 local_time(nrt, zone) if nrt else None))
    return lines
