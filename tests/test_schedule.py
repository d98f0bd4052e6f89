"""The scheduler: job sync against a real job store, real `BlockingScheduler` runs delivering to a
loopback SMTP server, restarts, the one-scheduler lock, SIGTERM, and cron across DST changes.

Runs use the real cron triggers; only a job's pending run time is moved a second or two ahead
(or into the past, for a run missed while the machine was down), as the store would hold it.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from digest.app import DigestApp
from digest.cli import sample_path
from digest.config import Config, load_config
from digest.errors import StoreLockedError
from digest.schedule import (
    STATE_FILE,
    ScheduleConfig,
    Scheduler,
    ensure_ingested,
    latest_fire_time,
    paused_scheduler,
    schedule_trigger,
)
from digest.sources.resolve import FileSource
from digest.store import Store

UTC = dt.UTC
FRESH = [
    ("2611.00001", "Self-supervised video representation learning by predicting playback speed",
     "We learn video representations by predicting the playback speed of clips."),
    ("2611.00002", "Contrastive learning of video and language",
     "Aligning video clips with their captions improves video retrieval."),
]


def profile_yaml(schedule: str = "0 7 * * *", timezone: str = "Europe/Berlin",
                 interest: str = "self-supervised video representation learning") -> str:
    return (f'version: 1\nemail: ada@example.org\ntimezone: {timezone}\nschedule: "{schedule}"\n'
            f"min_relevance: 0.0\ninterests:\n  - {interest}\n")


@dataclass
class Site:
    """A working folder: database, profiles, digest.toml, and a file of fresh papers."""

    root: Path

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root}/digest.sqlite"

    @property
    def profiles(self) -> Path:
        return self.root / "profiles"

    @property
    def config(self) -> Path:
        return self.root / "digest.toml"

    @property
    def papers(self) -> Path:
        return self.root / "fresh.jsonl"

    def write_profile(self, name: str, text: str) -> None:
        self.profiles.mkdir(exist_ok=True)
        (self.profiles / f"{name}.yaml").write_text(text)

    def scheduler(self, **settings: Any) -> Scheduler:
        settings.setdefault("sources", [str(self.papers)])
        return Scheduler(db_url=self.db_url, profiles_dir=str(self.profiles),
                         config_path=str(self.config), settings=ScheduleConfig(**settings))

    def set_next_run(self, job_id: str, when: dt.datetime) -> None:
        """Move a stored job's pending run, as if the store had held that time."""
        with paused_scheduler(self.db_url) as aps:
            aps.modify_job(job_id, "default", next_run_time=when)

    def next_run(self, job_id: str) -> dt.datetime | None:
        with paused_scheduler(self.db_url) as aps:
            job = aps.get_job(job_id)
            return None if job is None else job.next_run_time  # type: ignore[no-any-return]


