"""The command line: a thin layer that parses arguments, calls the library, prints.

Results go to stdout (``--json`` for programs), progress and logs to stderr. Exit status: 0 all
went well, 1 something failed or was rejected, 2 the command line itself was wrong.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import click

from . import __version__
from .app import DigestApp
from .config import load_config
from .errors import ConfigError, DigestError
from .ingest import Source
from .sources.resolve import FORMATS, FileSource, resolve
from .types import SourceResult

#: The bundled sample of real papers, so the demo runs without ../shared.
SAMPLE = "sample"


def sample_path() -> str:
    return str(resources.files("digest") / "data" / "sample.jsonl.gz")


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"digest: {message}", err=True)
    sys.exit(code)


def _problem(exc: Exception) -> str:
    """What went wrong, for a person: an OSError as ``path: reason``."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="digest")
@click.option("--db", "db_url", envvar="DIGEST_DB", metavar="URL",
              help="Database URL [env DIGEST_DB; default from config, else "
                   "sqlite:///out/digest.sqlite].")
@click.option("--config", "config_path", envvar="DIGEST_CONFIG", metavar="FILE",
              help="Configuration file [env DIGEST_CONFIG; default ./digest.toml if present].")
@click.option("--profiles", "profiles_dir", envvar="DIGEST_PROFILES", metavar="DIR",
              help="Folder of profile YAML files [env DIGEST_PROFILES; default from config, "
                   "else ./profiles].")
@click.pass_context
def main(ctx: click.Context, db_url: str | None, config_path: str | None,
         profiles_dir: str | None) -> None:
    """digest: personalized research-paper digests.

    Ingest new papers, rank them against each person's interest profile, and deliver digests.
    """
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _fail(str(exc))
    ctx.obj = DigestApp(config, db_url or config.database, profiles_dir or config.profiles_dir,
                        notice=_notice)


def _notice(line: str) -> None:
    """A one-line notice of the library (a model fit and its progress) on stderr."""
    click.echo(f"digest: {line}", err=True)


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A progress bar on stderr for large inputs, only when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[papers]} papers"), console=Console(stderr=True), transient=True,
    )
    with progress:
        yield progress


@main.command("ingest")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)),
              help="Read every SOURCE as this format instead of guessing it.")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="Ingest as if today were this day: a day without year (\"Mar 11\") resolves "
                   "to the latest such day not after it; undated papers are announced on it.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_obj
def ingest_command(app: DigestApp, sources: tuple[str, ...], fmt: str | None,
                   day: dt.datetime | None, as_json: bool) -> None:
    """Read new papers from each SOURCE into the store.

    SOURCE is a file (JSON Lines, CSV, a saved Hugging Face papers page, an arXiv feed or API
    response; gzip is read transparently), a URL, or a named source:

    \b
      sample                                the bundled sample of real papers
      arxiv:cs.CV+cs.LG                     today's arXiv announcement (RSS)
      arxiv-api:cs.CV:2026-11-01..2026-11-20  back-fill from the arXiv API
      arxiv-api:id:2104.12255,2111.09886    particular papers from the arXiv API
      hf:2026-11-20                         Hugging Face daily papers of that day

    Each source is stored whole or not at all. Bad records are reported with their line and
    skipped. Exit status 1 when anything was rejected or a source failed.
    """
    today = day.date() if day else app.clock().date()
    resolved: list[Source] = []
    for spec in sources:
        try:
            if spec == SAMPLE and not Path(spec).exists():
                resolved.append(FileSource(sample_path(), "jsonl"))
            else:
                resolved.append(resolve(spec, today=today, fmt=fmt))
        except ValueError as exc:
            _fail(str(exc), 2)
    try:
        with _progress(not as_json) as bar:
            tasks: dict[str, Any] = {}

            def on_progress(source: Source, papers: int, done: int | None,
                            total: int | None) -> None:
                if bar is None:
                    return
                if source.name not in tasks:
                    tasks[source.name] = bar.add_task(source.name, total=total, papers=0)
                bar.update(tasks[source.name], completed=done or 0, papers=papers)

            results = app.ingest(resolved, today=today, progress=on_progress)
        with app.open_store() as store:
            info = store.info()
    except DigestError as exc:
        _fail(str(exc))
    _print_results(results, as_json, info.papers)
    if any(not r.ok for r in results):
        sys.exit(1)


