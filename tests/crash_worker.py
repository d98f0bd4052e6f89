"""`digest run` in a process of its own, for tests/test_crash.py to kill at a random point.

    python tests/crash_worker.py --db URL --config FILE --profiles DIR run --date YYYY-MM-DD

It is the `digest` command itself: the same options, the same configuration file, SMTP from its
``[smtp]`` section. The test starts it through a `multiprocessing` fork server that has imported
digest once (`run` is the target), because importing scikit-learn afresh for every kill would
cost seconds each time. Killed, it leaves what a real crash leaves: the store's ``run`` lock, maybe
an open SQLite transaction, maybe a message the server accepted that the ledger does not know.
"""

from __future__ import annotations

import os
import sys

from digest.cli import main

#: What a fork server should import before forking workers: the modules a run needs (some are
#: imported lazily), by names importable from anywhere (the fork server of Python 3.11 does not
#: see the tests folder on its path, and skips a module it cannot import without a word).
PRELOAD = ["digest.cli", "digest.render_feeds", "sqlalchemy.dialects.sqlite"]


def run(argv: list[str], log: str) -> None:
    """Run ``digest ARGV`` with stdout and stderr going to the file `log`."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    main(argv, prog_name="digest")


if __name__ == "__main__":
    main(sys.argv[1:], prog_name="digest")
