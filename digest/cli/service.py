"""Commands that run the service: `serve`, `schedule`, `unsubscribe`, `resubscribe`,
`model refit`."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import click

from ..errors import DigestError
from .common import fail, load_named_profiles, problem
from .group import main

if TYPE_CHECKING:
    from ..app import DigestApp


@main.command("serve")
@click.option("--host", metavar="ADDRESS",
              help="Address to listen on [default from config: server.host, else 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), metavar="PORT",
              help="Port to listen on, 0 for any free one [default from config: server.port, "
                   "else 8080].")
@click.pass_obj
def serve_command(app: DigestApp, host: str | None, port: int | None) -> None:
    """Serve feeds, one-click unsubscribe, feedback and digests over HTTP.

    Each URL carries a profile's token, signed with the secret in the environment variable
    named by server.secret_env (DIGEST_SECRET); emails and feeds link to server.public_url.
    Logs each request (tokens hidden) on stderr. Runs until Ctrl-C or SIGTERM. For a public
    site, put it behind a reverse proxy that terminates TLS.
    """
    import logging

    from ..web import serve

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    server_log = logging.getLogger("digest.web")
    server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)

    try:
        serve(app, host, port)
    except DigestError as exc:
        fail(str(exc))


@main.command("unsubscribe")
@click.argument("profile")
@click.pass_obj
def unsubscribe_command(app: DigestApp, profile: str) -> None:
    """Stop sending PROFILE its digests, as its one-click unsubscribe link does.

    Runs skip the profile until `digest resubscribe PROFILE`; its feeds stay available.
    """
    _subscribe(app, profile, False)


@main.command("resubscribe")
@click.argument("profile")
@click.pass_obj
def resubscribe_command(app: DigestApp, profile: str) -> None:
    """Send PROFILE its digests again after it unsubscribed."""
    _subscribe(app, profile, True)


def _subscribe(app: DigestApp, name: str, subscribed: bool) -> None:
    from ..web import set_subscribed

    # Resolved first: an unknown name exits as everywhere, and a file name finds its `id`.
    found = load_named_profiles(app, (name,))
    if not found:
        fail(f"profile {name!r} is invalid")
    name = found[0].name
    try:
        changed = set_subscribed(app, name, subscribed)
    except DigestError as exc:
        fail(str(exc))
    if subscribed:
        click.echo(f"{name}: subscribed again" if changed else
                   f"{name}: was subscribed; nothing changed")
    else:
        click.echo(f"{name}: unsubscribed" if changed else
                   f"{name}: was already unsubscribed; nothing changed")


@main.group("model")
def model_group() -> None:
    """The text model the ranking uses."""


@model_group.command("refit")
@click.pass_obj
def model_refit(app: DigestApp) -> None:
    """Fit the TF-IDF model again on every paper in the store, now.

    Otherwise it is refitted by itself when the store has grown by 20% since the last fit, or
    the model is 30 days old.
    """
    try:
        with app.open_store() as store:
            loaded = app.model(store, force=True)
    except (DigestError, OSError) as exc:
        fail(problem(exc))
        return
    click.echo(f"fitted on {loaded.model.n_docs} papers, {loaded.model.n_features} terms")


@main.command("schedule")
@click.option("--list", "list_only", is_flag=True,
              help="Print each job and its next run time (in its profile's time zone), then exit.")
@click.option("--queue", "queued", is_flag=True,
              help="Queue due digests for `digest worker` processes (PostgreSQL) instead of "
                   "delivering them in this process.")
@click.pass_context
def schedule_command(ctx: click.Context, list_only: bool, queued: bool) -> None:
    """Ingest and send digests on schedule, until stopped; logs each run on stderr.

    Each profile's digest goes out at its `schedule` (standard cron: 0 and 7 are Sunday) in its
    `timezone`. Papers are ingested as [schedule] in the config says (default: the arXiv
    listing of the profiles' categories after arXiv's 20:00 US/Eastern announcement, Sunday
    to Thursday, and Hugging Face daily papers), and always before a digest that is due.

    Jobs live in the database: a digest missed while the machine was down goes out once after
    restart. Profile files are re-read while it runs (at once on SIGHUP). SIGTERM or Ctrl-C
    lets the job in flight finish, then exits 0. One scheduler per database: a second one
    exits with status 1.
    """
    from ..schedule import Scheduler

    app: DigestApp = ctx.obj
    if queued:
        from ..queue import queue_app

        try:
            queue_app(app.db_url)
        except DigestError as exc:
            fail(str(exc))
    scheduler = Scheduler.for_app(app, config_path=ctx.find_root().params.get("config_path"),
                                  queue=queued)
    if list_only:
        try:
            jobs = scheduler.list_jobs()
        except DigestError as exc:
            fail(str(exc))
            return
        width = max([len(job.id) for job in jobs] or [2])
        for job in jobs:
            when = f"{job.next_run:%Y-%m-%d %H:%M %Z}" if job.next_run else "never"
            click.echo(f"{job.id:<{width}}  {when:<22}  {job.description}")
        return
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # digest.schedule logs every run, missed run and crash itself (with the traceback).
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)
    try:
        scheduler.run()
    except DigestError as exc:
        fail(str(exc))

