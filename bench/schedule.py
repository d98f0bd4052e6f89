"""Scheduler benchmark: N profiles due at the same minute, delivered by the daemon to loopback SMTP.

    python bench/schedule.py [--profiles 1000] [--baseline 100] [--baseline-stop K]
                             [--formats email,rss] [--json out/bench/schedule.json]

A store with the bundled sample (483 papers, re-dated to today and yesterday so that every
profile has a digest to send) and its fitted model; N profiles (``0 7 * * *``, UTC, `--formats`,
two topics each) whose stored jobs are all moved to fire at once, as if the clock had
reached 07:00 (the fake clock of the scheduler tests: the real cron triggers, only the pending
run time moved). `digest schedule`'s `Scheduler` then runs in this process and delivers to an
aiosmtpd server in a child process (bench/smtp.py's), and we time from the due instant to the
last message received, split into the scheduler's hand-off (due -> the batch starts), model,
ranking and the first rendering (-> the first message arrives), and render + send + ledger for
the rest (-> the last one arrives). `Stages` also times the batch's stages by wrapping the
library's calls (profiles, ranking, rendering, sending, ledger, feeds, ...), and the batch's end
(feeds are written after the last message).

Baseline, measured in the same run on a copy of the same store: today's per-profile jobs
(`Scheduler(batching=False)`: each job builds its app, reads the whole profiles folder, loads
the model, ranks one profile) on `--baseline` profiles; compare digests per second. Each job
reading every profile makes the baseline quadratic: `--baseline-stop K` stops it after its
first K messages (their rate). The sample corpus is small, so loading the model is cheap here:
on a real corpus (560k terms) each per-profile job pays 1-3 s more, and the ratio understates
the gain.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench.replay import TOPICS  # noqa: E402  # the replay's profiles follow the same topics
from digest import deliver as deliver_module  # noqa: E402
from digest.app import DigestApp  # noqa: E402
from digest.cli import sample_path  # noqa: E402
from digest.config import Config, ScheduleConfig  # noqa: E402
from digest.deliver import Deliverer  # noqa: E402
from digest.mailer import SmtpTransport  # noqa: E402
from digest.recommend import Recommender  # noqa: E402
from digest.render import Renderer  # noqa: E402
from digest.schedule import Scheduler, paused_scheduler  # noqa: E402
from digest.schedule import runs as schedule_runs  # noqa: E402
from digest.sources.resolve import FileSource  # noqa: E402
from digest.store import Store  # noqa: E402


def lead(profiles: int) -> float:
    """Seconds from arming the jobs to their due instant (arming stores each job once)."""
    return 10.0 + 0.03 * profiles


class Stages:
    """Wall seconds the batch spends in each stage, by wrapping the library's calls for the
    measured run (the outermost wrapped call owns its time: the store reads of ranking count as
    ranking, the ledger reads of feeds as feeds). What no stage claims is "other"."""

    #: stage -> (owner, attribute) of the calls that make it up.
    CALLS: ClassVar[dict[str, list[tuple[Any, str]]]] = {
        "ingest": [(schedule_runs, "ensure_ingested")],
        "profiles": [(DigestApp, "profiles")],
        "model": [(DigestApp, "model")],
        "ranking": [(Recommender, "rank")],
        "rendering": [(Renderer, "email"), (Renderer, "markdown"),
                      (Renderer, "feed_entry_html"), (deliver_module, "build_message")],
        "sending": [(SmtpTransport, "__enter__"), (SmtpTransport, "send"),
                    (SmtpTransport, "__exit__")],
        "ledger": [(Store, name) for name in (
            "get_delivery", "pending_deliveries", "record_delivery", "record_attempt",
            "complete_delivery", "unsubscribed", "heartbeat")],
        "feeds": [(Deliverer, "write_feeds")],
    }

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.CALLS, 0.0)
        self.calls = dict.fromkeys(self.CALLS, 0)
        self._depth = threading.local()
        self._saved: list[tuple[Any, str, Any]] = []
        self.run_ended: float | None = None

    def _wrap(self, stage: str, func: Any) -> Any:
        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._depth, "n", 0)
            if depth:
                return func(*args, **kwargs)
            self._depth.n = 1
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self._depth.n = 0
                self.seconds[stage] += time.perf_counter() - started
                self.calls[stage] += 1
        return timed

    def __enter__(self) -> Stages:
        for stage, calls in self.CALLS.items():
            for owner, name in calls:
                # Inherited methods (the store's mixins) are wrapped on the class itself.
                own = owner.__dict__.get(name)
                self._saved.append((owner, name, own))
                setattr(owner, name, self._wrap(stage, getattr(owner, name)))
        run = DigestApp.__dict__["run"]
        self._saved.append((DigestApp, "run", run))

        def ended(*args: Any, **kwargs: Any) -> Any:
            try:
                return run(*args, **kwargs)
            finally:
                self.run_ended = time.time()
        DigestApp.run = ended  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, func in reversed(self._saved):
            if func is None:
                delattr(owner, name)
            else:
                setattr(owner, name, func)


class Events(logging.Handler):
    """When the scheduler's log said a batch started, and what failed."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.batches: list[float] = []
        self.sizes: list[int] = []
        self.failed: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("batch:"):
            self.batches.append(record.created)
            self.sizes.append(int(record.getMessage().split()[1]))  # "batch: N digests due"
        if getattr(record, "status", None) == "failed":
            self.failed.append(record.getMessage())


