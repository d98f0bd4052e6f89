"""Commands of the queue (PostgreSQL, many machines): `worker`, `queue status`, `profiles sync`."""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING

import click

from ..errors import DigestError
from .common import fail, problem
from .group import main
from .profiles import profiles_group

if TYPE_CHECKING:
    from ..app import DigestApp


@main.command("worker")
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Jobs this process runs at once (threads; sends share one SMTP connection).")
@click.option("--burst", is_flag=True,
              help="Exit once no job is ready or running anywhere, instead of waiting for more.")
@click.pass_obj
def worker_command(app: DigestApp, concurrency: int, burst: bool) -> None:
    """Run queued digest jobs (PostgreSQL): fit, build shards, send.

    Start one or more on any machine that reaches the database and shares the output folder;
    `digest run --queue` or `digest schedule --queue` queues the work. A worker that dies is
    replaced without loss: its jobs run again elsewhere once it has missed its heartbeats
    ([queue] stalled_after), and no digest is sent twice but for one duplicate at most per crash.
    SIGTERM or Ctrl-C lets the jobs in hand finish, then exits 0.
    """
    from ..queue import QueueContext, queue_app, run_worker

    try:
        queue_app(app.db_url)
    except DigestError as exc:
        fail(str(exc))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = run_worker(QueueContext(app), concurrency=concurrency, burst=burst)
    except (DigestError, OSError) as exc:
        fail(problem(exc))
    if burst:
        later = (f"; {summary.scheduled_later} jobs wait for a later time"
                 if summary.scheduled_later else "")
        click.echo(f"queue empty: {summary.stalled_retried} jobs of dead workers run again, "
                   f"{summary.swept_claims + summary.swept_sends} jobs re-queued{later}",
                   err=True)


@main.group("queue")
def queue_group() -> None:
    """Look into the queue of `digest worker` (PostgreSQL)."""


@queue_group.command("status")
@click.option("--days", type=click.IntRange(1, 365), default=3, show_default=True,
              help="Digest days of deliveries to count, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: {jobs, deliveries}.")
@click.pass_obj
def queue_status_command(app: DigestApp, days: int, as_json: bool) -> None:
    """Jobs by task and status, and recent digests by status.

    Deliveries `claimed` are being built, `pending` wait to be sent (or to be sent again after
    a temporary failure); failed jobs have run out of retries.
    """
    from ..queue import queue_status

    try:
        status = queue_status(app, days=days)
    except (DigestError, OSError) as exc:
        fail(problem(exc))
    if as_json:
        click.echo(json.dumps({"jobs": status.jobs, "deliveries": status.deliveries}))
        return
    click.echo("jobs:" if status.jobs else "jobs: none")
    for task, counts in sorted(status.jobs.items()):
        click.echo(f"  {task}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    click.echo("deliveries:" if status.deliveries else "deliveries: none")
    for day, counts in status.deliveries.items():
        click.echo(f"  {day}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))


@profiles_group.command("sync")
@click.pass_obj
def profiles_sync(app: DigestApp) -> None:
    """Copy the profiles folder into the store, for workers on other machines.

    Only files that changed are read again; a file that does not validate keeps its last good
    version in the store and is reported (exit status 1). `digest run --queue` and the
    scheduler's tick sync too.
    """
    from ..profiles.sync import sync_profiles

    try:
        with app.open_store() as store:
            report = sync_profiles(store, app.profiles_dir, now=app.clock())
    except DigestError as exc:
        fail(str(exc))
    for error in report.errors:
        for line in error.problems:
            click.echo(f"invalid profile: {line}", err=True)
    click.echo(f"profiles synced: {len(report.added)} new, {len(report.changed)} changed, "
               f"{len(report.removed)} removed, {report.unchanged} unchanged")
    if report.errors:
        sys.exit(1)
