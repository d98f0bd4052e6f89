"""Queue benchmark: N profiles delivered by 1, 2 and 4 `digest worker --burst` processes.

    python bench/queue_workers.py [--profiles 10000] [--workers 1,2,4]
                                  [--json bench/results/queue.json]

(Not bench/queue.py: wherever bench/ is on sys.path, as for any script in it, that name would
shadow the standard library's `queue`, which psycopg and joblib import.)

A PostgreSQL server on loopback (tests/stores.py's: initdb into a temporary folder, fsync off)
holds a store with the bundled sample (483 papers, digest day 2026-07-01) and its fitted model;
N profiles (email, two topics each, as bench/schedule.py makes them). For each worker count, on a
fresh copy of that database (CREATE DATABASE ... TEMPLATE): `digest run --queue --date
2026-07-01` defers the digests, then that many `digest worker --burst` processes (the real CLI,
concurrency 1 each) run them, delivering to the aiosmtpd server in a child process
(bench/smtp.py's). Timed from the start of `run --queue` to the last message received; the
digests/s of each count and its ratio to one worker.

This machine has 2 cores, shared with PostgreSQL, the SMTP server and other work: more worker
processes cannot go much faster here. The run is a proof that several workers deliver every digest
exactly once under load (each count's messages are checked: one per profile, no duplicates) more
than a measure of speed-up.

The site (`make_site`, `write_profiles`, `write_config`, `digest_cli`) is tests/queue_site.py's,
shared with tests/test_queue_chaos.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from queue_site import DAY, digest_cli, make_site, write_config, write_profiles  # noqa: E402

from bench import schedule  # noqa: E402


def _deliver(root: Path, url: str, server: Any, names: list[str], workers: int,
             timeout: float) -> dict[str, Any]:
    server.poll()
    before = server.total
    start = time.monotonic()
    subprocess.run(digest_cli(root, url, "run", "--queue", "--date", DAY), check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL)
    queued_s = time.monotonic() - start
    logs = [(root / f"worker{n}.log").open("w") for n in range(workers)]
    procs = [subprocess.Popen(digest_cli(root, url, "worker", "--burst"), cwd=ROOT,
                              stdout=log, stderr=subprocess.STDOUT) for log in logs]
    last = time.monotonic()
    seen = 0
    try:
        while time.monotonic() - start < timeout:
            total = server.poll() - before
            if total > seen:
                seen, last = total, time.monotonic()
            if all(p.poll() is not None for p in procs):
                break
            time.sleep(0.1)
        codes = [p.wait(timeout=max(1.0, timeout - (time.monotonic() - start))) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
    received = server.poll() - before
    seconds = last - start
    return {"workers": workers, "profiles": len(names), "received": received,
            "exactly_once": received == server.distinct == len(names),
            "distinct": server.distinct, "seconds": seconds, "queue_s": queued_s,
            "per_s": received / seconds if seconds > 0 else 0.0,
            "workers_per_s": received / (seconds - queued_s) if seconds > queued_s else 0.0,
            "exit_codes": codes}


class Server(schedule.Server):
    """bench/schedule.py's server, also counting distinct Message-IDs (a duplicate shows as
    fewer distinct than received)."""

    def __init__(self) -> None:
        super().__init__("--ids")
        self.ids: set[str] = set()

    @property
    def distinct(self) -> int:
        return len(self.ids)

    def poll(self) -> int:
        total = super().poll()
        self.ids.update(self.last.get("ids", []))
        return total

    def reset(self) -> None:
        self.poll()
        self.total = 0
        self.ids.clear()


def main() -> None:
    from stores import PostgresServer

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--profiles", type=int, default=10000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--shard-size", type=int, default=2000)
    parser.add_argument("--send-batch", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "queue.json"))
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]

    load_before = os.getloadavg()
    pg = PostgresServer.start()
    runs: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-queue-") as work:
            root = Path(work)
            pg.admin('CREATE DATABASE "template_site"')
            template = pg.url("template_site")
            make_site(root, template)
            names = write_profiles(root / "profiles", args.profiles)
            server = Server()
            try:
                write_config(root, server.port, shard_size=args.shard_size,
                             send_batch=args.send_batch)
                for workers in counts:
                    name = f"w{workers}"
                    pg.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = 'template_site' AND pid <> pg_backend_pid()",
                             f'CREATE DATABASE "{name}" TEMPLATE "template_site"')
                    server.reset()
                    run = _deliver(root, pg.url(name), server, names, workers, args.timeout)
                    run["load_after"] = os.getloadavg()[0]
                    runs.append(run)
                    print(json.dumps(run), flush=True)
                    pg.admin(f'DROP DATABASE "{name}" WITH (FORCE)')
            finally:
                server.close()
    finally:
        pg.stop()
    base = runs[0]["per_s"] if runs else 0.0
    for run in runs:
        run["ratio_to_1"] = run["per_s"] / base if base else 0.0
    results = {"profiles": args.profiles, "shard_size": args.shard_size,
               "send_batch": args.send_batch, "cores": os.cpu_count(), "runs": runs,
               "load_before": list(load_before), "load_after": list(os.getloadavg())}
    print(f"{args.profiles:,} profiles, PostgreSQL and aiosmtpd on loopback, "
          f"{os.cpu_count()} cores, load average {load_before[0]:.1f} -> "
          f"{os.getloadavg()[0]:.1f}:")
    for run in runs:
        print(f"  {run['workers']} worker(s): {run['received']:,} messages "
              f"({run['distinct']:,} distinct) in {run['seconds']:.1f} s, "
              f"{run['per_s']:.1f} digests/s, {run['ratio_to_1']:.2f}x one worker")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