def make_site(root: Path) -> str:
    """A store with the sample re-dated to yesterday and today, and its model; its URL."""
    today = dt.datetime.now(dt.UTC).date()
    papers = root / "papers.jsonl"
    with gzip.open(sample_path(), "rt", encoding="utf-8") as lines, papers.open("w") as out:
        for n, line in enumerate(lines):
            record = json.loads(line)
            record["date"] = (today - dt.timedelta(days=n % 2)).isoformat()
            out.write(json.dumps(record) + "\n")
    url = f"sqlite:///{root}/digest.sqlite"
    app = DigestApp(Config(out_dir=str(root / "out")), url, str(root / "profiles"))
    (result,) = app.ingest([FileSource(str(papers), "jsonl")], today=today)
    assert result.ok, result
    with app.open_store() as store:
        app.model(store)
    return url


def write_profiles(folder: Path, count: int, formats: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        interests = [TOPICS[i % len(TOPICS)], TOPICS[(i * 7 + 3) % len(TOPICS)]]
        (folder / f"p{i:05d}.yaml").write_text(
            f"version: 1\nemail: p{i:05d}@example.org\nschedule: \"0 7 * * *\"\n"
            f"timezone: UTC\nformats: {json.dumps(formats)}\nmax_papers: 10\nmin_relevance: 0.0\n"
            f"interests: {json.dumps(list(dict.fromkeys(interests)))}\n", encoding="utf-8")


class Server:
    """bench/smtp.py's aiosmtpd server in a child process; counts what it received."""

    def __init__(self, *options: str) -> None:
        self.child = subprocess.Popen([sys.executable, str(ROOT / "bench" / "smtp.py"),
                                       "--serve", *options], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.child.stdout is not None
        self.port = int(json.loads(self.child.stdout.readline())["port"])
        self.total = 0
        self.connections = 0
        self.last: dict[str, Any] = {}

    def poll(self) -> int:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write("stats\n")
        self.child.stdin.flush()
        stats = self.last = json.loads(self.child.stdout.readline())
        self.total += int(stats["messages"])
        self.connections += int(stats["connections"])
        return self.total

    def close(self) -> None:
        assert self.child.stdin is not None
        self.child.stdin.close()
        self.child.wait(timeout=30)


def deliver(root: Path, url: str, profiles: int, *, batching: bool, server: Server,
            timeout: float, formats: list[str], stop_after: int | None = None) -> dict[str, Any]:
    """Arm every digest job to fire at once, run the daemon until all arrived (or `stop_after`
    of them: a rate, for the per-profile jobs that take an hour at 1,000); the timings."""
    folder = root / "profiles"
    write_profiles(folder, profiles, formats)
    config = root / "digest.toml"
    config.write_text(
        f'out_dir = "{root}/out"\n[email]\nfrom = "Paper Digest <digest@example.org>"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\nretries = 0\n',
        encoding="utf-8")
    scheduler = Scheduler(db_url=url, profiles_dir=str(folder), config_path=str(config),
                          settings=ScheduleConfig(sources=[]), batching=batching)
    scheduler.sync()
    due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lead(profiles))
    arm_started = time.monotonic()
    with paused_scheduler(url) as aps:
        for job in aps.get_jobs():
            if job.id.startswith("digest:"):
                aps.modify_job(job.id, "default", next_run_time=due)
    arm_s = time.monotonic() - arm_started
    if dt.datetime.now(dt.UTC) >= due:
        raise SystemExit(f"arming {profiles} jobs took {arm_s:.1f} s, past the due time: "
                         "give lead() more")
    events = Events()
    log = logging.getLogger("digest.schedule")
    log.addHandler(events)
    log.setLevel(logging.INFO)
    server.poll()
    before = server.total
    stages = Stages() if batching else contextlib.nullcontext()
    thread = threading.Thread(target=scheduler.run, name="bench-scheduler")
    with stages:
        thread.start()
        first, last = wait_for(server, before, min(profiles, stop_after or profiles),
                               due.timestamp() + timeout)
        if stop_after and not batching:
            drop_queued(scheduler)
        scheduler.stop()
        thread.join(600)
    log.removeHandler(events)
    # Counted when the last awaited message arrived: the job in flight at the stop may add one.
    received = min(server.total - before, stop_after or profiles)
    due_ts = due.timestamp()
    seconds = last - due_ts
    out: dict[str, Any] = {
        "profiles": profiles, "batching": batching, "received": received,
        "stopped_after": stop_after if stop_after and stop_after < profiles else None,
        "seconds": seconds, "per_s": received / seconds if seconds > 0 else 0.0,
        "batches": len(events.batches), "batch_sizes": events.sizes,
        "batch_starts_s": [round(t - due.timestamp(), 3) for t in events.batches],
        "failed": events.failed[:5], "arm_s": arm_s,
    }
    if isinstance(stages, Stages) and events.batches:
        # To the server's first and last message, polled every 0.1 s.
        out["split"] = {
            "hand_off_s": events.batches[0] - due_ts,
            "model_rank_first_render_s": first - events.batches[0],
            "render_send_ledger_s": last - first,
        }
        ended = stages.run_ended or last
        batch_s = ended - events.batches[0]
        out["batch_end_s"] = ended - due_ts
        out["stages"] = {"hand_off": events.batches[0] - due_ts,
                         **{k: round(v, 3) for k, v in stages.seconds.items()},
                         "other": batch_s - sum(stages.seconds.values())}
        out["stage_calls"] = stages.calls
    return out


def drop_queued(scheduler: Scheduler) -> None:
    """Cancel the per-profile jobs waiting in the thread pool (the scheduler's stop would run
    every one of them first); the one in flight finishes."""
    aps = scheduler._aps
    if aps is not None:
        pool = aps._lookup_executor("default")._pool
        logging.getLogger("concurrent.futures").setLevel(logging.CRITICAL)  # cancelled: quiet
        pool.shutdown(wait=False, cancel_futures=True)


def wait_for(server: Server, before: int, count: int,
             deadline: float) -> tuple[float, float]:
    """When the first and the last of `count` more messages than `before` reached the server
    (polled every 0.1 s), or the deadline."""
    first: float | None = None
    while server.poll() - before < count and time.time() < deadline:
        if first is None and server.total > before:
            first = time.time()
        time.sleep(0.1)
    last = time.time()
    return first or last, last


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=100,
                        help="profiles through today's per-profile jobs (the baseline)")
    parser.add_argument("--baseline-stop", type=int, default=None, metavar="K",
                        help="stop the baseline after its first K messages (each per-profile "
                             "job reads the whole profiles folder: 1,000 take about an hour)")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--formats", default="email",
                        help="the profiles' formats, comma-separated (email, rss, markdown)")
    parser.add_argument("--json", default=str(ROOT / "out" / "bench" / "schedule.json"))
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-schedule-") as work:
        template = Path(work) / "template"
        template.mkdir()
        make_site(template)
        server = Server()
        try:
            runs = {}
            for name, count, batching, stop in (
                    ("baseline", args.baseline, False, args.baseline_stop),
                    ("ours", args.profiles, True, None)):
                root = Path(work) / name
                shutil.copytree(template, root)
                runs[name] = deliver(root, f"sqlite:///{root}/digest.sqlite", count,
                                     batching=batching, server=server, timeout=args.timeout,
                                     formats=args.formats.split(","), stop_after=stop)
                print(f"{name}: {json.dumps(runs[name])}", flush=True)
        finally:
            server.close()
    ours, base = runs["ours"], runs["baseline"]
    results = {**ours, "formats": args.formats.split(","), "baseline": base,
               "ratio": ours["per_s"] / base["per_s"],
               "goal_s": 15 * 60, "load_before": load_before,
               "load_after": os.getloadavg()[0]}
    print(f"{ours['profiles']:,} profiles due at one minute: last message {ours['seconds']:.1f} s "
          f"after the due time ({ours['per_s']:.1f} digests/s, {ours['batches']} batch(es)); "
          f"per-profile jobs: {base['per_s']:.2f} digests/s on {base['profiles']:,}"
          + (f" (the first {base['received']:,})" if base["stopped_after"] else "")
          + f"; {results['ratio']:.1f}x; load average {load_before:.1f} -> "
          f"{results['load_after']:.1f}")
    if "split" in ours:
        print("split: " + ", ".join(f"{k} {v:.1f}" for k, v in ours["split"].items()))
        print(f"stages (s; the batch ended {ours['batch_end_s']:.1f} s after the due time): "
              + ", ".join(f"{k} {v:.1f}" for k, v in ours["stages"].items()))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
