"""The queue under faults, for real: `digest worker` processes killed, cut off and refused.

A store on PostgreSQL (the queue needs it) with the bundled sample and its model, a few hundred
profiles, small shards and send batches, and short leases, heartbeats and stalled-worker times
(so a dead worker's work comes back within seconds). `digest run --queue` defers the day; then
three `digest worker` processes (the real command, in processes forked from a fork server that
imported digest once) run it while a supervisor thread

- kills a random worker with SIGKILL at a random moment, and starts a new one at once, until 22
  kills landed while the day was not done: mid-ranking, mid-rendering, between a message's
  acceptance and its commit...;
- now and then terminates every worker's database connections (`pg_terminate_backend`);

while the SMTP server answers 451 to the first DATA of some recipients and drops the connection
in the DATA of a few others. Then `digest worker --burst` finishes the day (jobs waiting for a
retry are made due, as the time they wait would), and the server's
messages are compared with the ledger: every due profile got its digest, no paper was lost (each
paper the ledger records as sent to a profile is in a message the profile received, and every
digest is sent or empty), no paper reached a profile in two different messages (the same message
twice, same Message-ID and bytes, is the one duplicate a crash may cause), duplicates at most one
per fault that could land between acceptance and commit (a kill; a round of terminated
connections, once per worker), and no claim or lease left.

Also: four workers racing on the same shard jobs (the day deferred twice) deliver each digest
exactly once. ``DIGEST_LONG_TESTS=1`` runs the chaos test with more profiles and kills.
"""

from __future__ import annotations

import multiprocessing.context
import os
import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path

import crash_worker
import pytest
import sqlalchemy as sa
from queue_site import DAY, digest_cli, make_site, write_config, write_profiles
from smtp_server import RecordingServer
from stores import Backend, Sample, query
from test_crash import Received, read

from digest.cli import main as digest_main
from digest.store import Store

LONG = bool(os.environ.get("DIGEST_LONG_TESTS"))
PROFILES = 800 if LONG else 320
KILLS = 60 if LONG else 22
WORKERS = 3
SEED = 20261206
#: Short leases and heartbeats: a dead worker's jobs and claims come back within seconds. The
#: global send rate makes the day last (320 messages at 12 a second: 27 s at least) however fast
#: the machine, so that the kills land while there is work in flight.
QUEUE = {"shard_size": 40, "send_batch": 10, "claim_lease": 3, "send_lease": 2, "send_rate": 12,
         "heartbeat": 0.5, "stalled_after": 2, "sweep_seconds": 1}

pytestmark = pytest.mark.skipif(not crash_worker.HAS_FORK_SERVER,
                                reason="needs the forkserver start method (POSIX)")


@pytest.fixture(scope="module")
def postgres(module_backend: Backend) -> Backend:
    if module_backend.server is None:
        pytest.skip("the queue needs PostgreSQL (its jobs, claims and leases are shared there)")
    return module_backend


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, postgres: Backend) -> Sample:
    """The sample, its model and the profiles; copied per test."""
    root = tmp_path_factory.mktemp("queue-chaos")
    url = postgres.new_url(root)
    make_site(root, url)
    write_profiles(root / "profiles", PROFILES)
    return Sample(root, url)


@pytest.fixture(scope="module")
def forkserver() -> Iterator[multiprocessing.context.ForkServerContext]:
    with crash_worker.fork_server(["digest.queue", "digest.cli.queue", "procrastinate"]
                                  ) as context:
        yield context


def copy_site(site: Sample, backend: Backend, tmp_path: Path, port: int) -> tuple[Path, str]:
    root = tmp_path / "site"
    shutil.copytree(site.root, root)
    url = backend.clone(site.url, root)
    write_config(root, port, **QUEUE)
    return root, url


def argv(root: Path, url: str, *args: str) -> list[str]:
    return digest_cli(root, url, *args)[3:]  # without `python -m digest.cli`


def run_queue(root: Path, url: str) -> None:
    """`digest run --queue --date DAY`, in this process (the real command)."""
    with pytest.raises(SystemExit) as exit_:
        digest_main(argv(root, url, "run", "--queue", "--date", DAY), prog_name="digest")
    assert exit_.value.code in (0, None)


