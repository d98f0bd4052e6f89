"""Commands about profile files: `profiles check`, `feedback`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import DigestError
from .common import UNKNOWN_PROFILE, fail
from .group import main

if TYPE_CHECKING:
    from ..app import DigestApp


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
    from ..profiles import MIN_SCORE_DEPRECATED, load_profiles

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
            fail(str(exc))
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
@click.option("--like", "vote", flag_value="like", help="The paper was wanted.")
@click.option("--dislike", "vote", flag_value="dislike", help="The paper was not wanted.")
@click.option("--force", is_flag=True,
              help="Record a paper the store does not know (an id you have not ingested).")
@click.pass_obj
def feedback_command(app: DigestApp, profile: str, paper_id: str, vote: str | None,
                     force: bool) -> None:
    """Record that PROFILE liked (--like) or disliked (--dislike) PAPER_ID.

    Appends the paper to `liked` or `disliked` in the profile's YAML file, keeping its comments,
    order and formatting; the next ranking reflects it. A paper the store does not know is
    refused (exit status 1) with the command that would ingest it, unless --force.
    """
    from ..profiles import add_feedback, seed_conflict

    if vote is None:
        raise click.UsageError("say --like or --dislike")
    like = vote == "like"
    try:
        found = app.profiles((profile,))
    except DigestError as exc:
        fail(str(exc), UNKNOWN_PROFILE)
    if not found.profiles:
        for error in found.errors:
            for line in error.problems:
                click.echo(f"invalid profile: {line}", err=True)
        fail(f"profile {profile!r} is invalid; fix it before recording feedback")
    (chosen,) = found.profiles
    path = found.paths[chosen.name]
    if not force and _store_exists(app.db_url):
        try:
            with app.open_store() as store:
                known = store.resolve_refs([paper_id])[paper_id] is not None
        except DigestError as exc:
            fail(str(exc))
        if not known:
            fail(f"paper {paper_id!r} is not in the store; ingest it first "
                 f"(digest ingest arxiv-api:id:{paper_id}) or record it anyway with --force")
    try:
        changed = add_feedback(path, paper_id, like)
    except DigestError as exc:
        fail(str(exc))
    if not like and (where := seed_conflict(chosen, paper_id)):
        click.echo(f"warning: {path}: {paper_id} is disliked but also a seed paper of "
                   f"{where}; it keeps pulling similar papers up until you remove it there",
                   err=True)
    verb = "liked" if like else "disliked"
    click.echo(f"{path}: {paper_id} {verb}" if changed else
               f"{path}: {paper_id} was already {verb}; nothing changed")


@main.command("init")
@click.argument("folder", default=".", metavar="[DIR]")
@click.option("--examples", is_flag=True,
              help="Write the example profiles (ada, ben, cara) instead of a starter profile.")
@click.option("--name", default="me", show_default=True, metavar="NAME",
              help="Name (and id) of the starter profile.")
def init_command(folder: str, examples: bool, name: str) -> None:
    """Start a site in DIR (default: here): digest.toml, profiles/ and a secret.

    Writes a commented digest.toml, profiles/ with a starter profile (or the examples) and
    the profile schema, and a generated link-signing secret in .digest-secret (mode 0600),
    which the config names. Refuses to overwrite anything: with any of these files present,
    nothing is written and the exit status is 1.
    """
    from ..init import init_site

    try:
        written = init_site(folder, examples=examples, name=name)
    except DigestError as exc:
        fail(str(exc))
    for path in written.paths:
        click.echo(str(path))
    here = Path(folder).resolve() == Path.cwd().resolve()
    prefix = "digest" if here else f"digest --config {written.config}"
    click.echo(f"next: edit the profile(s) in {Path(folder) / 'profiles'}, then\n"
               f"  {prefix} ingest sample\n  {prefix} run --date 2026-07-01", err=True)
