"""What the jobs do: ingest when due, then digests; each run logged on one line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..app import Clock, DigestApp, utc_now
from ..config import Config, ScheduleConfig, load_config
from ..deliver import RunResult
from ..errors import DigestError
from ..fsutil import write_atomically
from ..ingest import Source
from ..modelstore import ModelCache
from ..profiles import Profile, ProfileSet
from ..sources.resolve import resolve
from ..types import SourceResult
from .triggers import latest_fire_time, schedule_trigger

logger = logging.getLogger("digest.schedule")

#: After a failed ingestion, digest jobs try again at most this often (not at every digest).
INGEST_RETRY = dt.timedelta(minutes=30)
#: The file, in the output folder, recording when ingestion last ran (see `ensure_ingested`).
STATE_FILE = "schedule-state.json"

#: Scheduled ingestions never overlap one run inside a digest job.
_INGEST_LOCK = threading.Lock()


def schedule_settings(config: Config) -> ScheduleConfig:
    """The ``[schedule]`` section of `config`."""
    return config.schedule


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


def run_digest_batch(jobs: Sequence[Mapping[str, Any]], *, clock: Clock = utc_now,
                     models: ModelCache | None = None) -> dict[str, str]:
    """Digest jobs due together (their kwargs), as one batch: ingest first if due, then every
    profile's digest of its today through one `DigestApp.run` per day (the profiles' time zones
    may be on different days): one model, one chunked ranking, one SMTP connection per run.
    Returns each profile's status; expected failures are logged, not raised."""
    logger.info("batch: %d digests due", len(jobs))
    statuses: dict[str, str] = {}
    for (db_url, config_path, profiles_dir), group in group_jobs(jobs).items():
        names = [job["profile"] for job in group]
        try:
            app = DigestApp(load_config(config_path), db_url, profiles_dir, clock=clock,
                            models=models)
        except DigestError as exc:
            for name in names:
                _log(f"digest {name}", "failed", error=str(exc))
                statuses[name] = "failed"
            continue
        try:
            ensure_ingested(app, group[0]["ingest"], now=app.clock())
        except DigestError as exc:  # the digests still go out, with the papers already stored
            _log("ingest", "failed", error=str(exc))
        by_day = due_days(app, names, statuses)
        for day, profiles in sorted(by_day.items()):
            try:
                results = app.run(profiles, day=day)
            except DigestError as exc:
                for profile in profiles:
                    _log(f"digest {profile.name}", "failed", error=str(exc))
                    statuses[profile.name] = "failed"
                continue
            for result in results:
                _log_run(result, day)
                statuses[result.profile] = result.status
    return statuses


def group_jobs(jobs: Sequence[Mapping[str, Any]]
               ) -> dict[tuple[str, str | None, str], list[Mapping[str, Any]]]:
    """Digest jobs' kwargs by (database, configuration, profiles folder): one app each."""
    groups: dict[tuple[str, str | None, str], list[Mapping[str, Any]]] = {}
    for job in jobs:
        groups.setdefault((job["db_url"], job["config_path"], job["profiles_dir"]),
                          []).append(job)
    return groups


def due_days(app: DigestApp, names: Sequence[str], statuses: dict[str, str],
             found: ProfileSet | None = None) -> dict[dt.date, list[Profile]]:
    """The profiles `names` of `found` (default: `app`'s folder) by their digest day (today in
    each one's time zone); a missing or invalid one is logged and marked failed in
    `statuses`."""
    found = app.profiles() if found is None else found
    by_name = {p.name: p for p in found.profiles}
    problems = {Path(e.path).stem: "; ".join(e.problems) for e in found.errors}
    by_day: dict[dt.date, list[Profile]] = {}
    for name in names:
        profile = by_name.get(name)
        if profile is None:
            error = (f"profile {name!r} is invalid: {problems[name]}" if name in problems
                     else f"no profile named {name!r} in {app.profiles_dir}")
            _log(f"digest {name}", "failed", error=error)
            statuses[name] = "failed"
            continue
        day = app.clock().astimezone(ZoneInfo(profile.timezone)).date()
        by_day.setdefault(day, []).append(profile)
    return by_day


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