def check(url: str, names: list[str], messages: list[Received]) -> int:
    """Assert that every due profile got its digest, exactly as the ledger says, and that no
    paper was lost or sent twice in different messages; return the duplicates that arrived."""
    rows = query(url, "SELECT status, count(*) FROM deliveries GROUP BY status")
    assert {status for status, _ in rows} <= {"sent", "empty"}, f"work left behind: {rows}"
    with Store.open(url) as store:
        deliveries = {name: store.get_delivery(name, DAY) for name in names}
        sent_pids = {name: store.sent_pids(name) for name in names}
    missing = [name for name, d in deliveries.items() if d is None]
    assert missing == [], f"{len(missing)} due profiles got no digest: {missing[:5]}"
    done = {name: d for name, d in deliveries.items() if d is not None}
    ledger = {d.message_id: d for d in done.values() if d.status == "sent"}
    copies = Counter(m.message_id for m in messages)
    assert set(copies) == set(ledger), "what arrived is what the ledger holds as sent"
    by_rcpt: dict[str, set[str]] = {}
    for message in messages:
        delivery = ledger[message.message_id]
        assert message.rcpt == f"{delivery.profile}@example.org"
        assert message.content == delivery.message  # a resend is the recorded bytes
        by_rcpt.setdefault(delivery.profile, set()).update(message.keys)
    for name, delivery in done.items():
        # 0 papers lost: what the ledger records as sent is what the profile received.
        assert sent_pids[name] == set(delivery.pids), f"{name}: ledger lost or made up papers"
        assert {str(item["key"]) for item in delivery.items} == by_rcpt.get(name, set()), name
    messages_with: Counter[tuple[str, str]] = Counter()
    for message_id in copies:
        message = next(m for m in messages if m.message_id == message_id)
        messages_with.update((message.rcpt, key) for key in message.keys)
    twice = [pair for pair, n in messages_with.items() if n > 1]
    assert twice == [], f"papers reached a recipient in two different messages: {twice[:5]}"
    return sum(n - 1 for n in copies.values())


