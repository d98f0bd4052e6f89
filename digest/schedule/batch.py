"""Digests due together run as one batch: the scheduler's executor.

At 07:00 in a time zone, thousands of ``digest:<profile>`` jobs fall due in the same minute. Run
one by one, each would load the text model and rank a single profile. This executor takes the
place of APScheduler's thread pool (one worker thread, so jobs still never race each other): the
scheduler hands it every job due in a pass, one at a time (storing each job's next run time as
it goes: half a minute for 10,000 jobs), then announces the submissions once the pass is over.
The executor waits for that announcement (or, failing it, until no job arrived for `settle`
seconds), then runs the other jobs (ingestion) in order and all the digest jobs as one call of
`run_batch`, which goes the way of ``digest run``: one model (kept loaded between batches), the
chunked ranking over all of them. Missed runs, coalescing and ``max_instances`` stay
APScheduler's: a job reaches the executor only when the scheduler decided it runs, and its
misfire grace is checked here as APScheduler's own executors do.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.job import Job

from .jobs import DIGEST_FUNC

logger = logging.getLogger("digest.schedule")

#: Runs the kwargs of digest jobs due together; returns each profile's status.
BatchRunner = Callable[[Sequence[Mapping[str, Any]]], Mapping[str, str]]


class BatchingExecutor(BaseExecutor):  # type: ignore[misc]  # apscheduler has no type hints
    """One worker thread; digest jobs submitted together run as one batch."""

    def __init__(self, run_batch: BatchRunner, *, settle: float = 30.0) -> None:
        super().__init__()
        self.run_batch = run_batch
        #: Without the scheduler's announcement, the batch is taken after this long without a
        #: new job. A short quiet time split a 10,000-job pass in two (a pause of the job
        #: store's writes), and the second batch waited for the whole first one.
        self.settle = settle
        self._queue: list[tuple[Job, list[dt.datetime]]] = []
        self._queued: set[str] = set()
        #: The pass that submitted a queued job has announced it: the batch is complete.
        self._announced = False
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self._alias = alias
        scheduler.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
        self._thread = threading.Thread(target=self._work, name=f"digest-batch-{alias}",
                                        daemon=True)
        self._thread.start()

    def shutdown(self, wait: bool = True) -> None:
        """Stop after what was submitted has run (as a thread pool's shutdown does)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if wait and self._thread is not None:
            self._thread.join()

    def _do_submit_job(self, job: Job, run_times: list[dt.datetime]) -> None:
        with self._cond:
            self._queue.append((job, run_times))
            self._queued.add(job.id)
            self._cond.notify_all()

    def _on_submitted(self, event: JobSubmissionEvent) -> None:
        """The scheduler announces a pass's submissions after the pass: when it announces one
        of ours, every job of that pass is in the queue."""
        with self._cond:
            if event.job_id in self._queued:
                self._announced = True
                self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                # The scheduler submits what is due one job at a time (storing each job's next
                # run as it goes): wait until it is done before taking the batch.
                while not self._stopping and not self._announced:
                    seen = len(self._queue)
                    self._cond.wait(self.settle)
                    if len(self._queue) == seen and not self._announced:
                        break
                taken, self._queue = self._queue, []
                self._queued.clear()
                self._announced = False
            try:
                self._run(taken)
            except Exception:  # never lose the worker: each job's outcome is reported below
                logger.exception("batch of %d jobs crashed", len(taken))

    def _run(self, taken: list[tuple[Job, list[dt.datetime]]]) -> None:
        digests: list[tuple[Job, dt.datetime]] = []
        for job, run_times in taken:
            if job.func_ref != DIGEST_FUNC:
                self._run_job_success(job.id, run_job(job, self._alias, run_times,
                                                      "digest.schedule"))
                continue
            missed = []
            due: dt.datetime | None = None
            for run_time in run_times:
                if _missed(job, run_time):
                    missed.append(JobExecutionEvent(EVENT_JOB_MISSED, job.id, self._alias,
                                                    run_time))
                else:
                    due = run_time
            if due is None:
                self._run_job_success(job.id, missed)
            else:
                if missed:
                    self._dispatch(missed)
                digests.append((job, due))
        if not digests:
            return
        try:
            statuses = self.run_batch([job.kwargs for job, _ in digests])
        except Exception as exc:
            for job, run_time in digests:
                self._run_job_success(job.id, [JobExecutionEvent(
                    EVENT_JOB_ERROR, job.id, self._alias, run_time, exception=exc,
                    traceback=None)])
            return
        for job, run_time in digests:
            status = statuses.get(job.kwargs["profile"], "failed")
            self._run_job_success(job.id, [JobExecutionEvent(
                EVENT_JOB_EXECUTED, job.id, self._alias, run_time, retval=status)])

    def _dispatch(self, events: list[JobExecutionEvent]) -> None:
        for event in events:
            self._scheduler._dispatch_event(event)


def _missed(job: Job, run_time: dt.datetime) -> bool:
    if job.misfire_grace_time is None:
        return False
    late = dt.datetime.now(dt.UTC) - run_time
    if late > dt.timedelta(seconds=job.misfire_grace_time):
        logger.warning('Run time of job "%s" was missed by %s', job, late)
        return True
    return False
