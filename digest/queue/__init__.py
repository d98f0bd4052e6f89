"""Digests past one machine: jobs on procrastinate, in the store's PostgreSQL database.

``digest run --queue`` (or the scheduler's tick, ``digest schedule --queue``) syncs the
profiles folder into the store and defers the due digests as **shard** jobs of a few thousand
profiles (`queue.shard_size`); when the text model must be fitted first, one **fit** job does it
under the store's ``model`` lock and then defers them. ``digest worker`` processes on any machine
that reaches the database run the jobs:

1. a shard job *claims* each profile's digest of the day: an insert-or-skip of the digest's
   row (status ``claimed``) under the ledger's unique key (profile, day), with an owner and a
   lease. It ranks the claimed profiles as one chunked product, renders them, and fills each
   claim with its message bytes and Message-ID (``pending``, or ``empty``) while it still holds
   it; then it defers **send** jobs of `queue.send_batch` digests;
2. a send job *leases* its pending digests, sends each over the worker's one SMTP connection at
   the global rate (`queue.send_rate`, shared through the store), and marks it sent with its
   papers in one transaction once the server accepted it (the ledger's rule). A failure for now
   leaves it pending and the job runs again later.

So no global lock is needed, and the ledger's guarantee holds across workers and crashes: no
paper lost, no paper recorded as sent that did not leave, and at most one duplicate message per
crash, only in the window between the server's acceptance and the commit. A worker that dies
stops its heartbeat: after `queue.stalled_after` its jobs run again elsewhere (a job's claims and
leases are the job's, so its rerun takes them back at once). Work whose job is gone (a claim or
lease that lapsed) is found by every worker's periodic sweep and queued again.

Parts: `context` (what a worker keeps between jobs), `work` (what the jobs do, apart from the
queue), `tasks` (the procrastinate tasks), `runner` (connecting, deferring, the worker loop).
"""

from __future__ import annotations

from .context import QueueContext
from .runner import (
    Deferred,
    QueuedRun,
    QueueStatus,
    WorkerSummary,
    defer_digests,
    install,
    queue_app,
    queue_run,
    queue_status,
    run_worker,
)

__all__ = [
    "Deferred",
    "QueueContext",
    "QueueStatus",
    "QueuedRun",
    "WorkerSummary",
    "defer_digests",
    "install",
    "queue_app",
    "queue_run",
    "queue_status",
    "run_worker",
]
