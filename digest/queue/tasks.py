"""The queue's jobs, as procrastinate tasks: fit, shard, send.

* ``digest:fit`` fits the text model under the store's ``model`` lock (the one fit of a tick),
  records its version in the store, then defers the shards it was given: they rank with it.
* ``digest:shard`` builds the digests of a few thousand profiles (`work.prepare_shard`) and
  defers their sending in batches of `queue.send_batch`.
* ``digest:send`` sends a batch (`work.send_pending`); digests that failed for now make the job
  fail, and procrastinate runs it again later (a wait growing by 30 s per attempt: 4xx
  greylisting asks for minutes) for those alone.

Every job is safe to run twice: the claims and leases in the store decide. A job's claims and
leases are owned by the job (``job:<id>``), so the same job run again after its worker died
takes them back at once, while another job waits for their lease to pass.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import procrastinate
from procrastinate import JobContext, RetryStrategy

from ..errors import StoreError
from ..modelstore import ensure, model_dir
from .context import QueueContext
from .work import prepare_shard, send_pending

log = logging.getLogger("digest.queue")

_context: QueueContext | None = None


def bind(context: QueueContext | None) -> None:
    """Give the tasks of this process their worker context (`digest worker` does)."""
    global _context
    _context = context


def _ctx() -> QueueContext:
    if _context is None:
        raise RuntimeError("no worker context: run jobs through `digest worker`")
    return _context


class SendIncomplete(Exception):
    """Some digests of a send job could not leave for now: procrastinate retries the job."""


def _owner(job: JobContext) -> str:
    return f"job:{job.job.id}"


def shard_jobs(names: Sequence[str], day: dt.date, size: int) -> list[dict[str, Any]]:
    """The shard jobs' arguments for `names` on `day`: `size` profiles each."""
    ordered = sorted(names)
    return [{"profiles": ordered[start : start + size], "day": day.isoformat()}
            for start in range(0, len(ordered), size)]


FIT, SHARD, SEND = "digest:fit", "digest:shard", "digest:send"


def register(app: procrastinate.App) -> None:
    """Give `app` digest's tasks."""
    app.task(name=FIT, pass_context=True, queueing_lock="digest-fit",
             retry=RetryStrategy(max_attempts=3, wait=30))(fit)
    # Linear waits, not exponential: a job's attempts also count the times its worker died
    # (a stalled job is retried as one more attempt), and procrastinate's exponential wait is
    # base ** (attempts + 1): a shard killed three times then cut off once waited 10**5 s.
    app.task(name=SHARD, pass_context=True,
             retry=RetryStrategy(max_attempts=10, wait=5, linear_wait=10))(shard)
    app.task(name=SEND, pass_context=True,
             retry=RetryStrategy(max_attempts=12, wait=5, linear_wait=30,
                                 retry_exceptions={SendIncomplete, StoreError}))(send)


def fit(job: JobContext, shards: list[dict[str, Any]]) -> str:
    ctx = _ctx()
    store = ctx.store()
    loaded = ensure(store, model_dir(ctx.app.out_dir), now=ctx.now(), notify=log.info)
    if shards:
        job.app.configure_task(SHARD).batch_defer(*shards)
    return f"model {loaded.model.fit_id}; {len(shards)} shards deferred"


def requeue_unlocked(app: procrastinate.App, task: str, kwargs: Mapping[str, Any], *,
                     delay: float = 0) -> None:
    """Defer `task` again with `kwargs`, without a queueing lock, `delay` seconds from now.

    Why: a job deferred under a queueing lock (the sweep's) cannot be retried by procrastinate
    while another job with that lock waits: the unique index refuses the retry, the worker
    stops with the error and the job stays "doing" (so burst workers wait for it for ever)."""
    app.configure_task(task, schedule_in={"seconds": delay} if delay else None).defer(**kwargs)


def _requeue(job: JobContext, task: str, kwargs: Mapping[str, Any], base: float) -> bool:
    """For a job under a queueing lock: defer it again without the lock (after `base` seconds,
    doubled per attempt) and say so; for others False: procrastinate retries them itself."""
    if job.job.queueing_lock is None:
        return False
    delay = base * 2 ** min(int(job.job.attempts), 6)
    requeue_unlocked(job.app, task, kwargs, delay=delay)
    return True


def shard(job: JobContext, profiles: list[str], day: str) -> dict[str, int]:
    ctx = _ctx()
    try:
        report = prepare_shard(ctx, profiles, dt.date.fromisoformat(day), owner=_owner(job))
    except Exception:
        if not _requeue(job, SHARD, {"profiles": profiles, "day": day}, 10):
            raise
        log.exception("shard %s of %d profiles failed; it runs again", day, len(profiles))
        return {"requeued": len(profiles)}
    for name, error in sorted(report.failed.items()):
        log.warning("digest %s %s: failed: %s", name, day, error)
    size = ctx.settings.send_batch
    batches: list[dict[str, Any]] = [{"ids": report.pending[start : start + size]}
               for start in range(0, len(report.pending), size)]
    if batches:
        job.app.configure_task(SEND).batch_defer(*batches)
    return {"built": report.built, "empty": report.empty, "skipped": report.skipped,
            "failed": len(report.failed), "send_jobs": len(batches)}


def send(job: JobContext, ids: list[int]) -> dict[str, int]:
    ctx = _ctx()
    try:
        report = send_pending(ctx, ids, owner=_owner(job))
    except StoreError:
        if not _requeue(job, SEND, {"ids": ids}, 5):
            raise
        log.exception("sending %d digests failed; they are sent again", len(ids))
        return {"requeued": len(ids)}
    outcome = {"sent": report.sent, "failed": report.failed, "busy": report.busy,
               "done": report.done, "temporary": len(report.temporary)}
    if report.temporary and _requeue(job, SEND, {"ids": report.temporary}, 5):
        return outcome
    if report.temporary:
        raise SendIncomplete(f"{len(report.temporary)} of {len(ids)} digests could not leave "
                             f"for now ({outcome}); they stay pending and this job runs again")
    return outcome


def defer_send(app: procrastinate.App, ids: Sequence[int], size: int, *,
               lock: str | None = None) -> int:
    """Defer send jobs for `ids`; with `lock`, not while one with that lock waits."""
    count = 0
    for start in range(0, len(ids), size):
        chunk: list[Any] = list(ids[start : start + size])
        try:
            app.configure_task(SEND, queueing_lock=f"{lock}:{start}" if lock else None
                               ).defer(ids=chunk)
        except procrastinate.exceptions.AlreadyEnqueued:
            continue
        count += 1
    return count


def defer_shards(app: procrastinate.App, shards: Sequence[Mapping[str, Any]], *,
                 lock: str | None = None) -> int:
    """Defer shard jobs; with `lock`, not while one with that lock and day waits."""
    count = 0
    for n, args in enumerate(shards):
        try:
            app.configure_task(SHARD, queueing_lock=f"{lock}:{args['day']}:{n}" if lock
                               else None).defer(**args)
        except procrastinate.exceptions.AlreadyEnqueued:
            continue
        count += 1
    return count
