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
builds its own `DigestApp` and so sees the current configuration and profile. The names stored
are ``digest.schedule:run_digest_job`` and ``...:run_ingest_job``: this package exports them.

The parts: `triggers` (cron in a time zone, DST), `jobs` (what should be stored, sync, list),
`runs` (what a job does), `batch` (digests due together run as one batch), `daemon` (the
`Scheduler`).
"""

from __future__ import annotations

from ..config import ScheduleConfig
from .daemon import LOCK_NAME, Scheduler
from .jobs import (
    DIGEST_FUNC,
    DIGEST_PREFIX,
    INGEST_FUNC,
    INGEST_ID,
    JobInfo,
    JobSpec,
    SyncReport,
    default_sources,
    list_jobs,
    paused_scheduler,
    plan_jobs,
    sync_jobs,
)
from .runs import (
    INGEST_RETRY,
    STATE_FILE,
    ensure_ingested,
    run_digest_job,
    run_ingest_job,
    schedule_settings,
)
from .triggers import WallClockTrigger, latest_fire_time, schedule_trigger

__all__ = [
    "DIGEST_FUNC",
    "DIGEST_PREFIX",
    "INGEST_FUNC",
    "INGEST_ID",
    "INGEST_RETRY",
    "LOCK_NAME",
    "STATE_FILE",
    "JobInfo",
    "JobSpec",
    "ScheduleConfig",
    "Scheduler",
    "SyncReport",
    "WallClockTrigger",
    "default_sources",
    "ensure_ingested",
    "latest_fire_time",
    "list_jobs",
    "paused_scheduler",
    "plan_jobs",
    "run_digest_job",
    "run_ingest_job",
    "schedule_settings",
    "schedule_trigger",
    "sync_jobs",
]