def _print_results(results: list[SourceResult], as_json: bool, total: int) -> None:
    if as_json:
        click.echo(json.dumps({"sources": [r.as_dict() for r in results],
                               "papers_in_store": total}, ensure_ascii=False))
        return
    for result in results:
        for rejected in result.rejected[:50]:
            click.echo(f"rejected: {rejected}", err=True)
        if len(result.rejected) > 50:
            click.echo(f"rejected: ... and {len(result.rejected) - 50} more in {result.source}",
                       err=True)
        if result.error:
            click.echo(f"failed: {result.source}: {result.error}", err=True)
    width = max([len("source")] + [len(r.source) for r in results])
    click.echo(f"{'source':<{width}}  {'new':>7} {'updated':>7} {'unchanged':>9} "
               f"{'skipped':>7} {'rejected':>8}  status")
    for r in results:
        status = "failed" if r.error else "not modified" if r.not_modified else "ok"
        click.echo(f"{r.source:<{width}}  {r.new:>7} {r.updated:>7} {r.unchanged:>9} "
                   f"{r.skipped:>7} {len(r.rejected):>8}  {status}")
    click.echo(f"{total} papers in the store")


def _load_profiles(app: DigestApp, names: tuple[str, ...]) -> list[Any]:
    """The named profiles (all without names); invalid ones are reported on stderr."""
    try:
        found = app.profiles(names)
    except DigestError as exc:
        _fail(str(exc), 2)
        raise  # unreachable
    for error in found.errors:
        for problem in error.problems:
            click.echo(f"invalid profile: {problem}", err=True)
    return list(found.profiles)


_DAY = click.DateTime(["%Y-%m-%d"])


@main.command("rank")
@click.argument("names", nargs=-1, metavar="[PROFILE...]")
@click.option("--since", type=_DAY, metavar="YYYY-MM-DD",
              help="Rank every paper announced on or after this day, whatever was delivered "
                   "before (papers already sent stay excluded).")
@click.option("--until", type=_DAY, metavar="YYYY-MM-DD",
              help="Rank as if today were this day [default: today].")
@click.option("--top", type=click.IntRange(1, 1000), metavar="K",
              help="Show K papers, overriding max_papers and ignoring min_relevance.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per profile per line: {profile, papers: [{id, title, "
                   "score, why}]}.")
@click.pass_obj
def rank_command(app: DigestApp, names: tuple[str, ...], since: dt.datetime | None,
                 until: dt.datetime | None, top: int | None, as_json: bool) -> None:
    """Rank new papers for each PROFILE (default: every profile), best first.

    Never writes the ledger or the profiles. Exit status 1 if a profile is invalid.
    """
    from .recommend import rank_json

    profiles = _load_profiles(app, names)
    try:
        rankings = app.rank(profiles, until=until.date() if until else None,
                            since=since.date() if since else None, top=top)
    except (DigestError, OSError) as exc:  # OSError: the model cannot be saved
        _fail(_problem(exc))
        return
    for ranking in rankings:
        for warning in ranking.warnings:
            click.echo(f"warning: {ranking.profile}: {warning}", err=True)
        if as_json:
            click.echo(json.dumps(rank_json(ranking), ensure_ascii=False))
            continue
        click.echo(f"== {ranking.profile}: {len(ranking.items)} of {ranking.considered} "
                   "candidates")
        for n, rec in enumerate(ranking.items, start=1):
            why = rec.why
            reason = f"{why.interest}: {', '.join(why.terms[:4])}" if why.terms else why.interest
            if why.authors:
                reason += f"; by {', '.join(why.authors)}"
            click.echo(f"{n:>3}. {rec.score:5.2f}  {rec.paper.key:<12} {rec.paper.title}")
            click.echo(f"      {reason}")
    if len(profiles) < len(names) or _has_invalid(app, names):
        sys.exit(1)


def _has_invalid(app: DigestApp, names: tuple[str, ...]) -> bool:
    try:
        return bool(app.profiles(names).errors)
    except DigestError:
        return True


@main.command("run")
@click.argument("names", nargs=-1, metavar="[PROFILE...]")
@click.option("--date", "day", type=_DAY, metavar="YYYY-MM-DD",
              help="Run as if today were this day: papers announced up to it, since each "
                   "profile's last delivery.")
@click.option("--dry-run", is_flag=True,
              help="Render everything under out/<profile>/dry-run/; send and record nothing.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per profile per line: {profile, status, papers, "
                   "message_id, files, error}.")
