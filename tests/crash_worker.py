"""`digest` in a process of its own, for the crash tests to kill at a random point.

    python tests/crash_worker.py --db URL --config FILE --profiles DIR run --date YYYY-MM-DD

It is the `digest` command itself: the same options, the same configuration file, SMTP from its
``[smtp]`` section. The tests (tests/test_crash.py kills `digest run`, tests/test_crash_ingest.py
`digest ingest`) start it through a `multiprocessing` fork server that has imported digest once
(`run` is the target), because importing scikit-learn afresh for every kill would cost seconds
each time. Killed, it leaves what a real crash leaves: the store's ``run`` lock, maybe an open
SQLite transaction, maybe a message the server accepted that the ledger does not know.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from pathlib import Path

from digest.cli import main

#: What a fork server should import before forking workers: the modules a run needs (some are
#: imported lazily), by names importable from anywhere (the fork server of Python 3.11 does not
#: see the tests folder on its path, and skips a module it cannot import without a word).
PRELOAD = ["digest.cli", "digest.render_feeds", "sqlalchemy.dialects.sqlite",
           "sqlalchemy.dialects.postgresql.psycopg"]

#: Where the fork server can be used (POSIX): for ``pytest.mark.skipif``.
HAS_FORK_SERVER = "forkserver" in multiprocessing.get_all_start_methods()


def run(argv: list[str], log: str) -> None:
    """Run ``digest ARGV`` with stdout and stderr going to the file `log`."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    main(argv, prog_name="digest")


@contextmanager
def fork_server(preload: Sequence[str] = ()) -> Iterator[multiprocessing.context.ForkServerContext]:
    """A fork server that imported digest once (and `preload`), stopped on leaving. Start it
    early: its imports then overlap whatever the test prepares meanwhile."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([*PRELOAD, *preload])
    multiprocessing.forkserver.ensure_running()
    try:
        yield context
    finally:
        multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]  # as CPython tests do


def start(context: multiprocessing.context.ForkServerContext, argv: list[str],
          log: Path) -> BaseProcess:
    """Start ``digest ARGV`` in a worker forked from `context`, its output going to `log`."""
    log.unlink(missing_ok=True)  # not written when the worker is killed before it starts
    worker = context.Process(target=run, args=(argv, str(log)))
    worker.start()
    return worker


def finish(worker: BaseProcess, log: Path, *, kill: bool) -> tuple[int | None, str]:
    """Kill `worker` if it is still running (else wait for it); return its exit code (-9 when
    killed) and what it printed, which must hold no traceback: a crash is a kill, never an
    exception."""
    try:
        if kill and worker.is_alive():
            worker.kill()
        worker.join()
        code = worker.exitcode
    finally:
        if worker.is_alive():
            worker.kill()
            worker.join()
        worker.close()
    output = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    assert "Traceback" not in output, output
    return code, output


if __name__ == "__main__":
    main(sys.argv[1:], prog_name="digest")
