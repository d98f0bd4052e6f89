"""The batching executor takes all the digest jobs of one scheduler pass as one batch, however
long the pass takes to store each job's next run (10,000 jobs: half a minute, with pauses)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from digest.schedule.batch import BatchingExecutor
from digest.schedule.jobs import DIGEST_FUNC

#: A digest job's other arguments (the batch runner here only reads the profile).
JOB = {"db_url": "sqlite://", "config_path": None, "profiles_dir": "profiles",
       "cron": "0 7 * * *", "timezone": "UTC", "ingest": {}}


class PausingStore(MemoryJobStore):  # type: ignore[misc]  # apscheduler has no type hints
    """Keeps jobs in memory; storing the `pause_at`-th next run time takes `pause` seconds (as
    a database write sometimes does: a checkpoint, a busy disk)."""

    def __init__(self, pause_at: int, pause: float) -> None:
        super().__init__()
        self.pause_at, self.pause, self.updates = pause_at, pause, 0

    def update_job(self, job: Job) -> None:
        self.updates += 1
        if self.updates == self.pause_at:
            time.sleep(self.pause)
        super().update_job(job)


def test_a_pass_that_pauses_longer_than_the_settle_time_is_still_one_batch() -> None:
    batches: list[list[str]] = []
    all_done = threading.Event()

    def run_batch(jobs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        batches.append([job["profile"] for job in jobs])
        if sum(map(len, batches)) == 20:
            all_done.set()
        return {job["profile"]: "sent" for job in jobs}

    aps = BackgroundScheduler(jobstores={"default": PausingStore(pause_at=5, pause=1.5)},
                              executors={"default": BatchingExecutor(run_batch)},
                              timezone=dt.UTC)
    due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    for i in range(20):
        aps.add_job(DIGEST_FUNC, IntervalTrigger(days=1, start_date=due), id=f"digest:p{i:02d}",
                    kwargs={**JOB, "profile": f"p{i:02d}"}, misfire_grace_time=None)
    aps.start()
    try:
        assert all_done.wait(15)
    finally:
        aps.shutdown(wait=True)
    # With a quiet time alone, the pause split it: the first 5 ran, then the other 15.
    assert batches == [[f"p{i:02d}" for i in range(20)]]