@click.pass_obj
def run_command(app: DigestApp, names: tuple[str, ...], day: dt.datetime | None,
                dry_run: bool, as_json: bool) -> None:
    """Build, render and deliver the due digests (default: every profile).

    Email goes over SMTP when [smtp] is configured, else to .eml files under out/<profile>/;
    markdown digests and RSS/Atom feeds are written there too. A paper never reaches the same
    profile twice. Exit status 1 if any profile failed or is invalid, or its feeds could not be
    written.
    """
    profiles = _load_profiles(app, names)
    try:
        results = app.run(profiles, day=day.date() if day else None, dry_run=dry_run)
    except (DigestError, OSError) as exc:  # OSError: the out folder (its model) is unusable
        _fail(_problem(exc))
        return
    for result in results:
        if as_json:
            click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
            continue
        line = f"{result.profile}: {result.status}"
        if result.papers:
            line += f", {len(result.papers)} papers"
        if result.error:
            line += f" ({result.error})"
        click.echo(line)
        for path in result.files:
            click.echo(f"    {path}")
    if not all(r.ok for r in results) or _has_invalid(app, names):
        sys.exit(1)


@main.command("preview")
@click.argument("name", metavar="PROFILE")
@click.option("--date", "day", type=_DAY, metavar="YYYY-MM-DD", help="As if today were this day.")
@click.pass_obj
def preview_command(app: DigestApp, name: str, day: dt.datetime | None) -> None:
    """Write the HTML email PROFILE would get now; print its path.

    Nothing is sent or recorded.
    """
    from .fsutil import write_atomically
    from .types import Digest

    (profile,) = _load_profiles(app, (name,)) or [None]
    if profile is None:
        _fail(f"profile {name!r} is invalid")
        return
    when = day.date() if day else app.clock().date()
    try:
        (ranking,) = app.rank([profile], until=when)
        digest = Digest(profile.name, when.isoformat(), when, tuple(ranking.items), app.clock())
        html = app.renderer().email(digest, profile).html
        path = app.out_dir / profile.name / "preview.html"
        write_atomically(path, html.encode("utf-8"))
    except (DigestError, OSError) as exc:
        _fail(_problem(exc))
        return
    click.echo(str(path))


@main.command("explain")
@click.argument("name", metavar="PROFILE")
@click.argument("paper_id", metavar="PAPER_ID")
@click.option("--since", type=_DAY, metavar="YYYY-MM-DD",
              help="Explain as `rank --since` ranks: the window starts on this day.")
@click.option("--until", type=_DAY, metavar="YYYY-MM-DD",
              help="Explain as if today were this day [default: today].")
@click.option("--json", "as_json", is_flag=True,
              help="Print the explanation as one JSON object.")
@click.pass_obj
def explain_command(app: DigestApp, name: str, paper_id: str, since: dt.datetime | None,
                    until: dt.datetime | None, as_json: bool) -> None:
    """Explain why PAPER_ID is or is not in PROFILE's digest.

    PAPER_ID is an arXiv id (any form), another id the store knows, or an exact title. Says
    every reason that keeps it out (window, already sent, own paper, categories, min_relevance,
    max_papers, near-duplicate), then its score by interest, penalties and author boost.
    Writes nothing. Exit status 1 if the paper is not in the store or the profile is invalid.
    """
    from .explain import explain_in

    (profile,) = _load_profiles(app, (name,)) or [None]
    if profile is None:
        _fail(f"profile {name!r} is invalid")
        return
    try:
        result = explain_in(app, profile, paper_id, until=until.date() if until else None,
                            since=since.date() if since else None)
    except (DigestError, OSError) as exc:  # OSError: the model cannot be saved
        _fail(_problem(exc))
        return
    for warning in result.warnings:
        click.echo(f"warning: {profile.name}: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
    else:
        click.echo(result.format_text())


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

    from .web import serve

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    server_log = logging.getLogger("digest.web")
    server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)

    try:
        serve(app, host, port)
    except DigestError as exc:
        _fail(str(exc))


@main.command("unsubscribe")
@click.argument("profile")
@click.pass_obj
def unsubscribe_command(app: DigestApp, profile: str) -> None:
    """Stop sending PROFILE its digests, as its one-click unsubscribe link does.

    Runs skip the profile until `digest resubscribe PROFILE`; its feeds stay available.
    """
    from .web import set_subscribed

    try:
        changed = set_subscribed(app, profile, False)
    except DigestError as exc:
        _fail(str(exc))
        return
    click.echo(f"{profile}: unsubscribed" if changed else
               f"{profile}: was already unsubscribed; nothing changed")