@dataclass
class Supervisor:
    """Keeps `count` workers running, kills one at random moments and starts another at once;
    terminates the workers' database connections now and then."""

    context: multiprocessing.context.ForkServerContext
    root: Path
    url: str
    count: int
    kills: int
    due: int
    rng: random.Random
    concurrency: list[int] = field(default_factory=lambda: [1, 2])
    workers: list[BaseProcess] = field(default_factory=list)
    #: Kills of a running worker while digests of the day were still to be done.
    landed: int = 0
    terminated: int = 0
    started: int = 0
    errors: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start_worker(self) -> BaseProcess:
        self.started += 1
        concurrency = self.rng.choice(self.concurrency)
        return crash_worker.start(
            self.context, argv(self.root, self.url, "worker", "--concurrency", str(concurrency)),
            self.root / f"worker{self.started}.log")

    def run(self) -> None:
        try:
            self.workers = [self.start_worker() for _ in range(self.count)]
            while self.landed < self.kills and not self.stop.is_set():
                time.sleep(self.rng.uniform(0.2, 1.2))
                if self.rng.random() < 0.12:
                    self.terminate_connections()
                    continue
                n = self.rng.randrange(len(self.workers))
                worker = self.workers[n]
                if ledger_done(self.url, self.due):
                    return  # the day is done: later kills would prove nothing
                if worker.is_alive():
                    worker.kill()
                    self.landed += 1
                worker.join()
                worker.close()
                self.workers[n] = self.start_worker()
                # A worker that died of its own (a terminated connection) is replaced too.
                for i, other in enumerate(self.workers):
                    if not other.is_alive():
                        other.join()
                        other.close()
                        self.workers[i] = self.start_worker()
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def terminate_connections(self) -> None:
        database = self.url.rsplit("/", 1)[1]
        rows = query(self.url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = :db AND pid <> pg_backend_pid()", db=database)
        self.terminated += any(ok for (ok,) in rows)

    def kill_all(self) -> None:
        for worker in self.workers:
            if worker.is_alive():
                worker.kill()
            worker.join()
            worker.close()
        self.workers = []


def burst(context: multiprocessing.context.ForkServerContext, root: Path, url: str,
          name: str, *extra: str) -> BaseProcess:
    return crash_worker.start(context, argv(root, url, "worker", "--burst", *extra),
                              root / f"{name}.log")


def execute(url: str, sql: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()


def finish_burst(worker: BaseProcess, log: Path) -> None:
    """Wait for a burst worker; it must exit 0 (the jobs' own errors are in its log, with their
    tracebacks: procrastinate logs them)."""
    worker.join(120)
    code = worker.exitcode
    if worker.is_alive():
        worker.kill()
        worker.join()
    worker.close()
    output = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    assert code == 0, output[-3000:]
    assert "Process ForkServerProcess" not in output, output[-3000:]  # died of an exception


def ledger_done(url: str, count: int) -> bool:
    rows = query(url, "SELECT count(*) FROM deliveries WHERE digest_key = :day "
                 "AND status IN ('sent', 'empty')", day=DAY)
    return int(str(rows[0][0])) >= count


def test_workers_killed_cut_off_and_refused_lose_and_double_nothing(
    site: Sample, postgres: Backend, tmp_path: Path,
    forkserver: multiprocessing.context.ForkServerContext,
) -> None:
    rng = random.Random(SEED)
    names = [f"p{i:05d}" for i in range(PROFILES)]
    with RecordingServer(delay=0.01) as server:
        root, url = copy_site(site, postgres, tmp_path, server.port)
        for name in rng.sample(names, PROFILES // 10):
            server.defer(times=1, rcpt=f"{name}@example.org")  # 451 to its first DATA
        for name in rng.sample(names, 4):
            server.drop_in_data(times=1, rcpt=f"{name}@example.org")
        run_queue(root, url)
        supervisor = Supervisor(forkserver, root, url, WORKERS, KILLS, PROFILES, rng)
        thread = threading.Thread(target=supervisor.run, name="supervisor")
        started = time.monotonic()
        thread.start()
        try:
            thread.join(240 if LONG else 120)
        finally:
            supervisor.stop.set()
            thread.join()
            supervisor.kill_all()
        assert supervisor.errors == []
        chaos_s = time.monotonic() - started
        during = len(server.messages)
        # What is left (jobs of the killed workers, lapsed claims and leases) is run by burst
        # workers, until the ledger holds the whole day.
        # A burst worker leaves the jobs that wait for a retry (after a 451 or a lost connection:
        # 5 s and more, growing with each attempt). Time passes for them here: they are made
        # due now, as their wait would in the end, and the next burst worker runs them.
        rounds = 0
        while not ledger_done(url, PROFILES) and rounds < 4:
            if rounds:
                execute(url, "UPDATE procrastinate_jobs SET scheduled_at = now() "
                        "WHERE status = 'todo'")
            rounds += 1
            finish_burst(burst(forkserver, root, url, f"burst{rounds}"),
                         root / f"burst{rounds}.log")
        duplicates = check(url, names, read(server))

    # A kill can double the one message it caught between acceptance and commit; a round of
    # terminated connections, one per worker (each worker's next transaction, the one that
    # marks its message sent, finds its connection gone).
    faults = supervisor.landed + supervisor.terminated * WORKERS
    summary = (f"{supervisor.landed} kills before the day was done, "
               f"{supervisor.terminated} times the workers' connections terminated, "
               f"{during} messages during {chaos_s:.0f} s of chaos, {rounds} burst rounds, "
               f"{duplicates} duplicates (at most {supervisor.landed} + {WORKERS} x "
               f"{supervisor.terminated} allowed)")
    print(summary)
    assert supervisor.landed >= KILLS, summary
    assert during > 0, "the workers delivered nothing while the faults went on: " + summary
    assert duplicates <= faults, summary
    assert query(url, "SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL")[0][0] == 0


def test_four_workers_racing_on_the_same_shards_deliver_each_digest_once(
    site: Sample, postgres: Backend, tmp_path: Path,
    forkserver: multiprocessing.context.ForkServerContext,
) -> None:
    names = [f"p{i:05d}" for i in range(PROFILES)]
    with RecordingServer() as server:
        root, url = copy_site(site, postgres, tmp_path, server.port)
        run_queue(root, url)
        run_queue(root, url)  # the same shard jobs, deferred twice
        jobs = query(url, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = "
                     "'digest:shard'")[0][0]
        assert jobs == 2 * -(-PROFILES // int(QUEUE["shard_size"]))
        workers = [burst(forkserver, root, url, f"burst{n}", "--concurrency", "2")
                   for n in range(4)]
        for n, worker in enumerate(workers):
            finish_burst(worker, root / f"burst{n}.log")
        messages = read(server)
        duplicates = check(url, names, messages)
    assert duplicates == 0
    assert len(messages) == len({m.rcpt for m in messages})
