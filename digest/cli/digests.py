"""Commands about digests: `rank`, `run`, `preview`, `explain`."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import TYPE_CHECKING

import click

from ..errors import DigestError
from .common import DAY, UNKNOWN_PROFILE, fail, has_invalid, load_named_profiles, problem, safe
from .group import main

if TYPE_CHECKING:
    from ..app import DigestApp


@main.command("rank")
@click.argument("names", nargs=-1, metavar="[PROFILE...]")
@click.option("--since", type=DAY, metavar="YYYY-MM-DD",
              help="Rank every paper announced on or after this day, whatever was delivered "
                   "before (papers already sent stay excluded).")
@click.option("--until", type=DAY, metavar="YYYY-MM-DD",
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
    from ..recommend import rank_json

    profiles = load_named_profiles(app, names)
    try:
        rankings = app.rank(profiles, until=until.date() if until else None,
                            since=since.date() if since else None, top=top)
    except (DigestError, OSError) as exc:  # OSError: the model cannot be saved
        fail(problem(exc))
        return
    for ranking in rankings:
        for warning in ranking.warnings:
            click.echo(safe(f"warning: {ranking.profile}: {warning}"), err=True)
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
            click.echo(safe(f"{n:>3}. {rec.score:5.2f}  {rec.paper.key:<12} {rec.paper.title}"))
            click.echo(safe(f"      {reason}"))
    if len(profiles) < len(names) or has_invalid(app, names):
        sys.exit(1)




@main.command("run")
@click.argument("names", nargs=-1, metavar="[PROFILE...]")
@click.option("--date", "day", type=DAY, metavar="YYYY-MM-DD",
              help="Run as if today were this day: papers announced up to it, since each "
                   "profile's last delivery.")
@click.option("--dry-run", is_flag=True,
              help="Render everything under out/<profile>/dry-run/; send and record nothing.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per profile per line: {profile, status, papers, "
                   "message_id, files, error}.")
@click.option("--queue", "queued", is_flag=True,
              help="Queue the digests for `digest worker` processes (PostgreSQL) instead of "
                   "delivering them here.")
@click.pass_obj
def run_command(app: DigestApp, names: tuple[str, ...], day: dt.datetime | None,
                dry_run: bool, as_json: bool, queued: bool) -> None:
    """Build, render and deliver the due digests (default: every profile).

    Email goes over SMTP when [smtp] is configured, else to .eml files under out/<profile>/;
    markdown digests and RSS/Atom feeds are written there too. A paper never reaches the same
    profile twice. Exit status 1 if any profile failed or is invalid, or its feeds could not be
    written.
    """
    if queued:
        _queue_run(app, names, day, dry_run=dry_run, as_json=as_json)
        return
    profiles = load_named_profiles(app, names)
    try:
        results = app.run(profiles, day=day.date() if day else None, dry_run=dry_run)
    except (DigestError, OSError) as exc:  # OSError: the out folder (its model) is unusable
        fail(problem(exc))
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
    if not all(r.ok for r in results) or has_invalid(app, names):
        sys.exit(1)


def _queue_run(app: DigestApp, names: tuple[str, ...], day: dt.datetime | None, *,
               dry_run: bool, as_json: bool) -> None:
    """`run --queue`: the profiles come from the store after a sync, which reads only the
    files that changed (parsing 10,000 YAML files takes minutes)."""
    from ..queue import queue_run

    if dry_run:
        fail("--dry-run renders here: use it without --queue")
    try:
        queued = queue_run(app, names, day.date() if day else None)
    except (DigestError, OSError) as exc:
        fail(problem(exc))
    for error in queued.synced.errors:
        for line in error.problems:
            click.echo(f"invalid profile: {line}", err=True)
    if queued.unknown:
        fail(f"no profile named {', '.join(map(repr, queued.unknown))} in {app.profiles_dir}",
             UNKNOWN_PROFILE)
    deferred, synced = queued.deferred, queued.synced
    if as_json:
        click.echo(json.dumps({"queued": deferred.profiles, "shards": deferred.shards,
                               "days": deferred.days, "fit": deferred.fit}))
    else:
        fit = f", after fitting the model ({deferred.fit})" if deferred.fit else ""
        click.echo(f"queued {deferred.profiles} digests ({', '.join(deferred.days)}) in "
                   f"{deferred.shards} shard jobs{fit}; profiles synced: {len(synced.added)} "
                   f"new, {len(synced.changed)} changed; `digest worker` delivers them")
    if synced.errors:
        sys.exit(1)


@main.command("preview")
@click.argument("name", metavar="PROFILE")
@click.option("--date", "day", type=DAY, metavar="YYYY-MM-DD", help="As if today were this day.")
@click.pass_obj
def preview_command(app: DigestApp, name: str, day: dt.datetime | None) -> None:
    """Write the HTML email PROFILE would get now; print its path.

    Nothing is sent or recorded.
    """
    from ..fsutil import write_atomically
    from ..types import Digest

    (profile,) = load_named_profiles(app, (name,)) or [None]  # type: ignore[list-item]
    if profile is None:
        fail(f"profile {name!r} is invalid")
        return
    when = day.date() if day else app.clock().date()
    try:
        (ranking,) = app.rank([profile], until=when)
        digest = Digest(profile.name, when.isoformat(), when, tuple(ranking.items), app.clock())
        html = app.renderer().email(digest, profile).html
        path = app.out_dir / profile.name / "preview.html"
        write_atomically(path, html.encode("utf-8"))
    except (DigestError, OSError) as exc:
        fail(problem(exc))
        return
    click.echo(str(path))


@main.command("explain")
@click.argument("name", metavar="PROFILE")
@click.argument("paper_id", metavar="PAPER_ID")
@click.option("--since", type=DAY, metavar="YYYY-MM-DD",
              help="Explain as `rank --since` ranks: the window starts on this day.")
@click.option("--until", type=DAY, metavar="YYYY-MM-DD",
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
    from ..explain import explain_in

    (profile,) = load_named_profiles(app, (name,)) or [None]  # type: ignore[list-item]
    if profile is None:
        fail(f"profile {name!r} is invalid")
        return
    try:
        result = explain_in(app, profile, paper_id, until=until.date() if until else None,
                            since=since.date() if since else None)
    except (DigestError, OSError) as exc:  # OSError: the model cannot be saved
        fail(problem(exc))
        return
    for warning in result.warnings:
        click.echo(f"warning: {profile.name}: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
    else:
        click.echo(safe(result.format_text()))