@main.command("resubscribe")
@click.argument("profile")
@click.pass_obj
def resubscribe_command(app: DigestApp, profile: str) -> None:
    """Send PROFILE its digests again after it unsubscribed."""
    from .web import set_subscribed

    try:
        changed = set_subscribed(app, profile, True)
    except DigestError as exc:
        _fail(str(exc))
        return
    click.echo(f"{profile}: subscribed again" if changed else
               f"{profile}: was subscribed; nothing changed")


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
        _fail(_problem(exc))
        return
    click.echo(f"fitted on {loaded.model.n_docs} papers, {loaded.model.n_features} terms")


@main.command("schedule")
@click.option("--list", "list_only", is_flag=True,
              help="Print each job and its next run time (in its profile's time zone), then exit.")
@click.pass_context
def schedule_command(ctx: click.Context, list_only: bool) -> None:
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
    from .schedule import Scheduler

    app: DigestApp = ctx.obj
    scheduler = Scheduler.for_app(app, config_path=ctx.find_root().params.get("config_path"))
    if list_only:
        try:
            jobs = scheduler.list_jobs()
        except DigestError as exc:
            _fail(str(exc))
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
        _fail(str(exc))


@main.group("profiles")
def profiles_group() -> None:
    """Check profile files."""


@profiles_group.command("check")
@click.argument("paths", nargs=-1, metavar="[PATH...]")
@click.pass_obj
def profiles_check(app: DigestApp, paths: tuple[str, ...]) -> None:
    """Validate profiles (default: every profile in the profiles folder).

    Prints each problem as file:line:col: key: what was expected, and warns about seed, liked
    and disliked papers that are not in the store. Exit status 1 if any profile is invalid.
    """
    from .profiles import MIN_SCORE_DEPRECATED, load_profiles

    found = load_profiles(list(paths) if paths else app.profiles_dir)
    for error in found.errors:
        for problem in error.problems:
            click.echo(problem)
    for profile in found.profiles:
        if profile.min_score is not None:
            click.echo(f"{found.paths[profile.name]}: warning: "
                       + MIN_SCORE_DEPRECATED.format(relevance=profile.min_relevance))
    refs = {ref: p.name for p in found.profiles for ref in _profile_refs(p)}
    if refs and _store_exists(app.db_url):
        try:
            with app.open_store() as store:
                resolved = store.resolve_refs(refs)
        except DigestError as exc:
            _fail(str(exc))
        for ref, paper in resolved.items():
            if paper is None:
                click.echo(f"{found.paths[refs[ref]]}: warning: paper {ref!r} is not in the "
                           "store (ingest it, or check the id)")
    click.echo(f"{len(found.profiles)} valid, {len(found.errors)} invalid", err=True)
    if found.errors:
        sys.exit(1)


def _profile_refs(profile: Any) -> list[str]:
    refs = [*profile.seed_papers, *profile.liked, *profile.disliked]
    for interest in profile.interests:
        refs.extend(interest.seed_papers)
    return refs


def _store_exists(url: str) -> bool:
    from sqlalchemy.engine.url import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return True
    return bool(parsed.database) and Path(str(parsed.database)).exists()


@main.command("feedback")
@click.argument("profile")
@click.argument("paper_id")
@click.option("--like/--dislike", "like", default=None, required=True,
              help="Whether the paper was wanted.")
@click.pass_obj
def feedback_command(app: DigestApp, profile: str, paper_id: str, like: bool) -> None:
    """Record that PROFILE liked or disliked PAPER_ID.

    Appends the paper to `liked` or `disliked` in the profile's YAML file, keeping its comments,
    order and formatting; the next ranking reflects it.
    """
    from .profiles import add_feedback, load_profiles

    found = load_profiles(app.profiles_dir)
    path = found.paths.get(profile)
    if path is None:
        known = ", ".join(sorted(found.paths)) or "none"
        _fail(f"no valid profile named {profile!r} in {app.profiles_dir} (profiles: {known})")
        return
    try:
        changed = add_feedback(path, paper_id, like)
    except DigestError as exc:
        _fail(str(exc))
    verb = "liked" if like else "disliked"
    click.echo(f"{path}: {paper_id} {verb}" if changed else
               f"{path}: {paper_id} was already {verb}; nothing changed")


if __name__ == "__main__":  # pragma: no cover
    main()
