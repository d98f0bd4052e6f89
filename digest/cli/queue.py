"""Commands of the queue (PostgreSQL, many machines): `worker`, and `profiles sync`."""

from __future__ import annotations

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
