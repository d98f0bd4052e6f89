"""The queue: claims, leases, the shared rate and synced profiles in the store (both backends),
and the workers end to end on a real PostgreSQL delivering to a real SMTP server on loopback.

The chaos test (workers killed at random, connections terminated, SMTP 4xx) is
tests/test_queue_chaos.py.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from smtp_server import RecordingServer
from stores import Backend, query

from digest.app import DigestApp
from digest.cli import main
from digest.config import Config, QueueConfig
from digest.mailer import SmtpSettings, SmtpTransport
from digest.modelstore import MODEL_VERSION, ModelCache, model_dir
from digest.profiles import load_profiles
from digest.profiles.sync import stored_profiles, sync_profiles
from digest.queue import QueueContext, queue_run, run_worker
from digest.sources.resolve import FileSource, sample_path
from digest.store import Store

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "profiles"
T0 = dt.datetime(2026, 7, 1, 7, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 7, 1)


def _pending(store: Store, profile: str, key: str = "2026-07-01") -> int:
    (row,) = store.fill_claims([{"profile": profile, "key": key, "covered_to": DAY,
                                 "status": "pending", "message_id": f"<{profile}@x>",
                                 "message": b"bytes", "markdown": None, "items": []}],
                               owner="a", now=T0)
    return row.id


# -- claims and leases (both backends) ------------------------------------------------------------


def test_a_digest_is_claimed_by_one_owner_until_its_lease_passes(store_url: str) -> None:
    later = T0 + dt.timedelta(minutes=10)
    with Store.open(store_url) as store:
        assert store.claim_deliveries(["ada", "ben"], "2026-07-01", owner="a", until=later,
                                      now=T0) == ["ada", "ben"]
        # Another owner gets only what nobody holds; the holder claiming again keeps its own.
        assert store.claim_deliveries(["ben", "cara"], "2026-07-01", owner="b", until=later,
                                      now=T0) == ["cara"]
        assert store.claim_deliveries(["ada"], "2026-07-01", owner="a", until=later,
                                      now=T0) == ["ada"]
        # A claimed digest does not count as covered (the next ranking starts where it did).
        assert store.last_covered(["ada", "ben", "cara"]) == {}
        # The lease passed: "b" takes the claims over, and "a" can no longer fill them.
        after = later + dt.timedelta(seconds=1)
        assert store.claim_deliveries(["ada", "ben"], "2026-07-01", owner="b",
                                      until=after + dt.timedelta(minutes=5),
                                      now=after) == ["ada", "ben"]
        row = {"profile": "ada", "key": "2026-07-01", "covered_to": DAY, "status": "pending",
               "message_id": "<m@x>", "message": b"m", "markdown": None,
               "items": [{"pid": 1, "key": "k"}]}
        assert store.fill_claims([row], owner="a", now=after) == []
        (filled,) = store.fill_claims([row], owner="b", now=after)
        assert (filled.status, filled.message, filled.pids) == ("pending", b"m", (1,))
        # A digest that is pending (or sent) is never claimed again, lease or not.
        far = after + dt.timedelta(days=1)
        assert store.claim_deliveries(["ada"], "2026-07-01", owner="c", until=far,
                                      now=far) == []
        # Given up, a claim can be taken by anyone at once.
        store.release_claims(["ben"], "2026-07-01", owner="b")
        assert store.claim_deliveries(["ben"], "2026-07-01", owner="c", until=far,
                                      now=after) == ["ben"]


def test_a_failed_digest_is_claimed_again(store_url: str) -> None:
    with Store.open(store_url) as store:
        store.record_delivery(profile="ada", key="2026-07-01", covered_to=DAY, status="failed",
                              message_id=None, message=None, markdown=None, items=(), now=T0)
        assert store.claim_deliveries(["ada"], "2026-07-01", owner="a",
                                      until=T0 + dt.timedelta(minutes=1), now=T0) == ["ada"]


def test_a_send_lease_is_exclusive_until_it_passes_and_ends_with_the_send(
        store_url: str) -> None:
    lease = T0 + dt.timedelta(minutes=5)
    with Store.open(store_url) as store:
        store.claim_deliveries(["ada", "ben"], "2026-07-01", owner="a", until=lease, now=T0)
        ada, ben = _pending(store, "ada"), _pending(store, "ben")
        assert [d.id for d in store.lease_pending([ada, ben], owner="x", until=lease,
                                                  now=T0)] == [ada, ben]
        assert store.lease_pending([ada, ben], owner="y", until=lease, now=T0) == []
        store.complete_delivery(ada, files=[], now=T0)
        assert store.delivery_states([ada, ben]) == {ada: "sent", ben: "pending"}
        # "x" died holding ben: once the lease passed, "y" sends it (the same recorded bytes).
        after = lease + dt.timedelta(seconds=1)
        (again,) = store.lease_pending([ada, ben], owner="y", until=after, now=after)
        assert (again.id, again.message, again.message_id) == (ben, b"bytes", "<ben@x>")
        # "x" was only slow: before sending, it finds that ben is no longer its to send.
        assert not store.renew_lease(ben, owner="x", until=after)
        assert store.renew_lease(ben, owner="y", until=after)
        assert not store.renew_lease(ada, owner="x", until=after)  # sent already
        # Work left by dead workers: ben's lease (now y's) has not passed; nothing is claimed.
        assert store.stale_work(now=after, idle_since=after) == ([], [])
        store.record_attempt(ben, "451 try later", permanent=False, now=after)
        assert store.stale_work(now=after, idle_since=after + dt.timedelta(seconds=1)) \
            == ([], [ben])
        assert query(store_url, "SELECT lease_owner FROM deliveries WHERE id = :i", i=ben) \
            == [(None,)]


def test_lapsed_claims_are_found_as_stale_work(store_url: str) -> None:
    with Store.open(store_url) as store:
        store.claim_deliveries(["ada"], "2026-07-01", owner="a",
                               until=T0 + dt.timedelta(seconds=5), now=T0)
        assert store.stale_work(now=T0, idle_since=T0)[0] == []
        assert store.stale_work(now=T0 + dt.timedelta(seconds=6), idle_since=T0)[0] == [
            ("ada", "2026-07-01")]


def test_the_shared_rate_spaces_reservations_across_callers(store_url: str) -> None:
    with Store.open(store_url) as a, Store.open(store_url) as b:
        starts = [a.reserve_rate("smtp", 1, per_second=10, now=100.0),
                  b.reserve_rate("smtp", 1, per_second=10, now=100.0),
                  a.reserve_rate("smtp", 2, per_second=10, now=100.05),
                  b.reserve_rate("smtp", 1, per_second=10, now=100.1)]
        assert starts == pytest.approx([100.0, 100.1, 100.2, 100.4])
        # An idle rate does not bank slots: the next one starts now.
        assert b.reserve_rate("smtp", 1, per_second=10, now=200.0) == 200.0


# -- synced profiles ------------------------------------------------------------------------------


def test_profiles_sync_copies_changes_only_and_keeps_the_last_good_version(
        store_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    shutil.copytree(EXAMPLES, folder)
    now = T0
    with Store.open(store_url) as store:
        first = sync_profiles(store, folder, now=now)
        assert sorted(first.added) == ["ada", "ben", "cara"] and not first.errors
        synced = stored_profiles(store)
        assert synced.profiles == load_profiles(folder).profiles
        assert sync_profiles(store, folder, now=now).unchanged == 3
        ada = folder / "ada.yaml"
        ada.write_text(ada.read_text().replace("max_papers: 15", "max_papers: 3"))
        (folder / "ben.yaml").write_text("version: 1\ninterests: [[\n")
        (folder / "cara.yaml").unlink()
        report = sync_profiles(store, folder, now=now)
        assert (report.changed, report.removed) == (["ada"], ["cara"])
        assert [e.path for e in report.errors] == [str(folder / "ben.yaml")]
        by_name = {p.name: p for p in stored_profiles(store).profiles}
        assert by_name["ada"].max_papers == 3
        assert by_name["ben"] == load_profiles(EXAMPLES).get("ben")  # the last good version
        assert "cara" not in by_name


# -- the model's version --------------------------------------------------------------------------


def test_workers_reload_the_model_when_the_fit_job_records_a_new_version(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.sqlite"
    app = DigestApp(Config(out_dir=str(tmp_path / "out")), url, str(EXAMPLES), clock=lambda: T0)
    app.ingest([FileSource(sample_path())])
    cache = ModelCache(refit=False)
    with Store.open(url) as store:
        first = cache.get(store, model_dir(app.out_dir), now=T0)  # none yet: fitted once
        assert store.meta(MODEL_VERSION) == first.model.fit_id is not None
        # Stale by age (30 days): a worker keeps it, the fit job refits.
        later = T0 + dt.timedelta(days=40)
        assert cache.get(store, model_dir(app.out_dir), now=later).model.fit_id \
            == first.model.fit_id
        assert cache.loads == 1
        refit = DigestApp(app.config, url, str(EXAMPLES), clock=lambda: later).model(
            store, force=True)
        assert store.meta(MODEL_VERSION) == refit.model.fit_id != first.model.fit_id
        assert cache.get(store, model_dir(app.out_dir), now=later).model.fit_id \
            == refit.model.fit_id
        assert cache.loads == 2


# -- end to end -----------------------------------------------------------------------------------


def test_run_queue_on_sqlite_says_the_queue_needs_postgresql(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--db", f"sqlite:///{tmp_path}/s.sqlite", "--profiles",
                                       str(EXAMPLES), "run", "--queue"])
    assert result.exit_code == 1
    assert "the queue needs PostgreSQL" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["--db", f"sqlite:///{tmp_path}/s.sqlite", "worker",
                                       "--burst"])
    assert result.exit_code == 1 and "the queue needs PostgreSQL" in result.output


@pytest.fixture
def pg_site(store_backend: Backend, tmp_path: Path) -> DigestApp:
    if store_backend.server is None:
        pytest.skip("the queue runs on PostgreSQL")
    url = store_backend.new_url(tmp_path)
    config = Config(out_dir=str(tmp_path / "out"),
                    queue=QueueConfig(shard_size=2, send_batch=1, heartbeat=0.5,
                                      stalled_after=3))
    app = DigestApp(config, url, str(EXAMPLES), clock=lambda: T0)
    app.ingest([FileSource(sample_path())])
    return app


def _worker(app: DigestApp, server: RecordingServer, **kwargs: object) -> None:
    transport = SmtpTransport(SmtpSettings(server.host, server.port, security="none",
                                           timeout=5.0, retries=1, backoff=0.001))
    worker_app = DigestApp(app.config, app.db_url, app.profiles_dir, clock=app.clock,
                           transport=transport)
    run_worker(QueueContext(worker_app), burst=True, install_signals=False, **kwargs)  # type: ignore[arg-type]


def test_queued_digests_are_delivered_once_by_workers(
        pg_site: DigestApp, smtp_server: RecordingServer) -> None:
    app = pg_site
    queued = queue_run(app, ["ada", "ben", "cara"], DAY)
    synced, deferred = queued.synced, queued.deferred
    assert sorted(synced.added) == ["ada", "ben", "cara"]
    # No model yet: one fit job fits it, then defers the two shards (2 profiles each at most).
    assert (deferred.profiles, deferred.shards, deferred.fit) == (3, 2, "no saved model yet")
    _worker(app, smtp_server, concurrency=2)
    rows = query(app.db_url, "SELECT profile, status, message_id, lease_owner FROM deliveries "
                             "ORDER BY profile")
    assert [(p, s, lease) for p, s, _, lease in rows] == [
        ("ada", "sent", None), ("ben", "sent", None), ("cara", "sent", None)]
    received = {email.message_from_bytes(m.content)["Message-ID"]: m.rcpt_tos
                for m in smtp_server.messages}
    with_email = {p.name: p.email for p in load_profiles(EXAMPLES).profiles if p.email}
    assert len(smtp_server.messages) == len(with_email)  # one message each, none twice
    assert sorted(received) == sorted(mid for p, _, mid, _ in rows if p in with_email)
    sent = query(app.db_url, "SELECT count(*) FROM sent")[0][0]
    assert isinstance(sent, int) and sent > 0
    # Queued again for the same day: every digest is done, nothing is sent twice.
    again = queue_run(app, ["ada", "ben", "cara"], DAY).deferred
    assert again.fit is None and again.shards == 2
    _worker(app, smtp_server)
    assert len(smtp_server.messages) == len(with_email)
    assert query(app.db_url, "SELECT count(*) FROM sent")[0][0] == sent


def test_the_tick_ingests_syncs_and_queues_what_the_triggers_hand_over(
        pg_site: DigestApp, smtp_server: RecordingServer, tmp_path: Path) -> None:
    from digest.schedule.tick import defer_batch

    app = pg_site
    config = tmp_path / "digest.toml"
    config.write_text(f'out_dir = "{app.out_dir}"\n[queue]\nshard_size = 2\n')
    ingest = {"cron": "0 6 * * *", "timezone": "UTC", "sources": [sample_path()]}
    jobs = [{"db_url": app.db_url, "config_path": str(config), "profiles_dir": str(EXAMPLES),
             "profile": name, "cron": "0 7 * * *", "timezone": "UTC", "ingest": ingest}
            for name in ("ada", "ben", "cara")]
    statuses = defer_batch([*jobs, {**jobs[0], "profile": "nobody"}], clock=lambda: T0)
    assert statuses == {"ada": "queued", "ben": "queued", "cara": "queued", "nobody": "failed"}
    assert (app.out_dir / "schedule-state.json").exists()  # it ingested first (due at 06:00)
    assert [r[0] for r in query(app.db_url, "SELECT name FROM profile_docs ORDER BY name")] \
        == ["ada", "ben", "cara"]
    assert query(app.db_url, "SELECT task_name, count(*) FROM procrastinate_jobs "
                             "GROUP BY task_name") == [("digest:fit", 1)]
    _worker(app, smtp_server)
    assert query(app.db_url, "SELECT count(*) FROM deliveries WHERE status = 'sent'") == [(3,)]


def test_the_command_line_queues_and_a_burst_worker_delivers(
        pg_site: DigestApp, smtp_server: RecordingServer, tmp_path: Path) -> None:
    app = pg_site
    config = tmp_path / "digest.toml"
    config.write_text(f'out_dir = "{app.out_dir}"\n'
                      f'[smtp]\nhost = "{smtp_server.host}"\nport = {smtp_server.port}\n'
                      'security = "none"\n')
    base = ["--db", app.db_url, "--config", str(config), "--profiles", str(EXAMPLES)]
    runner = CliRunner()
    queued = runner.invoke(main, [*base, "run", "--queue", "--date", "2026-07-01", "ada", "cara"])
    assert queued.exit_code == 0, queued.output
    assert "queued 2 digests (2026-07-01) in 1 shard jobs, after fitting the model" \
        in queued.output
    unknown = runner.invoke(main, [*base, "run", "--queue", "nobody"])
    assert unknown.exit_code == 2 and "no profile named 'nobody'" in unknown.output
    waiting = runner.invoke(main, [*base, "queue", "status", "--json"])
    assert json.loads(waiting.output) == {"jobs": {"digest:fit": {"todo": 1}}, "deliveries": {}}
    worked = runner.invoke(main, [*base, "worker", "--burst", "--concurrency", "2"])
    assert worked.exit_code == 0, worked.output
    assert "queue empty" in worked.output
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "ada@example.org", "cara@example.org"]
    done = runner.invoke(main, [*base, "queue", "status"])
    assert done.exit_code == 0
    assert "jobs: none" in done.output and "2026-07-01: 2 sent" in done.output
    synced = runner.invoke(main, [*base, "profiles", "sync"])
    assert synced.exit_code == 0
    assert "0 new, 0 changed, 0 removed, 3 unchanged" in synced.output


def test_run_queue_names_an_invalid_profile_and_queues_the_others(
        pg_site: DigestApp, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    shutil.copytree(EXAMPLES, folder)
    (folder / "zed.yaml").write_text("version: 1\ninterests: [[\n")
    base = ["--db", pg_site.db_url, "--profiles", str(folder)]
    result = CliRunner().invoke(main, [*base, "run", "--queue", "--date", "2026-07-01"])
    assert result.exit_code == 1
    assert f"invalid profile: {folder / 'zed.yaml'}:" in result.output
    assert "queued 3 digests (2026-07-01)" in result.output
    # By file name too (the profile's name is its id when it has one).
    again = CliRunner().invoke(main, [*base, "run", "--queue", "ada", "zed"])
    assert again.exit_code == 2 and "no profile named 'zed'" in again.output
