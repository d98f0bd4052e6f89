"""The scheduler's tick in queue mode (``digest schedule --queue``): defer, do not deliver.

The same triggers, time zones and missed-run rules as the in-process scheduler (`batch` hands
over every digest due in a pass); instead of delivering them, the tick ingests when due, syncs
the profiles folder into the store (workers on other machines read it there) and defers the
due digests as shard jobs (`digest.queue`), which `digest worker` processes run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..app import Clock, DigestApp, utc_now
from ..config import load_config
from ..errors import DigestError
from ..profiles import ProfileSet
from ..profiles.sync import SyncReport, stored_profiles, sync_profiles
from ..queue import defer_digests
from ..store import Store
from .runs import _log, due_days, ensure_ingested, group_jobs

logger = logging.getLogger("digest.schedule")


def defer_batch(jobs: Sequence[Mapping[str, Any]], *, clock: Clock = utc_now) -> dict[str, str]:
    """Digest jobs due together (their kwargs), deferred to the queue: ingest first if due,
    sync the profiles, then shard jobs for every profile's digest of its today. Returns each
    profile's status (``queued`` or ``failed``); failures are logged, not raised."""
    statuses: dict[str, str] = {}
    for (db_url, config_path, profiles_dir), group in group_jobs(jobs).items():
        names = [job["profile"] for job in group]
        try:
            app = DigestApp(load_config(config_path), db_url, profiles_dir, clock=clock)
            try:
                ensure_ingested(app, group[0]["ingest"], now=app.clock())
            except DigestError as exc:  # the digests still go out, with the papers stored
                _log("ingest", "failed", error=str(exc))
            with app.open_store() as store:
                # Synced first, then read from the store: only changed files are parsed.
                report = sync_profiles(store, profiles_dir, now=app.clock())
                days = _due_days(app, store, names, report, statuses)
                deferred = defer_digests(app, store, days)
        except DigestError as exc:
            for name in names:
                _log(f"digest {name}", "failed", error=str(exc))
                statuses[name] = "failed"
            continue
        for name in days:
            statuses[name] = "queued"
        logger.info("tick: %d digests queued in %d shard jobs%s; profiles synced: %d new, "
                    "%d changed, %d removed", len(days), deferred.shards,
                    f" after a fit ({deferred.fit})" if deferred.fit else "",
                    len(report.added), len(report.changed), len(report.removed))
    return statuses


def _due_days(app: DigestApp, store: Store, names: Sequence[str], synced: SyncReport,
              statuses: dict[str, str]) -> dict[str, dt.date]:
    """Each synced profile among `names` with its digest day (today in its time zone); the
    others are logged and marked failed in `statuses`. A profile whose file stopped validating
    goes on with its last good version (the sync logged why)."""
    for invalid in synced.errors:
        for line in invalid.problems:
            logger.warning("invalid profile: %s", line)
    stored = stored_profiles(store, names)
    found = ProfileSet(stored.profiles, (*stored.errors, *synced.errors), stored.paths)
    by_day = due_days(app, names, statuses, found)
    return {p.name: day for day, profiles in by_day.items() for p in profiles}
