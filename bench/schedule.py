"""Scheduler benchmark: N profiles due at the same minute, delivered by the daemon to loopback SMTP.

    python bench/schedule.py [--profiles 1000] [--baseline 100] [--json out/bench/schedule.json]

A store with the bundled sample (483 papers, re-dated to today and yesterday so that every
profile has a digest to send) and its fitted model; N profiles (``0 7 * * *``, UTC, email, two
topics each) whose stored jobs are all moved to fire three seconds ahead, as if the clock had
reached 07:00 (the fake clock of the scheduler tests: the real cron triggers, only the pending
run time moved). `digest schedule`'s `Scheduler` then runs in this process and delivers to an
aiosmtpd server in a child process (bench/smtp.py's), and we time from the due instant to the
last message received, split into the scheduler's hand-off (due -> the batch starts), model,
ranking and the first rendering (-> the first message arrives), and render + send + ledger for
the rest (-> the last one arrives).

Baseline, measured in the same run on a copy of the same store: today's per-profile jobs
(`Scheduler(batching=False)`: each job builds its app, loads the model, ranks one profile) on
`--baseline` profiles; compare digests per second. The sample corpus is small, so loading the
model is cheap here: on a real corpus (560k terms) each per-profile job pays 1-3 s more, and
the ratio understates the gain.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench.replay import TOPICS  # noqa: E402  # the replay's profiles follow the same topics
from digest.app import DigestApp  # noqa: E402
from digest.cli import sample_path  # noqa: E402
from digest.config import Config, ScheduleConfig  # noqa: E402
from digest.schedule import Scheduler, paused_scheduler  # noqa: E402
from digest.sources.resolve import FileSource  # noqa: E402


def lead(profiles: int) -> float:
    """Seconds from arming the jobs to their due instant (arming stores each job once)."""
    return 10.0 + 0.03 * profiles


class Events(logging.Handler):
    """When the scheduler's log said a batch started, and what failed."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.batches: list[float] = []
        self.failed: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("batch:"):
            self.batches.append(record.created)
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


def write_profiles(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        interests = [TOPICS[i % len(TOPICS)], TOPICS[(i * 7 + 3) % len(TOPICS)]]
        (folder / f"p{i:05d}.yaml").write_text(
            f"version: 1\nemail: p{i:05d}@example.org\nschedule: \"0 7 * * *\"\n"
            f"timezone: UTC\nformats: [email]\nmax_papers: 10\nmin_relevance: 0.0\n"
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
            timeout: float) -> dict[str, Any]:
    """Arm every digest job to fire at once, run the daemon until all arrived; the timings."""
    folder = root / "profiles"
    write_profiles(folder, profiles)
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
    thread = threading.Thread(target=scheduler.run, name="bench-scheduler")
    thread.start()
    try:
        deadline = due.timestamp() + timeout
        first: float | None = None
        while server.poll() - before < profiles and time.time() < deadline:
            if first is None and server.total > before:
                first = time.time()
            time.sleep(0.1)
        last = time.time()
        first = first or last
    finally:
        scheduler.stop()
        thread.join(120)
        log.removeHandler(events)
    received = server.total - before
    due_ts = due.timestamp()
    seconds = last - due_ts
    out: dict[str, Any] = {
        "profiles": profiles, "batching": batching, "received": received,
        "seconds": seconds, "per_s": received / seconds if seconds > 0 else 0.0,
        "batches": len(events.batches), "failed": events.failed[:5], "arm_s": arm_s,
    }
    if batching and events.batches:
        # To the server's first and last message, polled every 0.1 s.
        out["split"] = {
            "hand_off_s": events.batches[0] - due_ts,
            "model_rank_first_render_s": first - events.batches[0],
            "render_send_ledger_s": last - first,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=100,
                        help="profiles through today's per-profile jobs (the baseline)")
    parser.add_argument("--timeout", type=float, default=3600)
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
            for name, count, batching in (("baseline", args.baseline, False),
                                          ("ours", args.profiles, True)):
                root = Path(work) / name
                shutil.copytree(template, root)
                runs[name] = deliver(root, f"sqlite:///{root}/digest.sqlite", count,
                                     batching=batching, server=server, timeout=args.timeout)
                print(f"{name}: {json.dumps(runs[name])}", flush=True)
        finally:
            server.close()
    ours, base = runs["ours"], runs["baseline"]
    results = {**ours, "baseline": base, "ratio": ours["per_s"] / base["per_s"],
               "goal_s": 15 * 60, "load_before": load_before,
               "load_after": os.getloadavg()[0]}
    print(f"{ours['profiles']:,} profiles due at one minute: last message {ours['seconds']:.1f} s "
          f"after the due time ({ours['per_s']:.1f} digests/s, {ours['batches']} batch(es)); "
          f"per-profile jobs: {base['per_s']:.1f} digests/s on {base['profiles']:,}; "
          f"{results['ratio']:.1f}x; load average {load_before:.1f} -> "
          f"{results['load_after']:.1f}")
    if "split" in ours:
        print("split: " + ", ".join(f"{k} {v:.1f}" for k, v in ours["split"].items()))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