def make_site(root: Path, *, smtp_port: int | None = None) -> Site:
    site = Site(root)
    smtp = f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\n'
    site.config.write_text(
        f'out_dir = "{root}/out"\nprofiles_dir = "{root}/profiles"\n'
        f'database = "{site.db_url}"\n' + (smtp if smtp_port else "")
    )
    site.papers.write_text("".join(
        f'{{"id": "{key}", "title": "{title}", "abstract": "{abstract}", "authors": ["A. B"]}}\n'
        for key, title, abstract in FRESH
    ))
    site.write_profile("ada", profile_yaml())
    return site


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the bundled sample, with its text model fitted (done once: ~2 s)."""
    root = tmp_path_factory.mktemp("template")
    app = DigestApp(Config(out_dir=str(root / "out")), f"sqlite:///{root}/digest.sqlite",
                    str(root / "profiles"))
    app.ingest([FileSource(sample_path(), "jsonl")])
    with app.open_store() as store:
        app.model(store)
    return root


@pytest.fixture
def mail_site(tmp_path: Path, template: Path, smtp_server: Any) -> Site:
    """A site with the sample already ingested, sending to the loopback SMTP server."""
    shutil.copy(template / "digest.sqlite", tmp_path / "digest.sqlite")
    shutil.copytree(template / "out", tmp_path / "out")
    return make_site(tmp_path, smtp_port=smtp_server.port)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


@pytest.fixture
def runs(caplog: pytest.LogCaptureFixture) -> Callable[[], list[tuple[str, str]]]:
    """(job, status) of each run logged by digest.schedule so far, in order."""
    caplog.set_level(logging.INFO, logger="digest.schedule")

    def logged() -> list[tuple[str, str]]:
        return [(r.job, r.status) for r in caplog.records
                if r.name == "digest.schedule" and hasattr(r, "status")]

    return logged


def wait_for(condition: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


@contextmanager
def running(scheduler: Scheduler) -> Iterator[None]:
    """`scheduler.run()` in a thread (no signal handlers there); stopped on leaving."""
    failures: list[BaseException] = []

    def target() -> None:
        try:
            scheduler.run()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    try:
        yield
    finally:
        scheduler.stop()
        thread.join(30)
    assert not thread.is_alive()
    if failures:
        raise failures[0]


def soon(seconds: float) -> dt.datetime:
    return dt.datetime.now(UTC) + dt.timedelta(seconds=seconds)


# --- sync --------------------------------------------------------------------------------------


def test_sync_adds_reschedules_and_removes_and_leaves_the_rest_alone(site: Site) -> None:
    site.write_profile("bob", profile_yaml("0 8 * * mon-fri", "America/New_York"))
    site.write_profile("cyd", profile_yaml())
    scheduler = site.scheduler()
    report = scheduler.sync()
    assert report and sorted(report.added) == ["digest:ada", "digest:bob", "digest:cyd", "ingest"]

    missed = dt.datetime.now(UTC) - dt.timedelta(hours=2)
    site.set_next_run("digest:bob", missed)  # a run pending since the machine went down
    ada_before = site.next_run("digest:ada")
    site.write_profile("ada", profile_yaml("30 6 * * *"))  # new time: rescheduled
    site.write_profile("bob", profile_yaml("0 8 * * mon-fri", "America/New_York",
                                           interest="robot grasping"))  # same schedule
    (site.profiles / "cyd.yaml").unlink()
    site.write_profile("dan", profile_yaml())

    report = scheduler.sync()
    assert report is not None
    assert (report.added, report.rescheduled, report.removed) == (
        ["digest:dan"], ["digest:ada"], ["digest:cyd"])
    assert sorted(report.unchanged) == ["digest:bob", "ingest"]
    assert site.next_run("digest:bob") == missed  # the pending run survives
    ada_after = site.next_run("digest:ada")
    assert ada_after != ada_before and ada_after is not None
    assert ada_after.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") == "06:30"


def test_an_invalid_profile_keeps_its_job_until_fixed_or_deleted(site: Site) -> None:
    scheduler = site.scheduler()
    scheduler.sync()
    site.write_profile("ada", "version: 1\nschedule: [not, cron\n")
    report = scheduler.sync()
    assert report is not None and not report.removed
    assert site.next_run("digest:ada") is not None


def test_new_arguments_update_jobs_in_place_keeping_pending_runs(site: Site) -> None:
    site.scheduler().sync()
    missed = dt.datetime.now(UTC) - dt.timedelta(hours=1)
    site.set_next_run("digest:ada", missed)
    report = site.scheduler(sources=["arxiv:math.ST", "hf:"]).sync()
    assert report is not None and sorted(report.updated) == ["digest:ada", "ingest"]
    assert site.next_run("digest:ada") == missed


def test_default_sources_are_the_profiles_categories_and_hugging_face(site: Site) -> None:
    site.write_profile("bob", profile_yaml() + "categories: [math.ST, cs.CV]\n")
    wanted, _ = site.scheduler(sources=None).plan()
    ingest = next(spec for spec in wanted if spec.id == "ingest")
    # ada names no category: she reads the default ones.
    assert ingest.kwargs["sources"] == ["arxiv:cs.AI+cs.CL+cs.CV+cs.LG+math.ST", "hf:"]


def test_a_missing_profiles_folder_changes_nothing(site: Site) -> None:
    scheduler = site.scheduler()
    scheduler.sync()
    shutil.rmtree(site.profiles)
    with pytest.raises(Exception, match="profiles folder is missing"):
        scheduler.sync()
    assert site.next_run("digest:ada") is not None


# --- running for real --------------------------------------------------------------------------


def test_ingestion_due_with_a_digest_runs_first_and_once_then_the_digest_is_sent(
    mail_site: Site, smtp_server: Any, runs: Callable[[], list[tuple[str, str]]]
) -> None:
    scheduler = mail_site.scheduler()
    scheduler.sync()
    due = soon(1.5)
    mail_site.set_next_run("ingest", due)
    mail_site.set_next_run("digest:ada", due)
    with running(scheduler):
        wait_for(lambda: ("digest ada", "sent") in runs())
    assert runs() == [(f"ingest {mail_site.papers}", "ingested"), ("digest ada", "sent")]
    (message,) = smtp_server.messages
    assert message.rcpt_tos == ["ada@example.org"]
    day = dt.datetime.now(ZoneInfo("Europe/Berlin")).date()
    markdown = (mail_site.root / "out" / "ada" / f"{day}.md").read_text()
    assert FRESH[0][1] in markdown  # ingested by this very run


def test_a_run_missed_while_down_goes_out_once_after_restart(
    mail_site: Site, smtp_server: Any, runs: Callable[[], list[tuple[str, str]]]
) -> None:
    mail_site.scheduler().sync()
    mail_site.set_next_run("digest:ada", dt.datetime.now(UTC) - dt.timedelta(hours=2))
    with running(mail_site.scheduler()):  # start-up syncs again: the pending run is kept
        wait_for(lambda: ("digest ada", "sent") in runs())
    assert len(smtp_server.messages) == 1
    next_run = mail_site.next_run("digest:ada")
    assert next_run is not None and next_run > dt.datetime.now(UTC)

    with running(mail_site.scheduler()):
        time.sleep(1.0)
    assert [run for run in runs() if run[0] == "digest ada"] == [("digest ada", "sent")]
    assert len(smtp_server.messages) == 1


def test_a_run_missed_beyond_the_grace_time_is_skipped(
    site: Site, runs: Callable[[], list[tuple[str, str]]]
) -> None:
    site.scheduler().sync()
    site.set_next_run("digest:ada", dt.datetime.now(UTC) - dt.timedelta(minutes=5))
    with running(site.scheduler(misfire_grace_hours=0.001)):  # 3 seconds
        wait_for(lambda: ("digest:ada", "missed") in runs(), timeout=10)
    assert not [run for run in runs() if run[0] == "digest ada"]


def test_a_crashing_job_is_logged_and_the_daemon_goes_on(
    site: Site, runs: Callable[[], list[tuple[str, str]]]
) -> None:
    # A broken template in the configured template folder: every digest fails to render;
    # the scheduler logs it and runs the next job.
    broken = site.root / "templates"
    broken.mkdir()
    (broken / "email.html").write_text("{% if %}broken{% endif %}\n")
    (broken / "digest.md").write_text("{% if %}broken{% endif %}\n")
    site.config.write_text(site.config.read_text() + f'templates_dir = "{broken}"\n')
    site.write_profile("bob", profile_yaml())
    scheduler = site.scheduler()
    scheduler.sync()
    site.set_next_run("digest:ada", soon(0.5))
    site.set_next_run("digest:bob", soon(1.0))
    with running(scheduler):
        wait_for(lambda: len([r for r in runs() if r[1] == "failed"]) >= 2)
        assert scheduler._aps is not None and scheduler._aps.running
    failed = {job for job, status in runs() if status == "failed"}
    assert {"ada", "bob"} <= {job.split(":")[-1].split()[-1] for job in failed}


def _run_in_child(scheduler: Scheduler) -> None:  # pragma: no cover - runs in a child process
    logging.basicConfig(level=logging.INFO)
    scheduler.run()


def test_one_scheduler_per_database_and_sigterm_finishes_the_job_in_flight(
    mail_site: Site, smtp_server: Any
) -> None:
    smtp_server.delay = 0.5  # each SMTP reply: the job stays in flight for a while
    scheduler = mail_site.scheduler()
    scheduler.sync()
    mail_site.set_next_run("digest:ada", soon(0.5))
    # A forked child is a real daemon (signal handlers in its main thread) without paying
    # for a fresh interpreter's imports.
    child = multiprocessing.get_context("fork").Process(target=_run_in_child, args=(scheduler,))
    child.start()
    try:
        wait_for(lambda: smtp_server.connections >= 1, timeout=30)  # the digest is being sent

        refused: list[BaseException] = []
        second = threading.Thread(target=lambda: _capture(mail_site.scheduler().run, refused))
        second.start()
        second.join(20)
        assert len(refused) == 1 and isinstance(refused[0], StoreLockedError)
        assert f"pid {child.pid}" in str(refused[0])
        assert "a scheduler is already running on this database" in str(refused[0])

        assert child.pid is not None
        os.kill(child.pid, signal.SIGTERM)
        child.join(30)
    finally:
        if child.is_alive():  # pragma: no cover - only when the test failed
            child.kill()
    assert child.exitcode == 0
    assert len(smtp_server.messages) == 1  # the job in flight finished before the exit
    with Store.open(mail_site.db_url) as store:  # and the lock was released
        store.acquire_lock("scheduler", now=dt.datetime.now(UTC))


def _capture(call: Callable[[], None], into: list[BaseException]) -> None:
    try:
        call()
    except BaseException as exc:
        into.append(exc)


# --- ingestion before digests ------------------------------------------------------------------


def test_ingestion_happens_once_per_scheduled_time(site: Site) -> None:
    app = DigestApp(load_config(site.config), site.db_url, str(site.profiles))
    ingest = {"cron": "30 20 * * 0-4", "timezone": "America/New_York",
              "sources": [str(site.papers)]}
    ny = ZoneInfo("America/New_York")
    monday_night = dt.datetime(2026, 11, 23, 20, 31, tzinfo=ny)
    assert ensure_ingested(app, ingest, now=monday_night) is not None  # never done: ingest
    assert ensure_ingested(app, ingest, now=monday_night + dt.timedelta(hours=9)) is None
    tuesday_night = dt.datetime(2026, 11, 24, 20, 30, 5, tzinfo=ny)
    results = ensure_ingested(app, ingest, now=tuesday_night)  # the schedule fired since
    assert results is not None and results[0].unchanged == len(FRESH)
    assert (site.root / "out" / STATE_FILE).exists()


def test_a_failed_ingestion_is_retried_later_not_at_every_digest(site: Site) -> None:
    app = DigestApp(load_config(site.config), site.db_url, str(site.profiles))
    ingest = {"cron": "30 20 * * 0-4", "timezone": "America/New_York",
              "sources": [str(site.root / "missing.jsonl")]}
    now = dt.datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
    results = ensure_ingested(app, ingest, now=now)
    assert results is not None and results[0].error
    assert ensure_ingested(app, ingest, now=now + dt.timedelta(minutes=5)) is None
    assert ensure_ingested(app, ingest, now=now + dt.timedelta(minutes=31)) is not None


def test_latest_fire_time() -> None:
    trigger = schedule_trigger("30 20 * * 0-4", "America/New_York")
    saturday = dt.datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert latest_fire_time(trigger, saturday) == dt.datetime(
        2026, 11, 26, 20, 30, tzinfo=ZoneInfo("America/New_York"))  # Thursday


# --- cron meaning and DST ----------------------------------------------------------------------


def fire_times(cron: str, timezone: str, start: dt.datetime,
               end: dt.datetime) -> list[dt.datetime]:
    trigger = schedule_trigger(cron, timezone)
    times: list[dt.datetime] = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire < end:
        times.append(fire)
        fire = trigger.get_next_fire_time(fire, fire)
    return times


@pytest.mark.parametrize("timezone", ["Europe/Berlin", "America/New_York"])
@pytest.mark.parametrize("cron", ["30 7 * * *", "30 2 * * *", "30 1 * * *", "0 2 * * *"])
@pytest.mark.parametrize("month", [(3, 1), (10, 18)])
def test_exactly_one_run_per_day_across_dst_changes(
    timezone: str, cron: str, month: tuple[int, int]
) -> None:
    # 2:30 does not exist on the spring-forward day in both zones; in the fall 2:30 happens
    # twice in Berlin, 1:30 twice in New York. (APScheduler alone fires twice then.)
    zone = ZoneInfo(timezone)
    start = dt.datetime(2026, *month, tzinfo=zone)
    days = 21
    times = fire_times(cron, timezone, start, start + dt.timedelta(days=days))
    per_day = Counter(t.astimezone(zone).date() for t in times)
    assert per_day == {start.date() + dt.timedelta(days=n): 1 for n in range(days)}


def test_a_time_skipped_by_spring_forward_fires_an_hour_later() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    (fire,) = fire_times("30 2 * * *", "Europe/Berlin", dt.datetime(2026, 3, 29, tzinfo=berlin),
                         dt.datetime(2026, 3, 30, tzinfo=berlin))
    assert fire.astimezone(UTC).astimezone(berlin).strftime("%H:%M %Z") == "03:30 CEST"


@pytest.mark.parametrize(("cron", "weekdays"), [
    ("0 7 * * 0", {"Sun"}),
    ("0 7 * * 7", {"Sun"}),
    ("0 7 * * 1-5", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
    ("0 7 * * sat,sun", {"Sat", "Sun"}),
])
def test_days_of_the_week_have_their_cron_meaning(cron: str, weekdays: set[str]) -> None:
    start = dt.datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
    times = fire_times(cron, "UTC", start, start + dt.timedelta(days=14))
    assert {t.strftime("%a") for t in times} == weekdays
    assert len(times) == 2 * len(weekdays)


# --- --list --------------------------------------------------------------------------------------


def test_list_shows_next_runs_in_each_jobs_time_zone(site: Site) -> None:
    site.write_profile("bob", profile_yaml("0 8 * * mon-fri", "Asia/Tokyo"))
    scheduler = site.scheduler()
    before = {line.id: line for line in scheduler.list_jobs()}
    assert "added when the scheduler starts" in before["digest:ada"].description

    scheduler.sync()
    site.set_next_run("digest:bob", dt.datetime.now(UTC) - dt.timedelta(hours=1))
    lines = {line.id: line for line in scheduler.list_jobs()}
    assert list(lines) == ["ingest", "digest:ada", "digest:bob"]
    ada, bob, ingest = lines["digest:ada"], lines["digest:bob"], lines["ingest"]
    assert ada.description == "0 7 * * * (Europe/Berlin): digest for ada"
    assert ada.next_run is not None and ada.next_run.strftime("%H:%M") == "07:00"
    assert str(ada.next_run.tzinfo) == "Europe/Berlin"
    assert ingest.next_run is not None and str(ingest.next_run.tzinfo) == "America/New_York"
    assert ingest.next_run.strftime("%H:%M") == "20:30"
    assert "missed: runs when the scheduler starts" in bob.description
    assert bob.next_run is not None and str(bob.next_run.tzinfo) == "Asia/Tokyo"
